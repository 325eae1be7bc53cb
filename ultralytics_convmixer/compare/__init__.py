"""Train and profile YOLO models side by side: the ``ultralytics-convmixer compare`` command.

Every model is trained with the same Ultralytics arguments and seed (``seed=0``, ``deterministic=True`` unless given),
each in its own subprocess so that its peak memory can be read from the kernel, then all models are profiled in this
process (so that latency ratios are fair) and the results are written as a Markdown table (``compare.md``), a CSV
(``compare.csv``) and a plot (``compare.png``).

The parts, in the order a comparison runs them:

- :mod:`.args`: the defaults, the ``key=value`` training arguments and the latency batch sizes (``--batches``).
- :mod:`.data`: the models and the data, and the checks that they share one task.
- :mod:`.runs`: training, one subprocess per model, and the state files that make a comparison resumable.
- :mod:`.profile`: parameters, GFLOPs and latency (timed with :mod:`.timing`).
- :mod:`.report`: the Markdown table, the CSV and the plot, and what each column means.
- :mod:`.command`: :func:`compare` itself.

Importing this package is cheap: torch and Ultralytics are imported by the functions that need them.
"""

from .args import DEFAULT_LATENCY_RUNS, DEFAULT_MODELS, DEFAULT_OUT, parse_batches, parse_overrides, training_args
from .command import CompareResult, compare, prepare, profile_all, train_all, write_reports
from .common import CompareError, TrainingError
from .data import DataSpec, ModelSpec, resolve_data, resolve_model

__all__ = [
    "DEFAULT_LATENCY_RUNS",
    "DEFAULT_MODELS",
    "DEFAULT_OUT",
    "CompareError",
    "CompareResult",
    "DataSpec",
    "ModelSpec",
    "TrainingError",
    "compare",
    "parse_batches",
    "parse_overrides",
    "prepare",
    "profile_all",
    "resolve_data",
    "resolve_model",
    "train_all",
    "training_args",
    "write_reports",
]

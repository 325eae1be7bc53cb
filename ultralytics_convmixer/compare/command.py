"""The ``compare`` command: check the models and data, train each model, profile them all, write the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .args import (
    DEFAULT_LATENCY_RUNS,
    DEFAULT_MODELS,
    DEFAULT_OUT,
    default_batches,
    latency_device,
    parse_batches,
    training_args,
    training_imgsz,
)
from .common import CompareError, log
from .data import DataSpec, ModelSpec, check_data_task, model_specs, resolve_data, set_tasks
from .profile import build_model, onnx_available, prepare_profile, time_latencies, warmup_runs
from .report import markdown_table, notes, plot, write_csv
from .runs import load_done, run_config, state_path, train


@dataclass
class CompareResult:
    """What :func:`compare` produced.

    Attributes:
        rows (list[dict]): One result per model.
        markdown (Path): ``compare.md`` (``profile.md`` for untrained models).
        csv (Path): ``compare.csv`` (``profile.csv``).
        plot (Path): ``compare.png`` (``profile.png``).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    markdown: Path = Path()
    csv: Path = Path()
    plot: Path = Path()


def prepare(
    models: Sequence[str], data: str | None, overrides: dict[str, Any]
) -> tuple[list[ModelSpec], str, DataSpec]:
    """Resolve and check models and data before anything is trained.

    Args:
        models (Sequence[str]): Model arguments (default: :data:`~.args.DEFAULT_MODELS`).
        data (str | None): Data argument (default: ``shapes-<task>.yaml``).
        overrides (dict[str, Any]): Parsed ``key=value`` arguments; ``data=`` there is the same as ``data``.

    Returns:
        (tuple): The model specs, their task and the dataset.

    Raises:
        CompareError: For any user error.
    """
    specs = model_specs(models or DEFAULT_MODELS)
    task = set_tasks(specs)
    if overrides.get("data") is not None and data is not None and str(overrides["data"]) != data:
        raise CompareError(f"data given twice: --data {data} and data={overrides['data']}")
    data = data or (str(overrides["data"]) if overrides.get("data") is not None else f"shapes-{task}.yaml")
    spec = resolve_data(data)
    check_data_task(spec, task)
    return specs, task, spec


def compare(
    models: Sequence[str] = (),
    data: str | None = None,
    out: str | Path = DEFAULT_OUT,
    train_models: bool = True,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    overrides: dict[str, Any] | None = None,
    batches: Sequence[int] | None = None,
) -> CompareResult:
    """Train (unless ``train_models`` is False) and profile models, and write the table, CSV and plot.

    Args:
        models (Sequence[str]): Model YAMLs or weights; default ``yolov8n.yaml`` against ``yolov8n-convmixer.yaml``.
        data (str | None): Data YAML; default ``shapes-<task>.yaml`` of the models' task.
        out (str | Path): Output folder (state, runs, ONNX files and reports).
        train_models (bool): Train each model; False profiles the untrained models only.
        latency_runs (int): Timed runs per latency measurement.
        overrides (dict[str, Any] | None): Ultralytics training arguments (see :func:`~.args.parse_overrides`).
        batches (Sequence[int] | None): Latency batch sizes; None is 1 and 32 on a GPU, 1 on a CPU.

    Returns:
        (CompareResult): The rows and the paths of the reports.

    Raises:
        CompareError: For a user error (before any training starts).
        TrainingError: If a training fails.
    """
    overrides = dict(overrides or {})
    if latency_runs < 1:
        raise CompareError(f"--latency-runs must be >= 1, got {latency_runs}")
    batches = parse_batches(batches) if batches is not None else None
    specs, task, data_spec = prepare(models, data, overrides)
    args = training_args(overrides)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"{len(specs)} models ({', '.join(s.name for s in specs)}), task {task}, data {data_spec.arg}, output {out}")
    trained = train_all(specs, data_spec, args, out) if train_models else {}
    device = latency_device(args)  # after training: selecting a device changes this process's CUDA view
    batches = batches or default_batches(device)
    rows = profile_all(specs, data_spec, trained, training_imgsz(args), device, latency_runs, out, batches)
    return write_reports(rows, task, data_spec, args, train_models, out)


def train_all(specs: list[ModelSpec], data: DataSpec, args: dict[str, Any], out: Path) -> dict[str, dict[str, Any]]:
    """Train every model that has no finished training with these settings yet, one after the other.

    Args:
        specs (list[ModelSpec]): The models.
        data (DataSpec): The dataset.
        args (dict[str, Any]): Training arguments.
        out (Path): Output folder.

    Returns:
        (dict[str, dict[str, Any]]): Training results by model name.
    """
    trained = {}
    for spec in specs:
        config = run_config(spec, data, args)  # hashes the model's YAML or weights: once per model
        done = load_done(out, spec, config)
        if done is not None:
            log(f"{spec.name}: already trained with these settings ({state_path(out, spec.name)}); skipping")
            trained[spec.name] = done
        else:
            trained[spec.name] = train(spec, data, args, out, config)
    return trained


def profile_all(
    specs: list[ModelSpec],
    data: DataSpec,
    trained: dict[str, dict[str, Any]],
    imgsz: int,
    device: Any,
    runs: int,
    out: Path,
    batches: Sequence[int] = (1,),
) -> list[dict[str, Any]]:
    """Profile every model in this process, timing them in turns run by run, so that their latencies compare fairly.

    Args:
        specs (list[ModelSpec]): The models.
        data (DataSpec): The dataset (its classes for untrained models).
        trained (dict[str, dict[str, Any]]): Training results by model name (their weights are profiled).
        imgsz (int): Image size, unless a training result says otherwise.
        device (torch.device): Latency device.
        runs (int): Timed runs per latency.
        out (Path): Output folder (ONNX files go to ``<out>/onnx``).
        batches (Sequence[int]): Latency batch sizes.

    Returns:
        (list[dict[str, Any]]): One row per model: training results and profile.
    """
    onnx_dir = out / "onnx" if onnx_available() else None
    if onnx_dir is None:
        log("onnx/onnxruntime not installed (pip install 'ultralytics-convmixer[export]'); ONNX columns left empty")
    timing = {"device_name": str(device), "latency_runs": runs, "latency_batches": list(batches)}
    timing["warmup_runs"] = {b: warmup_runs(b, device) for b in batches}
    rows, steps = [], []
    for i, spec in enumerate(specs, 1):
        t = trained.get(spec.name, {})
        size = t.get("imgsz") or imgsz  # the size training really used
        label = f"[{i}/{len(specs)}] {spec.name}"
        log(f"{label}: building at imgsz {size} on {device} ...")
        yolo = build_model(spec, data, t.get("weights"))
        measured, model_steps = prepare_profile(yolo, spec.name, size, device, onnx_dir, batches, label)
        rows.append({"name": spec.name, "source": spec.source, "task": spec.task, **t, "imgsz": size, **measured})
        rows[-1].update(timing)
        steps.append(model_steps)
    for row, latencies in zip(rows, time_latencies([s.name for s in specs], steps, batches, runs, device)):
        row.update(latencies)
    return rows


def write_reports(
    rows: list[dict[str, Any]], task: str, data: DataSpec, args: dict[str, Any], trained: bool, out: Path
) -> CompareResult:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png``, print the table and the paths.

    Untrained models (``--no-train``) get ``profile.md``, ``profile.csv`` and ``profile.png`` instead, so profiling
    into the folder of a finished comparison leaves its accuracy report as it was.

    Args:
        rows (list[dict[str, Any]]): The table's rows, a model each, in the order the models were given.
        task (str): Task of every model, which picks the accuracy columns.
        data (DataSpec): What they were trained and validated on, for the notes.
        args (dict[str, Any]): The training arguments all of them got.
        trained (bool): False with ``--no-train``: the reports are the profile ones.
        out (Path): Output folder.

    Returns:
        (CompareResult): The rows and the paths.
    """
    stem = "compare" if trained else "profile"
    result = CompareResult(rows, out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.png")
    text = markdown_table(rows, task) + "\n\n" + notes(rows, task, data, args, trained) + "\n"
    result.markdown.write_text(text, encoding="utf-8")
    write_csv(rows, task, result.csv)
    plot(rows, task, result.plot)
    print("\n" + text, flush=True)
    for path in (result.markdown, result.csv, result.plot):
        log(f"wrote {path}")
    return result

"""Profiling for ``compare``: parameters, GFLOPs and latency (PyTorch and ONNX Runtime), all models in one process.

All models are profiled in the comparing process, after training, so that latency ratios are fair. What profiling
measures, as the report shows it:

- ``params (M)``: parameters of the unfused model (Ultralytics' ``get_num_params``), in millions.
- ``GFLOPs``: Ultralytics' ``get_flops`` at the training ``imgsz`` (the number ``model.info()`` prints).
- ``PyTorch b<N> (ms)``: median over ``--latency-runs`` forward passes of the fused fp32 model in eval mode at batch
  ``N`` and the training ``imgsz``, on the training device (CUDA is synchronised around each pass), after
  :data:`WARMUP_RUNS` warm-up passes (:data:`CPU_BATCH_WARMUP_RUNS` on a CPU above batch 1, where a pass takes
  seconds and only the first one is slow). The batch sizes are ``--batches``: by default 1 and 32 on a GPU and 1 on
  a CPU, where batch 32 takes seconds per pass. Random input already on the device; the head's output decoding is
  included, NMS is not. The models take turns pass by pass (model A, model B, A, B, ...; see
  :mod:`.timing`). On a CPU, PyTorch runs on the threads Ultralytics' ``select_device`` sets,
  as for its own training and prediction: one fewer than the CPU count, at most 8 (1 on a 2-core machine).
- ``ONNX b<N> (ms)``: the same for the model exported by Ultralytics to ONNX (``dynamic=True``, ``simplify=False``;
  ONNX Runtime does its own graph optimisation) and run with ONNX Runtime, on the CUDA execution provider when
  training used a GPU and it is available (host-to-device copies included), else the CPU provider.

Rough costs on 2 CPU cores at imgsz 640 (YOLOv8n scale): ONNX export about 1 s per model; one pass about 0.1 s at
batch 1 and 2-8 s at batch 32 per runtime, so ``(warm-up + runs) x pass`` per model, runtime and batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .common import log, one_line, register_plugin
from .data import DataSpec, ModelSpec
from .timing import export_onnx, interleaved_medians, onnx_session, onnx_step, pytorch_step

# Untimed passes before the timed ones. On a CPU above batch 1 a pass takes seconds and only the first is slow
# (measured on 2 cores at 640 px, YOLOv8n batch 32: 6.9 s, then 4.0-5.9 s; batch 1: 92 ms, then 69-75 ms).
WARMUP_RUNS = 3
CPU_BATCH_WARMUP_RUNS = 1
RUNTIMES = (("pt", "PyTorch"), ("onnx", "ONNX"))  # (key prefix, name in the table)
Steps = dict[str, tuple[Callable[[], Any], Callable[[], Any]]]


def latency_key(runtime: str, batch: int) -> str:
    """Return the row key of a latency: ``pt_b1_ms``, ``onnx_b32_ms``...

    Args:
        runtime (str): ``pt`` or ``onnx``.
        batch (int): Batch size.

    Returns:
        (str): The key.
    """
    return f"{runtime}_b{batch}_ms"


def warmup_runs(batch: int, device: Any) -> int:
    """Return the warm-up passes before timing at ``batch`` on ``device``.

    Args:
        batch (int): Batch size.
        device (torch.device | str): Latency device.

    Returns:
        (int): :data:`WARMUP_RUNS`, or :data:`CPU_BATCH_WARMUP_RUNS` on a CPU above batch 1.
    """
    on_cpu = not str(getattr(device, "type", device)).startswith("cuda")
    return CPU_BATCH_WARMUP_RUNS if on_cpu and batch > 1 else WARMUP_RUNS


def onnx_available() -> bool:
    """Return whether ``onnx`` and ``onnxruntime`` can be imported (the ``[export]`` extra).

    Returns:
        (bool): True if both are installed.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def build_model(spec: ModelSpec, data: DataSpec | None, weights: str | None = None) -> Any:
    """Return the YOLO model to profile: trained weights, or the model built for the data's classes.

    Args:
        spec (ModelSpec): The model.
        data (DataSpec | None): The dataset, whose class count (and keypoint shape) an untrained YAML model gets.
        weights (str | None): Trained weights to load instead.

    Returns:
        (ultralytics.YOLO): The model, on the CPU.
    """
    register_plugin()
    from copy import deepcopy

    from ultralytics import YOLO

    yolo = YOLO(weights or spec.source, verbose=False)
    if weights or not spec.source.lower().endswith((".yaml", ".yml")) or not data or not data.nc:
        return yolo
    kwargs = {"nc": data.nc, "verbose": False}
    if spec.task == "pose" and data.kpt_shape:
        kwargs["data_kpt_shape"] = tuple(data.kpt_shape)
    old = yolo.model
    yolo.model = yolo.task_map[spec.task]["model"](deepcopy(old.yaml), **kwargs)
    yolo.model.args, yolo.model.task = old.args, old.task  # as YOLO() sets them, for the exporter
    if data.names:
        yolo.model.names = data.names
    return yolo


def _pytorch_steps(yolo: Any, imgsz: int, device: Any, batches: Sequence[int]) -> Steps:
    """Return the PyTorch latency steps of the fused fp32 eval model, one per batch size."""
    from copy import deepcopy

    model = deepcopy(yolo.model).float().to(device).eval()
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    for p in model.parameters():
        p.requires_grad_(False)
    return {latency_key("pt", b): pytorch_step(model, imgsz, b, device) for b in batches}


def _onnx_steps(yolo: Any, path: Path, imgsz: int, device: Any, batches: Sequence[int]) -> tuple[str, Steps]:
    """Export the model to ``path`` and return the ONNX Runtime provider and latency steps, one per batch size."""
    session = onnx_session(export_onnx(yolo, path, imgsz, device), device)
    steps = {latency_key("onnx", b): (onnx_step(session, imgsz, b), lambda: None) for b in batches}
    return session.get_providers()[0], steps


def prepare_profile(
    yolo: Any,
    name: str,
    imgsz: int,
    device: Any,
    onnx_dir: Path | None,
    batches: Sequence[int] = (1,),
    label: str | None = None,
) -> tuple[dict[str, Any], Steps]:
    """Measure params and GFLOPs of one model and prepare its latency steps (PyTorch, and ONNX Runtime if asked).

    Args:
        yolo (ultralytics.YOLO): The model.
        name (str): Its name (the ONNX file is ``<onnx_dir>/<name>.onnx``).
        imgsz (int): Image size.
        device (torch.device): Device to time on.
        onnx_dir (Path | None): Folder for the ONNX export; None skips ONNX.
        batches (Sequence[int]): Batch sizes to prepare latency steps for.
        label (str | None): How progress lines name the model (default ``name``).

    Returns:
        (tuple[dict, dict]): ``{params, gflops, onnx_provider}`` and ``{key: (step, sync)}`` for the keys
            ``pt_b<N>_ms`` and ``onnx_b<N>_ms`` of each batch size (see :func:`latency_key`).
    """
    from copy import deepcopy

    from ultralytics.utils.torch_utils import get_flops, get_num_params

    label = label or name
    row: dict[str, Any] = {"params": get_num_params(yolo.model), "gflops": get_flops(deepcopy(yolo.model), imgsz)}
    log(f"{label}: {row['params'] / 1e6:.2f} M params, {row['gflops']:.2f} GFLOPs at imgsz {imgsz}")
    steps = _pytorch_steps(yolo, imgsz, device, batches)
    if onnx_dir is not None:
        log(f"{label}: ONNX export ...")
        try:
            row["onnx_provider"], onnx_steps = _onnx_steps(yolo, onnx_dir / f"{name}.onnx", imgsz, device, batches)
            steps.update(onnx_steps)
        except Exception as e:  # noqa: BLE001 - keep the other columns; say why these are empty
            log(f"{label}: ONNX export or ONNX Runtime failed, ONNX columns left empty: {one_line(e)}")
    return row, steps


def time_latencies(
    names: Sequence[str], steps: list[Steps], batches: Sequence[int], runs: int, device: Any
) -> list[dict[str, float]]:
    """Time every latency of every model, one measurement (runtime and batch size) after the other, models in turns.

    Prints a line before each measurement and one with its medians after it.

    Args:
        names (Sequence[str]): The models' names, for the progress lines.
        steps (list[dict]): Per model, its latency steps (see :func:`prepare_profile`).
        batches (Sequence[int]): Batch sizes.
        runs (int): Timed runs per latency.
        device (torch.device): Latency device (it sets the warm-up, see :func:`warmup_runs`).

    Returns:
        (list[dict[str, float]]): Per model, ``{key: median milliseconds}``.
    """
    results: list[dict[str, float]] = [{} for _ in steps]
    for runtime, runtime_name in RUNTIMES:
        for batch in batches:
            key, warmup = latency_key(runtime, batch), warmup_runs(batch, device)
            timed = [i for i, model_steps in enumerate(steps) if key in model_steps]
            if not timed:
                continue
            who = f"{len(timed)} models in turns" if len(timed) > 1 else "1 model"
            log(f"latency {runtime_name} b{batch}: {who}, {warmup} warm-up + {runs} timed runs ...")
            medians = interleaved_medians([{key: steps[i][key]} for i in timed], runs, warmup)
            for i, median in zip(timed, medians):
                results[i].update(median)
            log(f"latency {runtime_name} b{batch}: " + ", ".join(f"{names[i]} {results[i][key]:.1f} ms" for i in timed))
    return results

"""Latency timing shared by ``compare`` and the benchmark scripts: PyTorch and ONNX Runtime steps, medians in turns.

A step is a function that runs one forward pass on input prepared once; a sync is called after each timed step (a
CUDA synchronise on a GPU, nothing on a CPU). Several models' steps are timed taking turns run by run
(:func:`interleaved_medians`), so that drift of the machine's speed (turbo, thermal limits, other load) hits all of
them alike; on a 2-core VM timing one model after the other moved the ratio by 10-20%.

Importing this module is cheap: torch, numpy and ONNX Runtime are imported by the functions that use them.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

Step = Callable[[], Any]


def imgsz_hw(imgsz: int | Sequence[int]) -> tuple[int, int]:
    """Return ``(height, width)`` of an Ultralytics ``imgsz`` (one side, or ``[h, w]``).

    Args:
        imgsz (int | Sequence[int]): Image size.

    Returns:
        (tuple[int, int]): Height and width.
    """
    if isinstance(imgsz, (list, tuple)):
        return (int(imgsz[0]), int(imgsz[-1]))
    return (int(imgsz), int(imgsz))


def median_ms(step: Step, runs: int, warmup: int, sync: Step = lambda: None) -> float:
    """Return the median wall time of ``step`` in milliseconds over ``runs`` calls after ``warmup`` calls.

    Args:
        step (Callable): The call to time.
        runs (int): Timed calls.
        warmup (int): Untimed calls first.
        sync (Callable): Called after each call, inside the timing (e.g. ``torch.cuda.synchronize``).

    Returns:
        (float): Median milliseconds.
    """
    return interleaved_medians([{"step": (step, sync)}], runs, warmup)[0]["step"]


def interleaved_medians(steps: list[dict[str, tuple[Step, Step]]], runs: int, warmup: int) -> list[dict[str, float]]:
    """Time several models' steps taking turns run by run, so that drift of the machine's speed hits all alike.

    Keys are timed one after the other, in their order of first appearance; for each key every model that has it
    runs its warm-up calls, then the models take turns for each timed run.

    Args:
        steps (list[dict[str, tuple[Callable, Callable]]]): Per model, ``{key: (step, sync)}``.
        runs (int): Timed runs per key and model; the median is returned.
        warmup (int): Untimed runs per key and model first.

    Returns:
        (list[dict[str, float]]): Per model, ``{key: median milliseconds}``.
    """
    results: list[dict[str, float]] = [{} for _ in steps]
    for key in dict.fromkeys(k for model_steps in steps for k in model_steps):  # keys in order, each once
        timed = [(i, *model_steps[key]) for i, model_steps in enumerate(steps) if key in model_steps]
        times: dict[int, list[float]] = {i: [] for i, _, _ in timed}
        for _, step, sync in timed:
            for _ in range(warmup):
                step()
            sync()
        for _ in range(max(1, runs)):
            for i, step, sync in timed:
                start = time.perf_counter()
                step()
                sync()
                times[i].append((time.perf_counter() - start) * 1000)
        for i, t in times.items():
            results[i][key] = statistics.median(t)
    return results


def pytorch_step(model: Any, imgsz: int | Sequence[int], batch: int, device: Any = "cpu") -> tuple[Step, Step]:
    """Return ``(step, sync)``: one inference-mode forward pass of ``model`` on random input, and a CUDA sync.

    Args:
        model (torch.nn.Module): The model, already on ``device`` and in eval mode.
        imgsz (int | Sequence[int]): Input image size.
        batch (int): Batch size.
        device (str | torch.device): Device of the input.

    Returns:
        (tuple[Callable, Callable]): The step and the sync (a no-op off CUDA).
    """
    import torch

    device = torch.device(device)
    x = torch.rand(batch, 3, *imgsz_hw(imgsz), device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def step():
        with torch.inference_mode():
            return model(x)

    return step, sync


def onnx_session(path: str | Path, device: Any = "cpu", profile_prefix: str | None = None) -> Any:
    """Open an ONNX Runtime session, on CUDA when ``device`` is a GPU and the CUDA provider is available.

    Args:
        path (str | Path): The ONNX file.
        device (str | torch.device): Device of the comparison.
        profile_prefix (str | None): Turn on ONNX Runtime's per-node profiler, writing ``<prefix>_<time>.json`` when
            ``session.end_profiling()`` is called (``benchmarks/onnx_profile.py``).

    Returns:
        (onnxruntime.InferenceSession): The session; ``get_providers()[0]`` is the provider it runs on.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Latency is timed with several sessions taking turns run by run; an idle session's threads would otherwise keep
    # spinning for work while the next one runs and, on a small CPU, take its cores (measured on 2 cores: 130 ms
    # instead of 90 ms per YOLOv8n run at 640 px, for every model alike).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    providers = ["CPUExecutionProvider"]
    if "cuda" in str(device) and "CUDAExecutionProvider" in ort.get_available_providers():
        index = str(device).partition(":")[2] or "0"
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index)}))
    return ort.InferenceSession(str(path), options, providers=providers)


def onnx_step(session: Any, imgsz: int | Sequence[int], batch: int) -> Step:
    """Return one ONNX Runtime run of ``session`` on random input (input copies to the device included).

    Args:
        session (onnxruntime.InferenceSession): The session (see :func:`onnx_session`).
        imgsz (int | Sequence[int]): Input image size.
        batch (int): Batch size.

    Returns:
        (Callable): The step.
    """
    import numpy as np

    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, 3, *imgsz_hw(imgsz)), dtype=np.float32)
    return lambda: session.run(None, {name: x})


def export_onnx(yolo: Any, path: Path, imgsz: int | Sequence[int], device: Any = "cpu", dynamic: bool = True) -> Path:
    """Export a YOLO model to ONNX at ``path`` with Ultralytics' exporter (dynamic batch and size, not simplified).

    Args:
        yolo (ultralytics.YOLO): The model.
        path (Path): Where the ``.onnx`` file goes.
        imgsz (int | Sequence[int]): Export image size.
        device (str | torch.device): Export device.
        dynamic (bool): Dynamic batch and image size; False gives the fixed-size graph of a plain ``yolo export``.

    Returns:
        (Path): The ONNX file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.model.pt_path = str(path.with_suffix(".pt"))  # the exporter names its output after this
    f = yolo.export(format="onnx", imgsz=list(imgsz_hw(imgsz)), dynamic=dynamic, simplify=False, device=str(device))
    return Path(f)

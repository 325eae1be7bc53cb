"""The arguments of ``compare``: its defaults, the ``key=value`` training arguments and the latency batch sizes."""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..integration.training_args import TrainingArgumentError, parse_training_args
from .common import CompareError, one_line, register_plugin

DEFAULT_MODELS = ("yolov8n.yaml", "yolov8n-convmixer.yaml")
DEFAULT_OUT = "runs/compare"
DEFAULT_LATENCY_RUNS = 20
# Latency batch sizes unless --batches says: batch 32 takes seconds per pass on a CPU (minutes per model), so a CPU
# measures batch 1 only.
GPU_BATCHES = (1, 32)
CPU_BATCHES = (1,)
RESERVED = {  # training arguments compare sets itself, and what to do instead
    "model": "give the models as positional arguments",
    "task": "the task comes from the models",
    "mode": "compare trains, then profiles",
    "resume": "run the same command again to resume",
    **dict.fromkeys(("project", "name", "exist_ok", "save_dir"), "runs go under --out (default runs/compare)"),
}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` training arguments the way the ``yolo`` CLI does, and check them.

    Args:
        items (Sequence[str]): Strings such as ``epochs=3``, ``device=cpu``, ``fraction=0.5``, ``cache=None``.

    Returns:
        (dict[str, Any]): Argument names to values (see ``integration.training_args``).

    Raises:
        CompareError: For a malformed item, an unknown or reserved argument, or a value of the wrong type.
    """
    register_plugin()
    try:
        return parse_training_args(items, RESERVED, "compare")
    except TrainingArgumentError as e:
        raise CompareError(str(e)) from None


def training_args(overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the arguments every model is trained with: the user's, plus the seed and determinism made explicit.

    Args:
        overrides (dict[str, Any]): Parsed ``key=value`` arguments (see :func:`parse_overrides`).

    Returns:
        (dict[str, Any]): The training arguments, without ``data``.
    """
    args = {k: v for k, v in overrides.items() if k != "data"}
    args.setdefault("seed", 0)
    args.setdefault("deterministic", True)
    return args


def parse_batches(value: str | Sequence[int]) -> tuple[int, ...]:
    """Parse the latency batch sizes of ``--batches``: comma-separated positive integers such as ``1,32``.

    Args:
        value (str | Sequence[int]): The option's text, or batch sizes given from Python.

    Returns:
        (tuple[int, ...]): The batch sizes, ascending, each once.

    Raises:
        CompareError: If one is not a positive integer, or none is given.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    batches = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        digits = isinstance(text, str) and text.isascii() and text.isdigit()
        ok = digits or (isinstance(text, int) and not isinstance(text, bool))
        if not ok or int(text) < 1:
            raise CompareError(f"--batches takes positive integers separated by commas (such as 1,32), got '{value}'")
        batches.append(int(text))
    if not batches:
        raise CompareError("--batches takes positive integers separated by commas (such as 1,32), got none")
    return tuple(sorted(set(batches)))


def default_batches(device: Any) -> tuple[int, ...]:
    """Return the latency batch sizes measured unless ``--batches`` says: 1 and 32 on a GPU, 1 on a CPU.

    Args:
        device (torch.device | str): The latency device.

    Returns:
        (tuple[int, ...]): :data:`GPU_BATCHES` or :data:`CPU_BATCHES`.
    """
    return GPU_BATCHES if str(getattr(device, "type", device)).startswith("cuda") else CPU_BATCHES


def training_imgsz(args: dict[str, Any]) -> int:
    """Return the image size training uses for these arguments (Ultralytics rounds it to a multiple of the stride).

    Args:
        args (dict[str, Any]): Training arguments.

    Returns:
        (int): The image size.
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.utils.checks import check_imgsz

    return check_imgsz(args.get("imgsz", DEFAULT_CFG_DICT["imgsz"]), stride=32, floor=32, max_dim=1)


def latency_device(args: dict[str, Any]) -> Any:
    """Return the torch device of ``device=`` (the first GPU of a multi-GPU list), as Ultralytics picks it.

    Args:
        args (dict[str, Any]): Training arguments.

    Returns:
        (torch.device): The device latency is timed on.

    Raises:
        CompareError: If Ultralytics rejects the device.
    """
    from ultralytics.utils.torch_utils import select_device

    device = "" if args.get("device") is None else str(args["device"])
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        return select_device(device.split(",")[0], verbose=False)
    except Exception as e:  # noqa: BLE001 - a bad device= is a user error
        raise CompareError(f"device '{args.get('device')}': {one_line(e)}") from None
    finally:  # 8.3's select_device sets it for this process (8.4's does not); training subprocesses must not inherit it
        if env is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = env

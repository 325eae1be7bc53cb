"""Ultralytics task models and checkpoints built outside a training run (the timm import and the distillation).

They need Ultralytics' model classes (``DetectionModel``, ...) and the layout of its checkpoint files, which are
internals: a release that changes either is fixed here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import torch

from .registration import register, require

_MODEL_CLASSES = {
    "detect": "DetectionModel",
    "segment": "SegmentationModel",
    "pose": "PoseModel",
    "obb": "OBBModel",
    "classify": "ClassificationModel",
    "semantic": "SemanticSegmentationModel",
    "depth": "DepthModel",
}


def build_model(cfg: Union[dict, str], task: str, nc: Optional[int] = None, verbose: bool = False) -> torch.nn.Module:
    """Build the Ultralytics model of ``task`` from a model dict or YAML name, as ``YOLO(cfg)`` builds it.

    Args:
        cfg (dict | str): Model dict or YAML name (``yolov8s.yaml``).
        task (str): One of ``resources.TASKS``.
        nc (int | None): Class count that overrides the YAML's.
        verbose (bool): Print Ultralytics' layer table.

    Returns:
        (torch.nn.Module): The model, an instance of the task's Ultralytics class (``DetectionModel``, ...).
    """
    register()
    import ultralytics.nn.tasks as tasks

    model_class = require(tasks, _MODEL_CLASSES[task])
    if verbose:
        return model_class(cfg, nc=nc, verbose=True)
    level = tasks.LOGGER.level
    tasks.LOGGER.setLevel(logging.WARNING)  # ClassificationModel prints its summary even with verbose=False
    try:
        return model_class(cfg, nc=nc, verbose=False)
    finally:
        tasks.LOGGER.setLevel(level)


def model_dict(name: Union[str, Path]) -> dict:
    """Return the model dict of a model YAML, as ``YOLO(name)`` reads it (packaged names found, scale picked).

    Args:
        name (str | Path): A YAML name or file, such as ``yolov8n-convmixer.yaml``.

    Returns:
        (dict): The parsed YAML, with ``scale`` and ``yaml_file``.
    """
    register()
    import ultralytics.nn.tasks as tasks

    return tasks.yaml_model_load(name)


def save_checkpoint(model: torch.nn.Module, path: Path, task: str, imgsz: int, extra: dict) -> None:
    """Write ``model`` as an Ultralytics checkpoint that ``YOLO(path)`` loads and ``yolo train model=path`` fine-tunes.

    The layout is the one Ultralytics' trainer writes once training ends (``strip_optimizer``): the model under
    ``model``, no optimizer or EMA, ``epoch`` -1, and ``train_args`` with only the task and image size, so training
    from it starts a new run. The weights stay float32. ``extra`` (plain types only, for ``ULTRALYTICS_SAFE_LOAD=1``)
    is stored under ``convmixer_import``. The file appears whole or not at all.

    Args:
        model (nn.Module): An Ultralytics model built by :func:`build_model`.
        path (Path): Output ``.pt`` file.
        task (str): The model's task.
        imgsz (int): Image size recorded as the model's training size.
        extra (dict): What the import did, for the record.
    """
    import datetime
    import os

    from ultralytics import __version__

    ckpt = {
        "date": datetime.datetime.now().astimezone().isoformat(),
        "version": __version__,
        "license": "AGPL-3.0 (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "epoch": -1,
        "best_fitness": None,
        "model": model.float().eval(),
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {"task": task, "imgsz": imgsz},
        "train_metrics": None,
        "train_results": None,
        "convmixer_import": extra,
    }
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        torch.save(ckpt, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)

"""Files the package ships, the names Ultralytics finds them by, and the tasks, families and scales; no torch.

Torch-free, so that ``ultralytics-convmixer --help`` and its error messages never import it.

The YAMLs live at the repository root (``model_yamls/``, ``datasets/``) and ship inside the wheel as
``ultralytics_convmixer/model_yamls`` and ``ultralytics_convmixer/datasets``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

# The tasks the plugin has a packaged YAML, a shapes dataset and a comparison for, and each task's YAML name suffix
# (as stock Ultralytics names them: yolov8n.yaml, yolov8n-seg.yaml, ..., yolo26n-sem.yaml, yolo26n-depth.yaml).
TASKS = ("detect", "segment", "pose", "obb", "classify", "semantic", "depth")
TASK_SUFFIXES: Dict[str, str] = {
    "detect": "",
    "segment": "-seg",
    "pose": "-pose",
    "obb": "-obb",
    "classify": "-cls",
    "semantic": "-sem",
    "depth": "-depth",
}
# The Ultralytics model families with packaged ConvMixer YAMLs (``<family>-convmixer<suffix>.yaml``) and their tasks.
FAMILY_TASKS: Dict[str, tuple] = {"yolov8": TASKS[:5], "yolo11": TASKS[:5], "yolo26": TASKS}
SCALES = "nsmlx"  # the stock scale letters of every family, as in yolov8n.yaml ... yolov8x.yaml
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ultralytics_convmixer/


def resource_dir(name: str) -> Path:
    """Return a folder shipped in the wheel (``ultralytics_convmixer/<name>``), or the repo root's in a checkout.

    Args:
        name (str): The folder's name, ``model_yamls`` or ``datasets``.

    Returns:
        (Path): The folder (it may not exist if the install is broken).
    """
    installed = _PACKAGE_DIR / name
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / name


def unscaled_name(file_name: str) -> str:
    """Drop the scale letter from a model file name, by Ultralytics' rule, applied to a file name only.

    Args:
        file_name (str): A file name such as ``yolov8n-convmixer.yaml`` (no folder: a digit and letter in a folder
            name would match too).

    Returns:
        (str): The name without its scale letter, ``yolov8-convmixer.yaml``; unchanged if it has none.
    """
    return re.sub(rf"(\d+)([{SCALES}])(.+)?$", r"\1\3", file_name)


def model_yamls() -> List[Path]:
    """Return the packaged model YAMLs (one per task; the scale letter is chosen in the name, as for stock YAMLs)."""
    return sorted(resource_dir("model_yamls").glob("*.yaml"))


def model_yaml(name: str) -> Optional[Path]:
    """Return the packaged YAML behind a model name such as ``yolov8n-convmixer.yaml``, or None if there is none.

    Args:
        name (str): File name with or without the scale letter (``yolov8s-convmixer-seg.yaml``).

    Returns:
        (Path | None): The packaged YAML, or None.
    """
    file_name = Path(str(name)).name
    for candidate in (file_name, unscaled_name(file_name)):
        path = resource_dir("model_yamls") / candidate
        if path.is_file():
            return path
    return None


def dataset_yaml(name: str) -> Optional[Path]:
    """Return the packaged data YAML called ``name``, or None if there is none.

    Args:
        name (str): A data YAML name such as ``shapes-detect.yaml`` (a folder in it is ignored).

    Returns:
        (Path | None): The packaged file, or None.
    """
    path = resource_dir("datasets") / Path(str(name)).name
    return path if path.suffix in {".yaml", ".yml"} and path.is_file() else None


def dataset_root(data: dict, yaml_file: Path) -> Path:
    """Return a data YAML's dataset root as Ultralytics' ``check_det_dataset`` resolves it.

    ``path`` as given (relative to the working directory) if that exists, else under Ultralytics' ``datasets_dir``;
    without ``path``, the YAML's own folder. Training, ``compare`` and the shapes generator all use this one rule.

    Args:
        data (dict): The parsed data YAML.
        yaml_file (Path): The file it was read from.

    Returns:
        (Path): The dataset root, absolute.
    """
    root = Path(data.get("path") or Path(yaml_file).parent)
    if not root.exists() and not root.is_absolute():
        from ultralytics.utils import DATASETS_DIR  # only here: reading settings imports torch

        root = DATASETS_DIR / root
    return root.resolve()

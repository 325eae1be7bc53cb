"""Files the package ships (model and data YAMLs) and the names Ultralytics finds them by; no torch import.

The YAMLs live at the repository root (``model_yamls/``, ``datasets/``) and ship inside the wheel as
``ultralytics_convmixer/model_yamls`` and ``ultralytics_convmixer/datasets``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

# The tasks the plugin has a packaged YAML, a shapes dataset and a comparison for, and each task's YAML name suffix
# (as stock Ultralytics names them: yolov8n.yaml, yolov8n-seg.yaml, ...).
TASKS = ("detect", "segment", "pose", "obb", "classify")
TASK_SUFFIXES: Dict[str, str] = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Folder shipped in the wheel (``ultralytics_convmixer/<name>``), or the repo root's for a source checkout."""
    installed = _PACKAGE_DIR / name
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / name


def unscaled_name(file_name: str) -> str:
    """``yolov8n-convmixer.yaml`` -> ``yolov8-convmixer.yaml``, Ultralytics' rule, applied to a file name only."""
    return re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", file_name)


def model_yamls() -> List[Path]:
    """Return the packaged model YAMLs (one per task; the scale letter is chosen in the name, as for stock YAMLs)."""
    return sorted(resource_dir("model_yamls").glob("*.yaml"))


def model_yaml(name: str) -> Optional[Path]:
    """Return the packaged YAML behind a model name such as ``yolov8n-convmixer.yaml``, or None if there is none.

    Args:
        name (str): File name with or without the scale letter (``yolov8s-convmixer-seg.yaml``).
    """
    file_name = Path(str(name)).name
    for candidate in (file_name, unscaled_name(file_name)):
        path = resource_dir("model_yamls") / candidate
        if path.is_file():
            return path
    return None


def dataset_yaml(name: str) -> Optional[Path]:
    """Return the packaged data YAML called ``name`` (``shapes-detect.yaml``), or None if there is none."""
    path = resource_dir("datasets") / Path(str(name)).name
    return path if path.suffix in {".yaml", ".yml"} and path.is_file() else None


def dataset_root(data: dict, yaml_file: Path) -> Path:
    """Return a data YAML's dataset root as Ultralytics' ``check_det_dataset`` resolves it.

    ``path`` as given (relative to the working directory) if that exists, else under Ultralytics' ``datasets_dir``;
    without ``path``, the YAML's own folder. Training, ``compare`` and the shapes generator all use this one rule.

    Args:
        data (dict): The parsed data YAML.
        yaml_file (Path): The file it was read from.
    """
    root = Path(data.get("path") or Path(yaml_file).parent)
    if not root.exists() and not root.is_absolute():
        from ultralytics.utils import DATASETS_DIR  # only here: reading settings imports torch

        root = DATASETS_DIR / root
    return root.resolve()

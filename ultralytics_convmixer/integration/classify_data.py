"""Classify data YAMLs for Ultralytics' classify trainer, which reads a folder of class folders, not a YAML.

A classify data YAML here has ``path`` (the dataset root, with ``train/<class>/`` and ``val/<class>/`` folders),
optional ``train``/``val`` keys that must name those folders, ``names``, and an optional ``download`` script that
creates the dataset (the packaged ``shapes-classify.yaml`` generates it). :func:`classify_root` resolves the root as
Ultralytics resolves a detect data YAML's, runs ``download`` when the root is missing, and returns the folder to hand
to Ultralytics' ``check_cls_dataset``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

from .resources import dataset_root

# The split folders Ultralytics' classify trainer looks for under a dataset root, by data YAML key.
_CLASSIFY_SPLITS = {"train": ("train",), "val": ("val", "validation", "valid", "test"), "test": ("test",)}


def _check_classify_splits(data: dict, yaml_file: Path) -> None:
    """Refuse split keys naming folders Ultralytics would not read; it would quietly take other folders instead."""
    for key, folders in _CLASSIFY_SPLITS.items():
        if data.get(key) and Path(str(data[key])).as_posix().strip("/") not in folders:  # `test:` is often left empty
            raise ValueError(
                f"{yaml_file}: '{key}: {data[key]}' is not supported for classification. Ultralytics' classify trainer "
                f"reads the class folders under the dataset root's {' or '.join(folders)} folder; rename the folder "
                f"and set '{key}: {folders[0]}'."
            )


def warn_if_names_differ(data: dict, folder_names: dict, yaml_file: Union[str, Path]) -> None:
    """Warn when a classify YAML's ``names`` are not its class folders: Ultralytics takes the folders' names.

    Args:
        data (dict): The parsed classify data YAML.
        folder_names (dict): Class index -> class folder name, as Ultralytics' ``check_cls_dataset`` found them.
        yaml_file (str | Path): The YAML's file, for the warning.
    """
    names = data.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if names and [str(v) for v in names.values()] != list(folder_names.values()):
        from ultralytics.utils import LOGGER

        LOGGER.warning(
            f"{yaml_file}: its names {names} are not the class folders {folder_names}; Ultralytics' classify trainer "
            "numbers and names the classes after the folders (sorted), so the model gets the folders' names"
        )


def classify_root(yaml_file: Path) -> Tuple[Path, dict]:
    """Resolve a classify data YAML's dataset root (see :func:`dataset_root`), running ``download`` if needed.

    Args:
        yaml_file (Path): The classify data YAML.

    Returns:
        (Tuple[Path, dict]): The dataset root and the YAML's contents.

    Raises:
        ValueError: If a ``train``/``val``/``test`` key names a folder Ultralytics would not read.
        FileNotFoundError: If the root has no ``train`` folder and the YAML no ``download`` to create it.
    """
    from ultralytics.utils import YAML

    data = YAML.load(yaml_file)
    _check_classify_splits(data, yaml_file)
    root = dataset_root(data, yaml_file)
    if not (root / "train").is_dir():
        script = data.get("download")
        if not script:
            raise FileNotFoundError(f"{yaml_file}: classify dataset not found at {root} and the YAML has no download")
        data["path"] = root
        exec(script, {"yaml": data})  # noqa: S102 - same contract as Ultralytics' detect data YAMLs
    return root.resolve(), data

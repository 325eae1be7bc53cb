"""The models and the data of ``compare``: what each argument names, the models' common task and the data's task.

Data checks are pragmatic: all models must share one task, and the data must fit it. A folder with a ``train``
subfolder is a classification dataset; a data YAML with a ``generator: {task: ...}`` mapping (the packaged shapes
sets) has that task; ``kpt_shape`` means pose; ``masks_dir`` semantic (Ultralytics then reads PNG masks); a
``depth_scale`` key or depth maps beside the val images (``depth/`` for ``images/``, as Ultralytics pairs them) depth;
otherwise the first label files of the val split decide: 5 columns are detect, 9 columns obb, other odd lengths
segment; without labels, a single class named ``depth`` (as in every stock depth YAML) is depth. A detect model may
train on segment data (Ultralytics derives the boxes from the polygons), and so may a semantic model (Ultralytics
rasterises the polygons and adds a background class). When the labels are not there yet (a dataset that is
downloaded or generated on first use) the check is skipped, except that depth models refuse data of several classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..integration.resources import SCALES, TASKS, model_yaml, unscaled_name
from .common import CompareError, log, one_line, register_plugin

# Data tasks each model task can train on (Ultralytics turns polygons into boxes for detect, and into masks with a
# background class for semantic: its PolygonSemanticDataset), and what it makes of the other task's labels.
ACCEPTS = {
    "detect": {"detect", "segment"},
    "segment": {"segment"},
    "pose": {"pose"},
    "obb": {"obb"},
    "classify": {"classify"},
    "semantic": {"semantic", "segment"},
    "depth": {"depth"},
}
CONVERSIONS = {
    ("detect", "segment"): "detect models train on the boxes of its polygons",
    ("semantic", "segment"): "semantic models train on masks drawn from its polygons, plus a background class",
}
IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm", ".heic"}


@dataclass
class ModelSpec:
    """One model of the comparison.

    Attributes:
        arg (str): The model as the user gave it.
        source (str): What ``YOLO()`` is given: a bare stock or packaged YAML name, or an absolute file path.
        name (str): Unique short name, used for the run folder, the state file and the table.
        task (str): The model's task.
    """

    arg: str
    source: str
    name: str
    task: str = ""


def _stock_yaml(name: str) -> str:
    """Return the stock Ultralytics model YAML behind ``name`` (``yolov8n.yaml``), or '' (as ``yaml_model_load``)."""
    from ultralytics.utils.checks import check_yaml

    path = Path(name)
    if path.stem in (f"yolov{d}{x}6" for x in SCALES for d in (5, 8)):
        path = path.with_name(re.sub(rf"(\d+)([{SCALES}])6(.+)?$", r"\1\2-p6\3", path.stem) + path.suffix)
    unified = str(path.with_name(unscaled_name(path.name)))
    return check_yaml(str(path), hard=False) or check_yaml(unified, hard=False) or ""


def resolve_model(arg: str) -> str:
    """Return what ``YOLO()`` should be given for a model argument.

    Args:
        arg (str): A model YAML or weights file, a stock Ultralytics model YAML name (``yolov8n.yaml``) or a packaged
            plugin YAML name (``yolov8n-convmixer.yaml``).

    Returns:
        (str): The absolute path of a local file, or the bare name of a stock or packaged YAML.

    Raises:
        CompareError: If the model cannot be found (weights are never downloaded).
    """
    register_plugin()
    path = Path(arg).expanduser()
    suffix = path.suffix.lower()
    unscaled = path.with_name(unscaled_name(path.name))  # yolov8n-x.yaml -> yolov8-x.yaml
    if path.is_file() or (suffix in {".yaml", ".yml"} and len(path.parts) > 1 and unscaled.is_file()):
        return str(path.absolute())
    if suffix in {".yaml", ".yml"} and (model_yaml(path.name) or _stock_yaml(arg)) and len(path.parts) == 1:
        return arg
    if suffix == ".pt":
        raise CompareError(f"unknown model '{arg}': weights file not found (weights are not downloaded)")
    raise CompareError(
        f"unknown model '{arg}': not a file, a stock Ultralytics model YAML or a packaged ConvMixer YAML"
    )


def _model_name(source: str) -> str:
    """Short name of a model: the file stem, or ``<run>-best`` for ``<run>/weights/best.pt``."""
    path = Path(source)
    if path.parent.name == "weights" and path.parent.parent.name:
        return f"{path.parent.parent.name}-{path.stem}"
    return path.stem


def model_specs(args: Sequence[str]) -> list[ModelSpec]:
    """Resolve the model arguments and give each a unique name (duplicates get ``-2``, ``-3``...).

    Args:
        args (Sequence[str]): Model arguments as given.

    Returns:
        (list[ModelSpec]): One spec per model, task not yet known.
    """
    specs, seen = [], set()
    for arg in args:
        source = resolve_model(arg)
        name, n = _model_name(source), 2
        while name in seen:
            name, n = f"{_model_name(source)}-{n}", n + 1
        seen.add(name)
        specs.append(ModelSpec(arg, source, name))
    return specs


def model_task(source: str) -> str:
    """Return the task of a model YAML or weights file, building or loading the model once (on CPU).

    Building it here, not only reading the YAML, makes a wrong row fail before any model trains, not hours later in
    its own training process.

    Args:
        source (str): A resolved model (see :func:`resolve_model`).

    Returns:
        (str): The model's task.
    """
    from ultralytics import YOLO

    register_plugin()
    return YOLO(source).task


def set_tasks(specs: list[ModelSpec]) -> str:
    """Fill in each spec's task and return the common task.

    Args:
        specs (list[ModelSpec]): The models.

    Returns:
        (str): The task all models share.

    Raises:
        CompareError: If a model cannot be read or the models' tasks differ.
    """
    for spec in specs:
        try:
            spec.task = model_task(spec.source)
        except Exception as e:  # noqa: BLE001 - any failure to read a user's model is a user error
            raise CompareError(f"model '{spec.arg}' cannot be read: {one_line(e)}") from None
    tasks = {s.task for s in specs}
    if len(tasks) > 1:
        listing = ", ".join(f"{s.arg} ({s.task})" for s in specs)
        raise CompareError(f"models must share one task, got {listing}")
    task = tasks.pop()
    if task not in TASKS:
        raise CompareError(f"model '{specs[0].arg}' has task '{task}'; compare supports {', '.join(TASKS)}")
    return task


@dataclass
class DataSpec:
    """The dataset of the comparison.

    Attributes:
        arg (str): What training is given as ``data=``: a bare packaged or stock YAML name, or an absolute path.
        path (Path): The data YAML or classification folder on disk.
        task (str | None): Task the data is for, or None if it cannot be told yet.
        nc (int | None): Number of classes, if known.
        kpt_shape (list | None): Keypoint shape of a pose dataset.
        names (dict | None): Class names by index, if known.
    """

    arg: str
    path: Path
    task: str | None = None
    nc: int | None = None
    kpt_shape: list | None = None
    names: dict | None = None


def resolve_data(arg: str) -> DataSpec:
    """Find a data YAML or classification folder and work out its task and classes.

    Args:
        arg (str): A data YAML or folder path, a packaged YAML name (``shapes-detect.yaml``) or a stock Ultralytics
            data YAML name (``coco8.yaml``).

    Returns:
        (DataSpec): The dataset.

    Raises:
        CompareError: If it does not exist or is not a data YAML.
    """
    register_plugin()
    from ultralytics.utils import DATASETS_DIR
    from ultralytics.utils.checks import check_yaml

    from ..integration.resources import dataset_yaml

    path = Path(arg).expanduser()
    bare = len(path.parts) == 1  # a name to look up; a path names that file, found or not
    is_yaml = path.suffix.lower() in {".yaml", ".yml"}
    if path.exists():
        spec = DataSpec(str(path.resolve()), path.resolve())
    elif bare and dataset_yaml(arg):
        spec = DataSpec(arg, dataset_yaml(arg))
    elif bare and is_yaml and check_yaml(arg, hard=False):
        spec = DataSpec(arg, Path(check_yaml(arg, hard=False)))
    elif bare and not is_yaml and (DATASETS_DIR / arg).is_dir():  # a classification folder, as check_cls_dataset
        spec = DataSpec(str(DATASETS_DIR / arg), DATASETS_DIR / arg)
    elif is_yaml:
        raise CompareError(f"data YAML not found: '{arg}'")
    else:
        raise CompareError(
            f"data not found: '{arg}' is neither a data YAML nor a dataset folder (here or in {DATASETS_DIR})"
        )
    if spec.path.is_dir():
        return _folder_data(spec)
    return _yaml_data(spec)


def _folder_data(spec: DataSpec) -> DataSpec:
    if (spec.path / "train").is_dir():
        spec.task = "classify"
        spec.names = dict(enumerate(sorted(d.name for d in (spec.path / "train").iterdir() if d.is_dir())))
        spec.nc = len(spec.names) or None
        return spec
    yamls = sorted(spec.path.glob("*.yaml"))
    if not yamls:
        raise CompareError(f"data folder '{spec.arg}' has neither a 'train' folder nor a data YAML")
    return _yaml_data(DataSpec(str(yamls[0]), yamls[0]))


def _read_yaml(path: Path) -> dict:
    from ultralytics.utils import YAML

    try:
        d = YAML.load(path)
    except Exception as e:  # noqa: BLE001 - unreadable YAML is a user error
        raise CompareError(f"data YAML '{path}' cannot be read: {one_line(e)}") from None
    if not isinstance(d, dict):
        raise CompareError(f"data YAML '{path}' is not a mapping")
    return d


def _yaml_data(spec: DataSpec) -> DataSpec:
    d = _read_yaml(spec.path)
    if d.get("names") is None and "nc" not in d:
        raise CompareError(f"data YAML '{spec.path}' has neither 'names' nor 'nc'")
    names = d.get("names")
    spec.names = dict(enumerate(names)) if isinstance(names, list) else names if isinstance(names, dict) else None
    spec.nc = len(spec.names) if spec.names else d.get("nc")
    spec.kpt_shape = d.get("kpt_shape")
    split = _split_path(d, spec.path)
    if not d.get("download") and split is not None and not split.exists():
        raise CompareError(f"data YAML '{spec.arg}': images not found at '{split}' (and no 'download:' to fetch them)")
    spec.task = _yaml_task(d, spec)
    return spec


def _yaml_task(d: dict, spec: DataSpec) -> str | None:
    """Tell the task of a parsed data YAML from its keys, then from the files of its val split (None if unsure)."""
    generator = d.get("generator")
    if isinstance(generator, dict) and generator.get("task") in TASKS:
        return generator["task"]
    if spec.kpt_shape:
        return "pose"
    if d.get("masks_dir"):  # Ultralytics reads PNG masks exactly when this key is set
        return "semantic"
    if d.get("depth_scale") is not None or _has_depth_maps(d, spec.path):
        return "depth"
    task = _label_task(d, spec.path)
    if task is None and spec.names == {0: "depth"}:  # not downloaded yet: the stock depth YAMLs' one class
        return "depth"
    return task


def _split_path(d: dict, yaml_path: Path) -> Path | None:
    """Return the val split (else train) as Ultralytics resolves it: a folder, a ``.txt`` list or a missing path."""
    split = d.get("val") or d.get("train")
    split = split[0] if isinstance(split, (list, tuple)) and split else split
    if not isinstance(split, str):
        return None
    from ..integration.resources import dataset_root

    root = dataset_root(d, yaml_path)
    x = (root / split).resolve()
    if not x.exists() and split.startswith("../"):
        x = (root / split[3:]).resolve()
    return x


def _split_images(d: dict, yaml_path: Path, limit: int = 20) -> list[Path]:
    """Return up to ``limit`` image paths of the val split (else train), sorted; [] if the split is not there."""
    x = _split_path(d, yaml_path)
    if x is not None and x.is_file() and x.suffix == ".txt":
        lines = [ln.strip() for ln in x.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        return [(x.parent / ln).resolve() if ln.startswith("./") else Path(ln) for ln in lines[:limit]]
    if x is not None and x.is_dir():
        return sorted(p for p in x.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    return []


def _has_depth_maps(d: dict, yaml_path: Path) -> bool:
    """Whether the first val images have depth maps where Ultralytics' DepthDataset looks: ``images`` -> ``depth``."""
    for image in _split_images(d, yaml_path, limit=5):
        parts = list(image.parts)
        if "images" in parts:
            parts[len(parts) - 1 - parts[::-1].index("images")] = "depth"  # the last one, as Ultralytics replaces
            depth = Path(*parts)
            if depth.with_suffix(".png").is_file() or depth.with_suffix(".npy").is_file():
                return True
    return False


def _label_task(d: dict, yaml_path: Path) -> str | None:
    """Tell detect, obb, segment or classify apart from the first label files of the val split (None if unsure)."""
    from ultralytics.data.utils import img2label_paths

    images = _split_images(d, yaml_path)
    counts = set()
    for label in img2label_paths([str(p) for p in images]):
        if Path(label).is_file():
            lines = Path(label).read_text(encoding="utf-8", errors="replace").splitlines()
            counts |= {len(ln.split()) for ln in lines if ln.strip()}
    if counts == {5}:
        return "detect"
    if counts == {9}:
        return "obb"
    if counts and all(c > 5 and c % 2 for c in counts):
        return "segment"
    if not counts and images and all("images" not in p.parts for p in images):
        return "classify"  # images in class folders and no label files (detect images sit under an images/ folder)
    return None


def check_data_task(data: DataSpec, task: str) -> None:
    """Check that the data fits the models' task.

    A segment dataset for semantic models gets the background class Ultralytics adds to it, so that untrained models
    are built with the classes they would train with.

    Args:
        data (DataSpec): The dataset.
        task (str): The models' task.

    Raises:
        CompareError: If the data is for another task.
    """
    if data.task is None and task == "depth" and (data.nc or 1) > 1:  # depth data has one class, whatever its files
        raise CompareError(f"data '{data.arg}' has {data.nc} classes, not depth's one, but the models are depth models")
    if data.task is None:
        log(f"cannot tell the task of '{data.arg}' before it is downloaded or generated; not checked")
        return
    if data.task not in ACCEPTS[task]:
        hint = {"pose": " (it has 'kpt_shape')", "semantic": " (it has 'masks_dir')"}.get(data.task, "")
        article = "an" if data.task[0] in "aeiou" else "a"
        raise CompareError(f"data '{data.arg}' is {article} {data.task} dataset{hint} but the models are {task} models")
    if data.task != task:
        log(f"'{data.arg}' is a {data.task} dataset; {CONVERSIONS[task, data.task]}")
    if (task, data.task) == ("semantic", "segment") and data.names:
        from ultralytics.data.utils import add_polygon_background

        added = add_polygon_background({"names": dict(data.names), "nc": len(data.names)})
        data.names, data.nc = added["names"], added["nc"]

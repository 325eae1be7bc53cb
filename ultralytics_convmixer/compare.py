"""Train and profile YOLO models side by side: the ``ultralytics-convmixer compare`` command.

Every model is trained with the same Ultralytics arguments and seed (``seed=0``, ``deterministic=True`` unless given),
each in its own subprocess so that its peak memory can be read from the kernel, then all models are profiled in this
process (so that latency ratios are fair) and the results are written as a Markdown table (``compare.md``), a CSV
(``compare.csv``) and a plot (``compare.png``).

What each column means and how it is measured:

- ``params (M)``: parameters of the unfused model (Ultralytics' ``get_num_params``), in millions.
- ``GFLOPs``: Ultralytics' ``get_flops`` at the training ``imgsz`` (the number ``model.info()`` prints).
- ``mAP50(B)``, ``mAP50-95(B)``, and ``(M)`` for masks, ``(P)`` for pose, or ``accuracy_top1``/``accuracy_top5`` for
  classify: Ultralytics' final validation of ``best.pt`` at the end of training (the validator's ``results_dict``).
  The CSV also has precision and recall.
- ``s/epoch``: mean wall time of one epoch's training loop (data loading, forward, backward, optimiser step), timed
  between Ultralytics' ``on_train_epoch_start`` and ``on_train_epoch_end`` callbacks; validation is not included.
  Under multi-GPU (DDP) training the callbacks run elsewhere, and the ``time`` column of ``results.csv`` divided by
  the number of epochs (validation included) is used instead.
- ``peak mem (MB)``: on GPU, ``torch.cuda.max_memory_allocated`` of the training process (training and final
  validation); on CPU, the peak resident set size (RSS) of the training subprocess, as the kernel reports it to
  ``os.wait4`` (``ru_maxrss``). That is the largest single process of the training tree: dataloader workers are
  separate processes and are not added, and it includes the ~0.5 GB that importing torch and Ultralytics costs.
- ``PyTorch b1/b32 (ms)``: median over ``--latency-runs`` forward passes of the fused fp32 model in eval mode at batch
  1 and 32 and the training ``imgsz``, after 3 warm-up passes, on the training device (CUDA is synchronised around
  each pass). Random input already on the device; the head's output decoding is included, NMS is not. The models take
  turns pass by pass (model A, model B, A, B, ...), so that drift of the machine's speed (turbo, thermal limits,
  other load) hits all of them alike; on a 2-core VM timing one model after the other moved the ratio by 10-20%.
- ``ONNX b1/b32 (ms)``: the same for the model exported by Ultralytics to ONNX (``dynamic=True``, ``simplify=False``;
  ONNX Runtime does its own graph optimisation) and run with ONNX Runtime, on the CUDA execution provider when
  training used a GPU and it is available (host-to-device copies included), else the CPU provider.

Data checks are pragmatic: all models must share one task, and the data must fit it. A folder with a ``train``
subfolder is a classification dataset; a data YAML with a ``generator: {task: ...}`` mapping (the packaged shapes
sets) has that task; ``kpt_shape`` means pose; otherwise the first label files of the val split decide: 5 columns are
detect, 9 columns obb, other odd lengths segment. A detect model may train on segment data (Ultralytics derives the
boxes from the polygons). When the labels are not there yet (a dataset that is downloaded or generated on first use)
the check is skipped.

An interrupted comparison resumes: each model's state is kept in ``<out>/state/<name>.json``, and re-running the same
command skips the models whose training finished with the same settings and continues an interrupted training from its
last saved epoch (Ultralytics' ``resume``). Training runs are in ``<out>/runs/<name>``; one that cannot be reused is
renamed to ``<name>.previous-<time>``, never deleted.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .resources import TASKS

DEFAULT_MODELS = ("yolov8n.yaml", "yolov8n-convmixer.yaml")
DEFAULT_OUT = "runs/compare"
DEFAULT_LATENCY_RUNS = 20
WARMUP_RUNS = 3
LATENCY_BATCHES = (1, 32)
STATE_VERSION = 2  # 2: the config also holds the model's content (YAML or weights file)
# Metric columns shown in the Markdown table, per task (the CSV also has precision and recall).
TABLE_METRICS = {
    "detect": ["mAP50(B)", "mAP50-95(B)"],
    "obb": ["mAP50(B)", "mAP50-95(B)"],
    "segment": ["mAP50(B)", "mAP50-95(B)", "mAP50(M)", "mAP50-95(M)"],
    "pose": ["mAP50(B)", "mAP50-95(B)", "mAP50(P)", "mAP50-95(P)"],
    "classify": ["accuracy_top1", "accuracy_top5"],
}
# Accuracy plotted against latency and GFLOPs, per task.
PLOT_METRIC = {
    "detect": "mAP50-95(B)",
    "obb": "mAP50-95(B)",
    "segment": "mAP50-95(M)",
    "pose": "mAP50-95(P)",
    "classify": "accuracy_top1",
}
# Data tasks each model task can train on (Ultralytics turns polygons into boxes for detect).
ACCEPTS = {
    "detect": {"detect", "segment"},
    "segment": {"segment"},
    "pose": {"pose"},
    "obb": {"obb"},
    "classify": {"classify"},
}
# Arguments compare sets itself.
RESERVED = {  # training arguments compare sets itself, and what to do instead
    "model": "give the models as positional arguments",
    "task": "the task comes from the models",
    "mode": "compare trains, then profiles",
    "resume": "run the same command again to resume",
    **dict.fromkeys(("project", "name", "exist_ok", "save_dir"), "runs go under --out (default runs/compare)"),
}
IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm", ".heic"}
PREFIX = "compare: "


class CompareError(ValueError):
    """A user error (unknown model, missing data, wrong argument); the message is one line naming the culprit."""


class TrainingError(RuntimeError):
    """Training a model failed; Ultralytics' own output above says why."""


def _import_ultralytics() -> None:
    """Import Ultralytics through ``ultralytics.nn.tasks`` first, so that the plugin registers in one go.

    Importing ``ultralytics.data.utils`` first makes the start-up hook register while that module is half-initialised.
    """
    import ultralytics.nn.tasks  # noqa: F401


def log(msg: str) -> None:
    """Print one progress line of the comparison."""
    print(f"{PREFIX}{msg}", flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------
def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` training arguments the way the ``yolo`` CLI does, and check them.

    Args:
        items (Sequence[str]): Strings such as ``epochs=3``, ``device=cpu``, ``fraction=0.5``, ``cache=None``.

    Returns:
        (dict[str, Any]): Argument names to values converted by Ultralytics' ``smart_value`` (int, float, bool,
            None, or the string).

    Raises:
        CompareError: For a malformed item, an unknown or reserved argument, or a value of the wrong type.
    """
    _import_ultralytics()
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg, smart_value

    args: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CompareError(f"argument '{item}' is not key=value")
        if key in RESERVED:
            raise CompareError(f"argument '{key}' is set by compare itself; {RESERVED[key]}")
        if key != "data" and key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, list(DEFAULT_CFG_DICT), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise CompareError(f"unknown training argument '{key}'{hint}")
        args[key] = smart_value(value.strip())
    try:
        check_cfg({k: v for k, v in args.items() if k != "data"})
    except (TypeError, ValueError) as e:
        raise CompareError(" ".join(str(e).split())) from None
    return args


def training_args(overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the arguments every model is trained with: the user's, plus the seed and determinism made explicit."""
    args = {k: v for k, v in overrides.items() if k != "data"}
    args.setdefault("seed", 0)
    args.setdefault("deterministic", True)
    return args


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------
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
    if path.stem in (f"yolov{d}{x}6" for x in "nsmlx" for d in (5, 8)):
        path = path.with_name(re.sub(r"(\d+)([nslmx])6(.+)?$", r"\1\2-p6\3", path.stem) + path.suffix)
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(path))
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
    _import_ultralytics()
    from .resources import model_yaml, unscaled_name

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

    from .integration import register

    register()
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
            raise CompareError(f"model '{spec.arg}' cannot be read: {_one_line(e)}") from None
    tasks = {s.task for s in specs}
    if len(tasks) > 1:
        listing = ", ".join(f"{s.arg} ({s.task})" for s in specs)
        raise CompareError(f"models must share one task, got {listing}")
    task = tasks.pop()
    if task not in TASKS:
        raise CompareError(f"model '{specs[0].arg}' has task '{task}'; compare supports {', '.join(TASKS)}")
    return task


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------
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
    _import_ultralytics()
    from ultralytics.utils import DATASETS_DIR
    from ultralytics.utils.checks import check_yaml

    from .resources import dataset_yaml

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
        raise CompareError(f"data YAML '{path}' cannot be read: {_one_line(e)}") from None
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
    generator = d.get("generator")
    if isinstance(generator, dict) and generator.get("task") in TASKS:
        spec.task = generator["task"]
    elif spec.kpt_shape:
        spec.task = "pose"
    else:
        spec.task = _label_task(d, spec.path)
    return spec


def _split_path(d: dict, yaml_path: Path) -> Path | None:
    """Return the val split (else train) as Ultralytics resolves it: a folder, a ``.txt`` list or a missing path."""
    split = d.get("val") or d.get("train")
    split = split[0] if isinstance(split, (list, tuple)) and split else split
    if not isinstance(split, str):
        return None
    from .resources import dataset_root

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

    Args:
        data (DataSpec): The dataset.
        task (str): The models' task.

    Raises:
        CompareError: If the data is for another task.
    """
    if data.task is None:
        log(f"cannot tell the task of '{data.arg}' before it is downloaded or generated; not checked")
        return
    if data.task not in ACCEPTS[task]:
        hint = " (it has 'kpt_shape')" if data.task == "pose" else ""
        article = "an" if data.task[0] in "aeiou" else "a"
        raise CompareError(f"data '{data.arg}' is {article} {data.task} dataset{hint} but the models are {task} models")
    if data.task != task:
        log(f"'{data.arg}' is a {data.task} dataset; {task} models train on the boxes of its polygons")


# ----------------------------------------------------------------------------------------------------------------------
# Training (one subprocess per model) and resumable state
# ----------------------------------------------------------------------------------------------------------------------
def state_path(out: Path, name: str) -> Path:
    """Return the state file of model ``name`` in the output folder ``out``."""
    return out / "state" / f"{name}.json"


def run_config(spec: ModelSpec, data: DataSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Return what a finished training depends on; a state with another config is trained again.

    The config is returned as its state file stores it (through JSON: ``device=0,1`` is the tuple ``(0, 1)`` in
    ``args`` and the list ``[0, 1]`` in the file), so that a stored config compares equal to the same one again.
    """
    config = {"version": STATE_VERSION, "model": spec.source, "model_content": model_fingerprint(spec.source),
              "data": data.arg, "args": args}  # fmt: skip
    return json.loads(json.dumps(config, default=str))


def model_fingerprint(source: str) -> str:
    """SHA-256 of what a model is built from, so an edited YAML or an upgraded package's YAML is trained again.

    A YAML is hashed as Ultralytics loads it (packaged and stock names resolved, the file path left out); a weights
    file by its bytes.
    """
    if Path(source).suffix.lower() in {".yaml", ".yml"}:
        from ultralytics.nn.tasks import yaml_model_load

        content = {k: v for k, v in yaml_model_load(source).items() if k != "yaml_file"}
        blob = json.dumps(content, sort_keys=True, default=str).encode()
    else:
        blob = Path(source).read_bytes()
    return hashlib.sha256(blob).hexdigest()


def read_state(path: Path) -> dict[str, Any]:
    """Return a model's state file as a dict, empty when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def load_done(out: Path, spec: ModelSpec, config: dict[str, Any]) -> dict[str, Any] | None:
    """Return the results of a finished training of ``spec`` with ``config``, or None if it must be trained.

    Args:
        out (Path): Output folder.
        spec (ModelSpec): The model.
        config (dict[str, Any]): See :func:`run_config`.

    Returns:
        (dict | None): The ``train`` results of the state file.
    """
    state = read_state(state_path(out, spec.name))
    if not state:
        return None
    if state.get("status") != "done":
        log(f"{spec.name}: previous training did not finish")
        return None
    if state.get("config") != config:
        log(f"{spec.name}: settings changed since the last run; training again")
        return None
    if not Path(state["train"].get("weights", "")).is_file():
        log(f"{spec.name}: trained weights are gone; training again")
        return None
    return state["train"]


def resumable_checkpoint(state_file: Path, run_dir: Path, config: dict[str, Any]) -> Path | None:
    """Return ``last.pt`` of an interrupted training with the same ``config`` that Ultralytics can resume, else None.

    Resumable means: the state file says the training started with ``config`` and never finished, and ``last.pt``
    loads, still holds its optimizer (Ultralytics strips it once training ends) and has epochs left to train.
    """
    last = run_dir / "weights" / "last.pt"
    state = read_state(state_file)
    if state.get("status") != "training" or state.get("config") != config or not last.is_file():
        return None
    import torch

    try:  # our own output; weights_only=False because Ultralytics pickles the whole model into it
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as e:  # e.g. cut short while being written
        log(f"{last}: cannot resume from it ({_one_line(e)})")
        return None
    epoch, epochs = ckpt.get("epoch", -1), (ckpt.get("train_args") or {}).get("epochs", 0)
    return last if ckpt.get("optimizer") is not None and 0 <= epoch < epochs - 1 else None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _set_aside(run_dir: Path) -> Path:
    """Rename a run that cannot be reused or resumed to ``<run>.previous-<time>`` (never delete a user's training)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run_dir.stat().st_mtime))
    target, n = run_dir.with_name(f"{run_dir.name}.previous-{stamp}"), 2
    while target.exists():
        target, n = run_dir.with_name(f"{run_dir.name}.previous-{stamp}-{n}"), n + 1
    run_dir.rename(target)
    return target


def _max_rss_mb(maxrss: int) -> float:
    """``ru_maxrss`` in MB: kilobytes on Linux, bytes on macOS."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a training child runs: handled like Ctrl-C, so the child is stopped first."""


def _die_with_parent(parent_pid: int) -> None:
    """In the training child: on Linux, have the kernel send SIGTERM if compare dies, even by SIGKILL (no orphans)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # compare died before that took effect
        sys.exit(f"{PREFIX}compare (pid {parent_pid}) is gone; not training")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(f"signal {signal.Signals(signum).name}")


def _run_child(cmd: list[str]) -> tuple[int, float | None]:
    """Run ``cmd`` with inherited stdout/stderr; return its exit code and peak RSS in MB (None where unknown).

    The child must not outlive this process (an orphan would go on writing ``last.pt`` while the next ``compare``
    resumes from it): Ctrl-C, SIGTERM and SIGHUP stop it before they stop compare, and if compare is killed outright
    the kernel stops it (Linux; see :func:`_die_with_parent`).
    """
    proc = subprocess.Popen(cmd)
    handled = [sig for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if sig is not None]
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in handled} if _in_main_thread() else {}
    try:
        if not hasattr(os, "wait4"):  # Windows
            return proc.wait(), None
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, _max_rss_mb(usage.ru_maxrss)
    except BaseException:
        if proc.returncode is None:
            proc.terminate()
            proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()  # signal handlers can only be set there


def train(spec: ModelSpec, data: DataSpec, args: dict[str, Any], out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Train one model in a subprocess under ``<out>/runs/<name>`` and record its results in its state file.

    A training of the same model with the same settings that was interrupted after saving an epoch is resumed from
    its ``last.pt`` instead of being started again.

    Args:
        spec (ModelSpec): The model.
        data (DataSpec): The dataset.
        args (dict[str, Any]): Ultralytics training arguments (see :func:`training_args`).
        out (Path): Output folder.
        config (dict[str, Any]): What the training depends on, ``run_config(spec, data, args)``.

    Returns:
        (dict[str, Any]): The training results (metrics, time per epoch, peak memory, weights path...).

    Raises:
        TrainingError: If the training subprocess fails.
    """
    run_dir = out / "runs" / spec.name
    state_file = state_path(out, spec.name)
    resume = resumable_checkpoint(state_file, run_dir, config)
    if resume:
        log(f"{spec.name}: resuming the interrupted training from {resume}")
    else:
        if run_dir.exists():
            kept = _set_aside(run_dir)
            log(f"{spec.name}: the previous run in {run_dir} (other settings, or unfinished) is kept as {kept}")
        _write_json(state_file, {"status": "training", "config": config})
        log(f"{spec.name}: training {spec.arg} on {data.arg} in {run_dir}")
    result_file = state_file.with_name(f"{spec.name}.result.json")
    result_file.unlink(missing_ok=True)
    job = {"model": spec.source, "data": data.arg, "args": args, "project": str(run_dir.parent), "name": spec.name}
    job["parent_pid"] = os.getpid()
    job.update(result=str(result_file), resume=str(resume) if resume else None)
    job_file = state_file.with_name(f"{spec.name}.job.json")
    _write_json(job_file, job)
    cmd = [sys.executable, "-c", f"from {__name__} import _train_child; _train_child({str(job_file)!r})"]
    t0 = time.time()
    code, rss_mb = _run_child(cmd)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        hint = " (the kernel's out-of-memory killer sends it; try a smaller batch=)" if name == "SIGKILL" else ""
        raise TrainingError(f"training {spec.arg} was killed by {name}{hint}; run the same command again to resume")
    if code != 0 or not result_file.is_file():
        raise TrainingError(f"training {spec.arg} failed (exit code {code}); see the output above")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result.update(peak_rss_mb=rss_mb, wall_s=time.time() - t0)
    _write_json(state_file, {"status": "done", "config": config, "train": result})
    result_file.unlink(missing_ok=True)
    job_file.unlink(missing_ok=True)
    return result


def _metrics_dict(metrics: Any, trainer: Any) -> dict[str, float]:
    """Return the final validation metrics without the ``metrics/`` prefix and fitness."""
    d = getattr(metrics, "results_dict", None)
    if not isinstance(d, dict):
        d = metrics if isinstance(metrics, dict) else (getattr(trainer, "metrics", None) or {})
    return {k.split("/", 1)[-1]: float(v) for k, v in d.items() if k.startswith("metrics/")}


def _csv_epoch_time(csv_file: Path, resumed_from_epoch: int = 0) -> float | None:
    """Mean epoch time (validation included) of the last training session, from ``results.csv``.

    Its ``time`` column is the wall time since the session started, and a resumed training starts it again from 0,
    so the last row's time over the number of rows since the session's first epoch (``resumed_from_epoch + 1``, the
    last row of that number: a killed session may have logged it too) is the mean.
    """
    try:
        with open(csv_file, encoding="utf-8") as f:
            rows = [(round(float(row["epoch"])), float(row["time"])) for row in csv.DictReader(f)]
        firsts = [i for i, (epoch, _) in enumerate(rows) if epoch == resumed_from_epoch + 1]
        session = rows[firsts[-1] :] if firsts else rows
        return session[-1][1] / len(session)
    except (OSError, KeyError, ValueError, IndexError, TypeError):
        return None


def _train_child(job_file: str) -> None:
    """Train one model as described by ``job_file`` and write its results (runs in the training subprocess)."""
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    _die_with_parent(job["parent_pid"])
    _import_ultralytics()
    import torch
    from ultralytics import YOLO

    model = YOLO(job.get("resume") or job["model"])
    resumed_from = model.ckpt.get("epoch", -1) + 1 if job.get("resume") else 0  # read before training rewrites it
    starts: list[float] = []
    epoch_times: list[float] = []
    model.add_callback("on_train_epoch_start", lambda trainer: starts.append(time.perf_counter()))
    model.add_callback("on_train_epoch_end", lambda trainer: epoch_times.append(time.perf_counter() - starts[-1]))
    train_args = dict(job["args"], resume=True) if job.get("resume") else job["args"]
    metrics = model.train(data=job["data"], project=job["project"], name=job["name"], exist_ok=True, **train_args)
    trainer = model.trainer
    # Multi-GPU: the epochs ran in DDP worker processes, which this trainer only started; it ran no callback, loaded
    # no checkpoint and allocated no GPU memory, so time per epoch comes from results.csv and memory is not known.
    ddp = getattr(trainer, "ddp", False)
    device = getattr(trainer, "device", None)
    on_cuda = device is not None and device.type == "cuda" and torch.cuda.is_available() and not ddp
    weights = trainer.best if trainer.best.exists() else trainer.last
    csv_epoch_time = None if epoch_times else _csv_epoch_time(trainer.csv, resumed_from)
    result = {
        "metrics": _metrics_dict(metrics, trainer),
        "epochs": resumed_from + len(epoch_times) if epoch_times else trainer.epochs,
        "resumed_from_epoch": resumed_from,  # 0 unless resumed; s_per_epoch is over the epochs timed here
        "s_per_epoch": statistics.mean(epoch_times) if epoch_times else csv_epoch_time,
        "epoch_times_s": epoch_times,
        "peak_gpu_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else None,
        "device": str(device),
        "imgsz": trainer.args.imgsz,
        "weights": str(Path(weights).resolve()),
        "save_dir": str(Path(trainer.save_dir).resolve()),
    }
    _write_json(Path(job["result"]), result)


# ----------------------------------------------------------------------------------------------------------------------
# Profiling: params, GFLOPs, latency (PyTorch and ONNX Runtime)
# ----------------------------------------------------------------------------------------------------------------------
def _imgsz_hw(imgsz: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(imgsz, (list, tuple)):
        return (int(imgsz[0]), int(imgsz[-1]))
    return (int(imgsz), int(imgsz))


def median_ms(step: Callable[[], Any], runs: int, warmup: int, sync: Callable[[], Any] = lambda: None) -> float:
    """Median wall time of ``step`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    return interleaved_medians([{"step": (step, sync)}], runs, warmup)[0]["step"]


def pytorch_step(model: Any, imgsz: int | Sequence[int], batch: int, device: Any = "cpu") -> tuple[Callable, Callable]:
    """Return ``(step, sync)``: one inference-mode forward pass of ``model`` on random input, and a CUDA sync."""
    import torch

    device = torch.device(device)
    x = torch.rand(batch, 3, *_imgsz_hw(imgsz), device=device)
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


def onnx_step(session: Any, imgsz: int | Sequence[int], batch: int) -> Callable:
    """Return one ONNX Runtime run of ``session`` on random input (input copies to the device included)."""
    import numpy as np

    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, 3, *_imgsz_hw(imgsz)), dtype=np.float32)
    return lambda: session.run(None, {name: x})


def interleaved_medians(steps: list[dict[str, tuple[Callable, Callable]]], runs: int, warmup: int) -> list[dict]:
    """Time several models' steps taking turns run by run, so that drift of the machine's speed hits all alike.

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
    f = yolo.export(format="onnx", imgsz=list(_imgsz_hw(imgsz)), dynamic=dynamic, simplify=False, device=str(device))
    return Path(f)


def _onnx_available() -> bool:
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
    _import_ultralytics()
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


def prepare_profile(
    yolo: Any, name: str, imgsz: int, device: Any, onnx_dir: Path | None
) -> tuple[dict[str, Any], dict[str, tuple[Callable, Callable]]]:
    """Measure params and GFLOPs of one model and prepare its latency steps (PyTorch, and ONNX Runtime if asked).

    Args:
        yolo (ultralytics.YOLO): The model.
        name (str): Its name (the ONNX file is ``<onnx_dir>/<name>.onnx``).
        imgsz (int): Image size.
        device (torch.device): Device to time on.
        onnx_dir (Path | None): Folder for the ONNX export; None skips ONNX.

    Returns:
        (tuple[dict, dict]): ``{params, gflops, onnx_provider}`` and ``{key: (step, sync)}`` for the keys
            ``pt_b1_ms``, ``pt_b32_ms``, ``onnx_b1_ms``, ``onnx_b32_ms`` (see :func:`interleaved_medians`).
    """
    from copy import deepcopy

    from ultralytics.utils.torch_utils import get_flops, get_num_params

    row: dict[str, Any] = {"params": get_num_params(yolo.model), "gflops": get_flops(deepcopy(yolo.model), imgsz)}
    model = deepcopy(yolo.model).float().to(device).eval()
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    for p in model.parameters():
        p.requires_grad_(False)
    steps = {f"pt_b{b}_ms": pytorch_step(model, imgsz, b, device) for b in LATENCY_BATCHES}
    if onnx_dir is not None:
        try:
            session = onnx_session(export_onnx(yolo, onnx_dir / f"{name}.onnx", imgsz, device), device)
            row["onnx_provider"] = session.get_providers()[0]
            steps.update({f"onnx_b{b}_ms": (onnx_step(session, imgsz, b), lambda: None) for b in LATENCY_BATCHES})
        except Exception as e:  # noqa: BLE001 - keep the other columns; say why these are empty
            log(f"{name}: ONNX export or ONNX Runtime failed, ONNX columns left empty: {_one_line(e)}")
    return row, steps


# ----------------------------------------------------------------------------------------------------------------------
# Report: Markdown, CSV, plot
# ----------------------------------------------------------------------------------------------------------------------
# (key, table header): PyTorch b1, PyTorch b32, ONNX b1, ONNX b32.
LATENCY_COLUMNS = [
    (f"{rt}_b{b}_ms", f"{label} b{b} (ms)")
    for rt, label in (("pt", "PyTorch"), ("onnx", "ONNX"))
    for b in LATENCY_BATCHES
]


def _fmt(x: Any, digits: int | None = None) -> str:
    if x is None or x == "":
        return ""
    if digits is not None:
        return f"{x:.{digits}f}"
    ax = abs(x)
    return f"{x:.0f}" if ax >= 100 else f"{x:.1f}" if ax >= 10 else f"{x:.2f}" if ax >= 1 else f"{x:.3g}"


def _cell(x: Any, base: Any = None, digits: int | None = None) -> str:
    """Format a number, followed by its ratio to ``base`` when there is one."""
    text = _fmt(x, digits)
    return f"{text} ({x / base:.2f}×)" if text and base else text


def _peak_mem(row: dict[str, Any]) -> float | None:
    return row.get("peak_gpu_mem_mb") if row.get("peak_gpu_mem_mb") is not None else row.get("peak_rss_mb")


def metric_columns(rows: list[dict[str, Any]], task: str) -> list[str]:
    """Return the metric columns of the CSV: the table's for the task, then any other metric a model reported."""
    cols = list(TABLE_METRICS[task])
    for row in rows:
        cols += [k for k in row.get("metrics", {}) if k not in cols]
    return cols


def markdown_table(rows: list[dict[str, Any]], task: str) -> str:
    """Return the comparison as a Markdown table, with ratios against the first model (the baseline).

    Args:
        rows (list[dict[str, Any]]): One result per model (see :func:`compare`).
        task (str): The models' task.

    Returns:
        (str): The table.
    """
    metrics = TABLE_METRICS[task]
    header = ["model", "params (M)", "GFLOPs", *metrics, "s/epoch", "peak mem (MB)", *(h for _, h in LATENCY_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for i, r in enumerate(rows):
        b = rows[0] if i else {}  # no ratios on the baseline's own row
        cells = [
            r["name"],
            _cell(r["params"] / 1e6, b and b["params"] / 1e6, 2),
            _cell(r["gflops"], b.get("gflops")),
            *(_fmt(r.get("metrics", {}).get(m), 3) for m in metrics),
            _cell(r.get("s_per_epoch"), b.get("s_per_epoch")),
            _cell(_peak_mem(r), b and _peak_mem(b), 0),
            *(_cell(r.get(k), b.get(k)) for k, _ in LATENCY_COLUMNS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_HEAD = ["model", "source", "task", "params", "gflops", "imgsz"]
CSV_TAIL = ["epochs", "s_per_epoch", "train_wall_s", "peak_gpu_mem_mb", "peak_rss_mb"]
CSV_TAIL += [k for k, _ in LATENCY_COLUMNS] + ["device", "onnx_provider", "weights", "run_dir"]


def _csv_value(x: Any) -> Any:
    return float(f"{x:.6g}") if isinstance(x, float) else x


def write_csv(rows: list[dict[str, Any]], task: str, path: Path) -> None:
    """Write one CSV row per model with raw numbers (params as a count, times in s or ms, memory in MB).

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.
        path (Path): The CSV file.
    """
    metrics = metric_columns(rows, task)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*CSV_HEAD, *metrics, *CSV_TAIL])
        for r in rows:
            values = {**r, "model": r["name"], "train_wall_s": r.get("wall_s"), "run_dir": r.get("save_dir")}
            cells = [values.get(k) for k in CSV_HEAD] + [r.get("metrics", {}).get(m) for m in metrics]
            w.writerow([_csv_value(x) for x in cells + [values.get(k) for k in CSV_TAIL]])


def plot(rows: list[dict[str, Any]], task: str, path: Path) -> None:
    """Plot accuracy against PyTorch batch-1 latency and against GFLOPs, one labelled point per model.

    Without accuracy (``--no-train``) parameters are plotted instead.

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.
        path (Path): The PNG file.
    """
    from matplotlib.figure import Figure

    metric = PLOT_METRIC[task]
    accuracy = all(r.get("metrics", {}).get(metric) is not None for r in rows)
    ys = [r["metrics"][metric] if accuracy else r["params"] / 1e6 for r in rows]
    ylabel = metric if accuracy else "params (M)  (not trained: no accuracy)"
    fig = Figure(figsize=(11, 4.5), tight_layout=True)
    axes = fig.subplots(1, 2)
    for ax, key, xlabel in zip(axes, ("pt_b1_ms", "gflops"), ("PyTorch latency, batch 1 (ms)", "GFLOPs")):
        xs = [r.get(key) for r in rows]
        for x, y, r in zip(xs, ys, rows):
            if x is not None and y is not None:
                ax.scatter([x], [y], s=40)
                ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
        ax.margins(x=0.25, y=0.2)  # room for the labels
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{ylabel.split()[0]} vs latency ({rows[0].get('device_name', '')})")
    axes[1].set_title(f"{ylabel.split()[0]} vs GFLOPs (imgsz {rows[0].get('imgsz')})")
    fig.savefig(path, dpi=120)


def _notes(rows: list[dict[str, Any]], task: str, data: DataSpec, args: dict[str, Any], trained: bool) -> str:
    r = rows[0]
    gpu = any(x.get("peak_gpu_mem_mb") is not None for x in rows)
    mem = "torch.cuda.max_memory_allocated during training" if gpu else "peak RSS of the training process"
    shown = " ".join(f"{k}={v}" for k, v in args.items())
    lines = [
        f"task: {task}; data: {data.arg}; imgsz: {r.get('imgsz')}; latency device: {r.get('device_name')}"
        f"; ONNX Runtime provider: {r.get('onnx_provider') or 'n/a'}",
        f"training arguments: {shown}" if trained else "not trained (--no-train): accuracy, time and memory are empty",
        f"ratios (×) are against the first model, {r['name']}; latency is the median of {r.get('latency_runs')} runs"
        f" after {WARMUP_RUNS} warm-up runs, the models taking turns" + (f"; peak mem is {mem}." if trained else "."),
    ]
    return "\n".join(f"- {ln}" for ln in lines)


# ----------------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------------
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


def _latency_device(args: dict[str, Any]) -> Any:
    """Return the torch device of ``device=`` (the first GPU of a multi-GPU list), as Ultralytics picks it."""
    from ultralytics.utils.torch_utils import select_device

    device = "" if args.get("device") is None else str(args["device"])
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        return select_device(device.split(",")[0], verbose=False)
    except Exception as e:  # noqa: BLE001 - a bad device= is a user error
        raise CompareError(f"device '{args.get('device')}': {_one_line(e)}") from None
    finally:  # 8.3's select_device sets it for this process (8.4's does not); training subprocesses must not inherit it
        if env is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = env


def prepare(
    models: Sequence[str], data: str | None, overrides: dict[str, Any]
) -> tuple[list[ModelSpec], str, DataSpec]:
    """Resolve and check models and data before anything is trained.

    Args:
        models (Sequence[str]): Model arguments (default: :data:`DEFAULT_MODELS`).
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
) -> CompareResult:
    """Train (unless ``train_models`` is False) and profile models, and write the table, CSV and plot.

    Args:
        models (Sequence[str]): Model YAMLs or weights; default ``yolov8n.yaml`` against ``yolov8n-convmixer.yaml``.
        data (str | None): Data YAML; default ``shapes-<task>.yaml`` of the models' task.
        out (str | Path): Output folder (state, runs, ONNX files and reports).
        train_models (bool): Train each model; False profiles the untrained models only.
        latency_runs (int): Timed runs per latency measurement.
        overrides (dict[str, Any] | None): Ultralytics training arguments (see :func:`parse_overrides`).

    Returns:
        (CompareResult): The rows and the paths of the reports.

    Raises:
        CompareError: For a user error (before any training starts).
        TrainingError: If a training fails.
    """
    overrides = dict(overrides or {})
    if latency_runs < 1:
        raise CompareError(f"--latency-runs must be >= 1, got {latency_runs}")
    specs, task, data_spec = prepare(models, data, overrides)
    args = training_args(overrides)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"{len(specs)} models ({', '.join(s.name for s in specs)}), task {task}, data {data_spec.arg}, output {out}")
    trained = train_all(specs, data_spec, args, out) if train_models else {}
    device = _latency_device(args)  # after training: selecting a device changes this process's CUDA view
    rows = profile_all(specs, data_spec, trained, _training_imgsz(args), device, latency_runs, out)
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


def _training_imgsz(args: dict[str, Any]) -> int:
    """Return the image size training uses for these arguments (Ultralytics rounds it to a multiple of the stride)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.utils.checks import check_imgsz

    return check_imgsz(args.get("imgsz", DEFAULT_CFG_DICT["imgsz"]), stride=32, floor=32, max_dim=1)


def profile_all(
    specs: list[ModelSpec],
    data: DataSpec,
    trained: dict[str, dict[str, Any]],
    imgsz: int,
    device: Any,
    runs: int,
    out: Path,
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

    Returns:
        (list[dict[str, Any]]): One row per model: training results and profile.
    """
    onnx_dir = out / "onnx" if _onnx_available() else None
    if onnx_dir is None:
        log("onnx/onnxruntime not installed (pip install 'ultralytics-convmixer[export]'); ONNX columns left empty")
    rows, steps = [], []
    for spec in specs:
        t = trained.get(spec.name, {})
        size = t.get("imgsz") or imgsz  # the size training really used
        log(f"{spec.name}: preparing at imgsz {size} on {device}")
        yolo = build_model(spec, data, t.get("weights"))
        row = {"name": spec.name, "source": spec.source, "task": spec.task, **t, "imgsz": size}
        measured, model_steps = prepare_profile(yolo, spec.name, size, device, onnx_dir)
        rows.append({**row, **measured, "device_name": str(device), "latency_runs": runs})
        steps.append(model_steps)
    log(f"timing {len(specs)} models in turns ({runs} runs per latency, {WARMUP_RUNS} warm-up runs)")
    for row, latencies in zip(rows, interleaved_medians(steps, runs, WARMUP_RUNS)):
        row.update(latencies)
    return rows


def write_reports(
    rows: list[dict[str, Any]], task: str, data: DataSpec, args: dict[str, Any], trained: bool, out: Path
) -> CompareResult:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png``, print the table and the paths.

    Untrained models (``--no-train``) get ``profile.md``, ``profile.csv`` and ``profile.png`` instead, so profiling
    into the folder of a finished comparison leaves its accuracy report as it was.

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.
        data (DataSpec): The dataset.
        args (dict[str, Any]): Training arguments.
        trained (bool): Whether the models were trained.
        out (Path): Output folder.

    Returns:
        (CompareResult): The rows and the paths.
    """
    stem = "compare" if trained else "profile"
    result = CompareResult(rows, out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.png")
    text = markdown_table(rows, task) + "\n\n" + _notes(rows, task, data, args, trained) + "\n"
    result.markdown.write_text(text, encoding="utf-8")
    write_csv(rows, task, result.csv)
    plot(rows, task, result.plot)
    print("\n" + text, flush=True)
    for path in (result.markdown, result.csv, result.plot):
        log(f"wrote {path}")
    return result


if __name__ == "__main__":  # pragma: no cover - the CLI is ultralytics_convmixer.cli
    sys.exit("use: ultralytics-convmixer compare --help")

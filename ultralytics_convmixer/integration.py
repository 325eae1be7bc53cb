"""Everything that touches Ultralytics internals lives here, so a new Ultralytics release is fixed in one place.

:func:`register` (idempotent, called by the start-up hook right after ``ultralytics.nn.tasks`` is imported):

- puts the plugin classes into ``ultralytics.nn.tasks``' namespace, where ``parse_model`` looks module names up;
- wraps ``parse_model`` so plugin rows are treated like native rows: input channels come from the graph for any
  ``from``, output channels are scaled as ``make_divisible(min(c2, max_channels) * width, 8)``, repeats by depth, and
  ``Index`` rows after a ``ConvMixerBackbone`` get the backbone's real channels at every scale. Each plugin row is
  built here, handed to the original ``parse_model`` as an ``Index`` stub that records its true output channels, and
  swapped in afterwards; the layer table is rewritten to show the plugin's module and real arguments;
- wraps ``yaml_model_load`` so ``yolov8n-convmixer.yaml`` resolves to the packaged YAML from any directory (a file of
  that name in the working directory wins) and the scale letter picks the scale as for stock names;
- wraps ``check_det_dataset``/``check_cls_dataset`` so the packaged ``datasets/*.yaml`` work by bare name, and a
  classify data YAML is turned into the directory Ultralytics expects;
- wraps ``BaseModel.fuse`` so it also folds the plugin's BatchNorms into their convolutions (``fold_batchnorm``);
- registers the plugin classes as safe globals for ``ULTRALYTICS_SAFE_LOAD=1``.

Nothing is written into the installed Ultralytics package.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import logging
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from . import modules as cm
from .dwconv import DepthwiseConv2d

SUPPORTED = "ultralytics>=8.3.253,<=8.4.190"
PLUGIN_MODULES: Dict[str, type] = {
    "ConvMixerBlock": cm.ConvMixerBlock,
    "PatchEmbed": cm.PatchEmbed,
    "ConvMixerStage": cm.ConvMixerStage,
    "ConvMixerBackbone": cm.ConvMixerBackbone,
}
# Every class a plugin checkpoint may pickle, for torch's weights_only unpickler (ULTRALYTICS_SAFE_LOAD=1).
SAFE_GLOBALS = [*PLUGIN_MODULES.values(), cm.FeatureSpec, cm._Resample, DepthwiseConv2d]
_PACKAGE_DIR = Path(__file__).resolve().parent
_registered = False
_register_lock = threading.Lock()


# ----------------------------------------------------------------------------------------------------------------------
# Packaged files
# ----------------------------------------------------------------------------------------------------------------------
def _resource_dir(name: str) -> Path:
    """Folder shipped in the wheel (``ultralytics_convmixer/<name>``), or the repo root's for a source checkout."""
    installed = _PACKAGE_DIR / name
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / name


def model_yamls() -> List[Path]:
    """Return the packaged model YAMLs (one per task; the scale letter is chosen in the name, as for stock YAMLs)."""
    return sorted(_resource_dir("model_yamls").glob("*.yaml"))


def model_yaml(name: str) -> Optional[Path]:
    """Return the packaged YAML behind a model name such as ``yolov8n-convmixer.yaml``, or None if there is none.

    Args:
        name (str): File name with or without the scale letter (``yolov8s-convmixer-seg.yaml``).
    """
    stem = Path(str(name)).name
    for candidate in (stem, _unscaled(stem)):
        path = _resource_dir("model_yamls") / candidate
        if path.is_file():
            return path
    return None


def dataset_yaml(name: str) -> Optional[Path]:
    """Return the packaged data YAML called ``name`` (``shapes-detect.yaml``), or None if there is none."""
    path = _resource_dir("datasets") / Path(str(name)).name
    return path if path.suffix in {".yaml", ".yml"} and path.is_file() else None


def _unscaled(stem: str) -> str:
    """``yolov8n-convmixer.yaml`` -> ``yolov8-convmixer.yaml``, applied to the file name only (not to folders)."""
    import re

    return re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem)


# ----------------------------------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------------------------------
def _ultralytics_version() -> str:
    try:
        from importlib.metadata import version

        return version("ultralytics")
    except Exception:  # noqa: BLE001 - only used in an error message
        return "unknown"


def _require(module, name: str):
    """Return ``module.name``; if a newer Ultralytics removed it, fail with a message naming the version."""
    if not hasattr(module, name):
        raise ImportError(
            f"ultralytics-convmixer relies on {module.__name__}.{name}, which is missing in ultralytics "
            f"{_ultralytics_version()}; this plugin supports {SUPPORTED}. Install a supported Ultralytics release."
        )
    return getattr(module, name)


_wrappers: Dict[str, tuple] = {}  # name -> (original, wrapper), to rebind modules that import them later


def _replace_everywhere(module, name: str, new: Callable) -> None:
    """Set ``module.name = new`` and rebind every loaded ``ultralytics.*`` module that imported the original by name."""
    original = getattr(module, name)
    if getattr(original, "_convmixer", False):
        return  # already wrapped (a nested or concurrent register())
    _wrappers[name] = (original, new)
    for mod in list(sys.modules.values()):
        if (getattr(mod, "__name__", None) or "").startswith("ultralytics"):
            _rebind(mod)


def _rebind(module) -> None:
    """Point names that ``module`` imported from a patched Ultralytics module at the plugin's wrappers."""
    namespace = getattr(module, "__dict__", {})
    for name, (original, wrapper) in _wrappers.items():
        if namespace.get(name) is original:
            setattr(module, name, wrapper)


def register() -> None:
    """Register the plugin with Ultralytics in this process; idempotent, ImportError on an unsupported release."""
    global _registered
    # Imported before taking the lock: with the start-up hook installed, the import runs register() itself, and a
    # thread importing it at the same time holds Python's lock on the module while its hook waits for ours.
    import ultralytics.nn.tasks as tasks

    with _register_lock:
        if _registered:
            return
        for name in ("parse_model", "yaml_model_load", "guess_model_scale", "make_divisible", "Index", "LOGGER"):
            _require(tasks, name)
        _require(_require(tasks, "BaseModel"), "fuse")
        data_utils = sys.modules.get("ultralytics.data.utils")
        if not hasattr(data_utils, "check_cls_dataset"):  # not loaded, or half-initialised: patched once it has loaded
            data_utils = None
        if data_utils is not None:
            _require_data_utils(data_utils)  # before any change, so a failure leaves nothing half registered
        for name, cls in PLUGIN_MODULES.items():
            setattr(tasks, name, cls)
        _replace_everywhere(tasks, "parse_model", _wrap(tasks.parse_model, _parse_model))
        _replace_everywhere(tasks, "yaml_model_load", _wrap(tasks.yaml_model_load, _yaml_model_load))
        if not getattr(tasks.BaseModel.fuse, "_convmixer", False):
            tasks.BaseModel.fuse = _fuse_method(tasks.BaseModel.fuse)
        if hasattr(torch.serialization, "add_safe_globals"):
            torch.serialization.add_safe_globals(SAFE_GLOBALS)
        _registered = True
        if data_utils is not None:
            _patch_data_utils(data_utils)


def on_module_loaded(module) -> None:
    """Finish registration for an Ultralytics module that has just been imported (called by the start-up hook)."""
    if module.__name__ == "ultralytics.data.utils":
        _patch_data_utils(module)
    else:
        _rebind(module)


def _patch_data_utils(data_utils) -> None:
    """Let packaged data YAMLs resolve by bare name and classify data YAMLs work (see the module docstring)."""
    if "check_det_dataset" in _wrappers:
        return
    _require_data_utils(data_utils)
    _replace_everywhere(data_utils, "check_det_dataset", _wrap(data_utils.check_det_dataset, _check_det_dataset))
    _replace_everywhere(data_utils, "check_cls_dataset", _wrap(data_utils.check_cls_dataset, _check_cls_dataset))


def _require_data_utils(data_utils) -> None:
    for name in ("check_det_dataset", "check_cls_dataset"):
        _require(data_utils, name)


def _wrap(original: Callable, replacement: Callable) -> Callable:
    """Return ``replacement`` bound to ``original`` (its first argument), looking like ``original`` to introspection."""
    wrapper = functools.wraps(original)(functools.partial(replacement, original))
    wrapper._convmixer = True
    return wrapper


def _fuse_method(original: Callable) -> Callable:
    """``BaseModel.fuse`` that also folds the plugin's BatchNorms (Ultralytics' own fuse knows only its layers).

    Ultralytics' layers go first: 8.3's ``fuse`` does nothing once fewer than 10 BatchNorms are left, so folding the
    plugin's first would leave a classify head's BatchNorm in place. The summary is printed once both are folded.
    """

    @functools.wraps(original)
    def fuse(self, verbose: bool = True, **kwargs):
        original(self, verbose=False, **kwargs)
        cm.fold_batchnorm(self)
        if verbose:
            self.info(verbose=True, **kwargs)  # kwargs: ``imgsz``, where Ultralytics' fuse takes it (8.4)
        return self

    fuse._convmixer = True
    return fuse


# ----------------------------------------------------------------------------------------------------------------------
# Model and data YAML names
# ----------------------------------------------------------------------------------------------------------------------
def _yaml_model_load(original: Callable, path):
    """Load a model YAML; a packaged plugin YAML is found by name unless a local file of that name exists."""
    import ultralytics.nn.tasks as tasks

    name = Path(str(path))
    packaged = model_yaml(name.name)
    local = name.exists() or (name.parent / _unscaled(name.name)).exists()
    if packaged is None or local or name.parent != Path("."):  # a path names that file, found or not (as stock)
        return original(path)
    from ultralytics.utils import YAML

    d = YAML.load(packaged)
    d["scale"] = tasks.guess_model_scale(name)
    d["yaml_file"] = str(packaged.with_name(name.name))
    return d


def _packaged_data(dataset):
    """Map a bare data YAML name such as ``shapes-detect.yaml`` to the packaged file unless a local file exists."""
    if isinstance(dataset, (str, Path)) and Path(dataset).parent == Path(".") and not Path(dataset).exists():
        return dataset_yaml(str(dataset)) or dataset
    return dataset


def _check_det_dataset(original: Callable, dataset, *args, **kwargs):
    return original(_packaged_data(dataset), *args, **kwargs)


def _check_cls_dataset(original: Callable, dataset, *args, **kwargs):
    """Accept a classify data YAML (``path``, ``download``): generate it if needed and pass its directory on."""
    dataset = _packaged_data(dataset)
    if not (str(dataset).lower().endswith((".yaml", ".yml")) and Path(dataset).is_file()):
        return original(dataset, *args, **kwargs)
    root, data = _classify_root(Path(dataset))
    result = original(root, *args, **kwargs)
    _warn_if_names_differ(data, result["names"], dataset)
    return result


def dataset_root(data: dict, yaml_file: Path) -> Path:
    """Return a data YAML's dataset root as Ultralytics' ``check_det_dataset`` resolves it.

    ``path`` as given (relative to the working directory) if that exists, else under Ultralytics' ``datasets_dir``;
    without ``path``, the YAML's own folder. Used for classify YAMLs and by ``compare``, so all agree with training.
    """
    from ultralytics.utils import DATASETS_DIR

    root = Path(data.get("path") or Path(yaml_file).parent)
    if not root.exists() and not root.is_absolute():
        root = DATASETS_DIR / root
    return root.resolve()


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


def _warn_if_names_differ(data: dict, folder_names: dict, yaml_file) -> None:
    """Warn when a classify YAML's ``names`` are not its class folders: Ultralytics takes the folders' names."""
    names = data.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if names and [str(v) for v in names.values()] != list(folder_names.values()):
        from ultralytics.utils import LOGGER

        LOGGER.warning(
            f"{yaml_file}: its names {names} are not the class folders {folder_names}; Ultralytics' classify trainer "
            "numbers and names the classes after the folders (sorted), so the model gets the folders' names"
        )


def _classify_root(yaml_file: Path) -> Tuple[Path, dict]:
    """Resolve a classify data YAML's dataset root (see :func:`dataset_root`), running ``download`` if needed.

    Returns:
        (Tuple[Path, dict]): The dataset root and the YAML's contents.
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


# ----------------------------------------------------------------------------------------------------------------------
# parse_model: plugin rows treated like native rows
# ----------------------------------------------------------------------------------------------------------------------
# YAML arguments each plugin module takes after the injected input channels (n is injected for ConvMixerStage).
YAML_ARGS = {
    "ConvMixerBlock": ["k", "act", "shortcut", "order"],
    "PatchEmbed": ["c2", "p", "act", "order"],
    "ConvMixerStage": ["c2", "k", "act", "shortcut", "order"],
    "ConvMixerBackbone": ["channels", "depths", "k", "design", "act", "shortcut", "order"],
}
# Native modules whose first argument is an output channel count scaled by width (parse_model's ``base_modules``;
# Classify's stays the class count).
_SCALED_NATIVE = (
    "Classify Conv ConvTranspose GhostConv Bottleneck GhostBottleneck SPP SPPF C2fPSA C2PSA DWConv Focus BottleneckCSP "
    "C1 C2 C2f C3k2 RepNCSPELAN4 ELAN1 ADown AConv SPPELAN C2fAttn C3 C3TR C3Ghost DWConvTranspose2d C3x RepC3 PSA "
    "SCDown C2fCIB A2C2f nn.ConvTranspose2d"
).split()


# Native modules whose output channels parse_model sets in ways the planner does not follow (lists, heads).
_CHANNELS_NOT_MODELLED = {"CBLinear", "AIFI", "RTDETRDecoder", "ImagePoolingAttn"}


@functools.cache
def _keeps_nc_channels_unscaled() -> bool:
    """Whether this Ultralytics leaves a row unscaled by width when its channels equal ``nc`` (8.3 does, 8.4 not).

    Asked of the original ``parse_model`` itself, with a one-layer model, rather than read off a version number.
    """
    import ultralytics.nn.tasks as tasks

    parse = _wrappers["parse_model"][0] if "parse_model" in _wrappers else tasks.parse_model
    d = {"nc": 16, "depth_multiple": 1.0, "width_multiple": 0.5, "backbone": [[-1, 1, "Conv", [16, 3]]], "head": []}
    layers, _ = parse(d, 3, verbose=False)
    return layers[0].conv.out_channels == 16


class PlanError(ValueError):
    """A plugin row of a model YAML is wrong; the message names the file, layer, module and argument."""


def _literal(a):
    """Evaluate a YAML string argument the way parse_model does for literals, leaving names such as ``gelu`` alone."""
    if isinstance(a, str):
        try:
            return ast.literal_eval(a)
        except (ValueError, SyntaxError):
            return a
    return a


def _parse_model(original: Callable, d: dict, ch, verbose: bool = True):
    """Build plugin rows here, let the original parse_model build the rest around ``Index`` stubs, then swap them in."""
    rows = d["backbone"] + d["head"]
    if not any(row[2] in PLUGIN_MODULES for row in rows):
        return original(d, ch, verbose)
    plan = _Planner(d, ch)
    stub_dict = {**d, "backbone": plan.rows[: len(d["backbone"])], "head": plan.rows[len(d["backbone"]) :]}
    import ultralytics.nn.tasks as tasks

    table_filter = _TableRewriter(plan.table)
    tasks.LOGGER.addFilter(table_filter)
    try:
        layers, save = original(stub_dict, ch, verbose)
    finally:
        tasks.LOGGER.removeFilter(table_filter)
    for i, module in plan.built.items():
        stub = layers[i]
        cls = PLUGIN_MODULES[plan.names[i]]  # also names an nn.Sequential of repeated blocks after its block
        module.i, module.f, module.type = stub.i, stub.f, f"{cls.__module__}.{cls.__name__}"
        module.np = sum(p.numel() for p in module.parameters())
        layers[i] = module
    return layers, save


class _TableRewriter(logging.Filter):
    """Replace parse_model's table line for each stub row with the plugin module's name, parameters and arguments."""

    def __init__(self, lines: Dict[str, str]):
        super().__init__()
        self.lines = lines  # row prefix (index and from columns) -> full line
        self.thread = threading.get_ident()  # the logger is the process's: leave other threads' model tables alone

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if record.thread == self.thread and isinstance(msg, str) and len(msg) >= 23 and msg[:23] in self.lines:
            record.msg, record.args = self.lines[msg[:23]], ()
        return True


class _Planner:
    """Walk the YAML rows once, tracking each layer's output channels as parse_model does, and build plugin rows."""

    def __init__(self, d: dict, ch_in: int):
        import ultralytics.nn.tasks as tasks

        self.tasks, self.file = tasks, d.get("yaml_file", "<model dict>")
        self.nc = d.get("nc")
        self.scale, self.depth, self.width, self.max_channels = self._scaling(d, self.file)
        self.rows: List[list] = []
        self.built: Dict[int, nn.Module] = {}
        self.names: Dict[int, str] = {}
        self.table: Dict[str, str] = {}
        self.channels: List[Any] = []  # output channels per layer: int, list (multi-output backbone) or None
        self.written_levels: Dict[int, list] = {}  # ConvMixerBackbone layer -> its channels as the YAML writes them
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
            inputs = [ch_in] if i == 0 else self.channels
            self._check_module_name(i, m)
            if m in PLUGIN_MODULES:
                c2 = self._plan_plugin_row(i, f, n, m, list(args), inputs)
            else:
                c2 = self._plan_native_row(i, f, n, m, args, inputs)
            self.channels.append(c2)

    @staticmethod
    def _scaling(d: dict, file: str):
        """Scale, depth, width and max_channels as parse_model picks them (no scale: the first of ``scales``)."""
        depth, width, max_channels = d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")
        scales, scale = d.get("scales"), d.get("scale") or ""
        if scales and scale and scale not in scales:  # parse_model would fail with a bare KeyError
            raise PlanError(f"{file}: scale '{scale}' (from the file name) is not one of its scales {list(scales)}")
        if scales:
            scale = scale or next(iter(scales))
            depth, width, max_channels = scales[scale]
        return scale, depth, width, max_channels

    def _where(self, i: int, m: str) -> str:
        return f"{self.file}: layer {i} ({m})"

    def _scale_channels(self, c: int) -> int:
        return self.tasks.make_divisible(min(c, self.max_channels) * self.width, 8)

    def _scale_depth(self, n: int) -> int:
        return max(round(n * self.depth), 1) if n > 1 else n

    def _check_module_name(self, i: int, m) -> None:
        """Unknown names get a ValueError with a suggestion instead of parse_model's bare ``KeyError``."""
        if not isinstance(m, str):
            raise PlanError(f"{self.file}: layer {i}: module must be a name, got {m!r}")
        if m.startswith(("nn.", "torchvision.ops.")) or m in vars(self.tasks):
            return
        close = difflib.get_close_matches(m, [*PLUGIN_MODULES, *vars(self.tasks)], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise PlanError(f"{self.file}: layer {i}: unknown module {m!r}{hint}")

    def _input_channels(self, i: int, f, m: str, inputs: list) -> int:
        if isinstance(f, bool) or not isinstance(f, int):
            raise PlanError(f"{self._where(i, m)}: from must be a single layer index (one input), got {f!r}")
        if not -len(inputs) <= f < len(inputs):
            raise PlanError(f"{self._where(i, m)}: from={f} points to no earlier layer")
        c1 = inputs[f]
        if isinstance(c1, list):
            raise PlanError(
                f"{self._where(i, m)}: from={f} is a multi-output ConvMixerBackbone; select one level with an Index row"
            )
        if c1 is None:
            raise PlanError(f"{self._where(i, m)}: cannot tell the channels of its input (from={f})")
        return c1

    def _plan_plugin_row(self, i: int, f, n, m: str, args: list, inputs: list):
        cls, names = PLUGIN_MODULES[m], YAML_ARGS[m]
        where = self._where(i, m)
        c1 = self._input_channels(i, f, m, inputs)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PlanError(f"{where}: repeats (n) must be an integer >= 1, got {n!r}")
        if len(args) > len(names):
            raise PlanError(f"{where}: takes at most {len(names)} arguments {names}, got {len(args)}: {args}")
        kwargs = dict(zip(names, (_literal(a) for a in args)))
        missing = [k for k in names if k in {"c2", "channels"} and k not in kwargs]  # output channels are required
        if missing:
            raise PlanError(f"{where}: missing argument {missing[0]} (arguments: {names})")
        n_ = self._scale_depth(n)
        written_levels = kwargs.get("channels")  # _build replaces it with the scaled list
        try:
            module = self._build(m, cls, c1, n, n_, kwargs)
        except (ValueError, TypeError) as e:
            raise PlanError(f"{where}: {e}") from None
        if m == "ConvMixerBackbone":
            self.written_levels[i] = written_levels
        last = module[-1] if isinstance(module, nn.Sequential) else module
        c2 = module.out_channels if m == "ConvMixerBackbone" else last.c2
        shown = [c1, *(kwargs[k] for k in inspect.signature(cls).parameters if k in kwargs)]
        self.built[i], self.names[i] = module, m
        self.rows.append([f, 1, "Index", [0 if isinstance(c2, list) else c2, 0]])
        np_ = sum(p.numel() for p in module.parameters())
        prefix = f"{i:>3}{f!s:>20}"
        self.table[prefix] = f"{prefix}{n_:>3}{np_:10.0f}  {cls.__module__ + '.' + m:<44} {shown!s:<30}"
        return c2

    def _build(self, m: str, cls: type, c1: int, n: int, n_: int, kwargs: dict) -> nn.Module:
        """Scale channel and depth arguments in ``kwargs`` in place, then build the module (n_ blocks for a block)."""
        if "c2" in kwargs:
            kwargs["c2"] = self._scale_channels(cm._check_int("c2", kwargs["c2"]))
        if m == "ConvMixerBackbone":
            kwargs["channels"] = [self._scale_channels(c) for c in cm._check_ints("channels", kwargs["channels"], 3)]
            if "depths" in kwargs:
                kwargs["depths"] = [self._scale_depth(x) for x in cm._check_ints("depths", kwargs["depths"], 3, 0)]
        if m in {"PatchEmbed", "ConvMixerBackbone"} and n != 1:
            raise ValueError(f"repeats (n) must be 1 for {m}, got {n}")
        if "n" in inspect.signature(cls).parameters:  # a stage takes its (depth-scaled) block count, as C2f does
            kwargs["n"] = n_
        if m == "ConvMixerBlock" and n_ > 1:
            return nn.Sequential(*(cls(c1, **kwargs) for _ in range(n_)))
        return cls(c1, **kwargs)

    def _plan_native_row(self, i: int, f, n, m: str, args: list, inputs: list):
        """Record a native row's output channels; rewrite Index rows that select a ConvMixerBackbone level."""
        row = [f, n, m, list(args)]
        self.rows.append(row)
        source = inputs[f] if isinstance(f, int) and -len(inputs) <= f < len(inputs) else None
        if m in {"Index", "TorchVision"}:
            if isinstance(source, list) and m == "Index":
                return self._plan_index_row(i, f, row, source)
            return _literal(args[0]) if args else None
        if isinstance(source, list) or (
            isinstance(f, list) and any(isinstance(inputs[x], list) for x in f if -len(inputs) <= x < len(inputs))
        ):
            raise PlanError(
                f"{self._where(i, m)}: takes the list output of a ConvMixerBackbone; select a level with an Index row"
            )
        args = [self.nc if a == "nc" else _literal(a) for a in args]
        a0 = args[0] if args else None
        if m in _SCALED_NATIVE:
            if not isinstance(a0, int):
                return None
            unscaled = m == "Classify" or (a0 == self.nc and _keeps_nc_channels_unscaled())
            return a0 if unscaled else self._scale_channels(a0)
        if m == "Concat":
            chans = [inputs[x] for x in f] if isinstance(f, list) else [None]
            return sum(chans) if all(isinstance(c, int) for c in chans) else None
        if m in {"HGStem", "HGBlock"} and len(args) > 1:
            return args[1]
        if m == "ResNetLayer" and len(args) > 3 and isinstance(args[1], int):
            return args[1] if args[3] else args[1] * 4
        if m == "CBFuse" and isinstance(f, list) and f and -len(inputs) <= f[-1] < len(inputs):
            return inputs[f[-1]]
        if m in _CHANNELS_NOT_MODELLED:
            return None  # a plugin row reading this layer gets "cannot tell the channels" instead of a wrong guess
        return source  # parse_model's default: output channels = input channels

    def _plan_index_row(self, i: int, f: int, row: list, levels: List[int]) -> int:
        where = self._where(i, "Index")
        args = [_literal(a) for a in row[3]]
        level = args[1] if len(args) > 1 else 0
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(levels):
            raise PlanError(f"{where}: index must be 0..{len(levels) - 1} (P3..P5) of the backbone, got {level!r}")
        actual = levels[level]
        written = args[0] if args else None
        # The YAML author writes unscaled channels, as everywhere else; the real (scaled) number is accepted too.
        if (
            isinstance(written, bool)
            or not isinstance(written, int)
            or actual not in {written, self._scale_channels(written)}
        ):
            backbone = f % len(self.channels)
            at_scale = f" at scale '{self.scale}'" if self.scale else ""
            raise PlanError(
                f"{where}: selects P{level + 3} of the ConvMixerBackbone (layer {backbone}), which has {actual} "
                f"channels{at_scale}, but the row says {written!r}; write {self.written_levels[backbone][level]}, that "
                "level's channels as the backbone row gives them (before scaling, so the row fits every scale)"
            )
        row[3] = [actual, level]
        return actual

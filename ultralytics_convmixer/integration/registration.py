"""Registration: the one module that patches Ultralytics, so a new Ultralytics release is fixed in one place.

:func:`register` (idempotent, called by the start-up hook right after ``ultralytics.nn.tasks`` is imported):

- puts the plugin classes into ``ultralytics.nn.tasks``' namespace, where ``parse_model`` looks module names up;
- wraps ``parse_model`` so plugin rows are treated like native rows (``planner.Planner`` sizes and builds them:
  input channels from the graph for any ``from``, output channels scaled as
  ``make_divisible(min(c2, max_channels) * width, 8)``, repeats by depth, and ``Index`` rows after a
  ``ConvMixerBackbone`` get the backbone's real channels at every scale). Each plugin row is handed to the original
  ``parse_model`` as an ``Index`` stub that records its true output channels and is swapped in afterwards; the layer
  table is rewritten to show the plugin's module and real arguments;
- wraps ``yaml_model_load`` so ``yolov8n-convmixer.yaml`` resolves to the packaged YAML from any directory (a file of
  that name in the working directory wins) and the scale letter picks the scale as for stock names;
- wraps ``check_det_dataset``/``check_cls_dataset`` so the packaged ``datasets/*.yaml`` work by bare name, and a
  classify data YAML is turned into the directory Ultralytics expects (``classify_data``);
- wraps ``BaseModel.fuse`` so it also folds the plugin's BatchNorms into their convolutions (``fold_batchnorm``);
- wraps ``BaseModel.load`` (``pretrained=``) so it warns when a checkpoint fits few or none of a ConvMixer
  backbone's tensors (``transfer``);
- wraps ``Exporter.__call__`` so plugin models get percentile INT8 calibration in ONNX exports (``export``);
- registers the plugin classes as safe globals for ``ULTRALYTICS_SAFE_LOAD=1``, under their 0.1.0 paths too
  (``legacy``).

Nothing is written into the installed Ultralytics package.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from pathlib import Path
from typing import Callable, Dict

import torch

from ..nn import modules as cm
from ..nn.dwconv import DepthwiseConv2d
from .classify_data import classify_root, warn_if_names_differ
from .export import exporter_call
from .legacy import legacy_class_names
from .planner import PLUGIN_MODULES, Planner, check_release
from .resources import dataset_yaml, model_yaml, unscaled_name
from .transfer import warn_if_backbone_missed
from .versions import declared, warn_outside_declared_ranges

# Every class a plugin checkpoint may pickle, for torch's weights_only unpickler (ULTRALYTICS_SAFE_LOAD=1).
SAFE_GLOBALS = [
    *PLUGIN_MODULES.values(),
    cm.ConvNormAct,
    cm.FixedEpsBatchNorm2d,
    cm.FeatureSpec,
    cm._Resample,
    DepthwiseConv2d,
]
_registered = False
_register_lock = threading.Lock()


# ----------------------------------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------------------------------
def _ultralytics_version() -> str:
    try:
        from importlib.metadata import version

        return version("ultralytics")
    except Exception:  # noqa: BLE001 - only used in an error message
        return "unknown"


def require(module, name: str):
    """Return ``module.name``; if a newer Ultralytics removed it, fail with a message naming the version."""
    if not hasattr(module, name):
        raise ImportError(
            f"ultralytics-convmixer relies on {module.__name__}.{name}, which is missing in ultralytics "
            f"{_ultralytics_version()}; this plugin supports ultralytics{declared('ultralytics') or ''}. Install a "
            "supported Ultralytics release."
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
            require(tasks, name)
        for method in ("fuse", "load"):
            require(require(tasks, "BaseModel"), method)
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
        if not getattr(tasks.BaseModel.load, "_convmixer", False):
            tasks.BaseModel.load = _load_method(tasks.BaseModel.load)
        _add_safe_globals()
        exporter_module = sys.modules.get("ultralytics.engine.exporter")
        if hasattr(exporter_module, "Exporter"):  # imported before the model parser: patched now, not on its load
            _patch_exporter(exporter_module)
        _registered = True
        warn_outside_declared_ranges()
        if data_utils is not None:
            _patch_data_utils(data_utils)


def _add_safe_globals() -> None:
    """Allow the plugin classes in weights-only loads, under their 0.1.0 paths too where torch takes aliases (2.6+)."""
    if not hasattr(torch.serialization, "add_safe_globals"):
        return
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch 2.6+, with (class, path) entries
        torch.serialization.add_safe_globals(legacy_class_names(SAFE_GLOBALS))


def on_module_loaded(module) -> None:
    """Finish registration for an Ultralytics module that has just been imported (called by the start-up hook)."""
    if module.__name__ == "ultralytics.data.utils":
        _patch_data_utils(module)
        return
    _rebind(module)
    if module.__name__ == "ultralytics.engine.exporter":
        _patch_exporter(module)


def _patch_exporter(exporter_module) -> None:
    """Export plugin models to ONNX INT8 with percentile calibration (``export``); stock models as before."""
    exporter = require(exporter_module, "Exporter")
    if not getattr(exporter.__call__, "_convmixer", False):
        exporter.__call__ = exporter_call(exporter.__call__)


def _patch_data_utils(data_utils) -> None:
    """Let packaged data YAMLs resolve by bare name and classify data YAMLs work (see the module docstring)."""
    if "check_det_dataset" in _wrappers:
        return
    _require_data_utils(data_utils)
    _replace_everywhere(data_utils, "check_det_dataset", _wrap(data_utils.check_det_dataset, _check_det_dataset))
    _replace_everywhere(data_utils, "check_cls_dataset", _wrap(data_utils.check_cls_dataset, _check_cls_dataset))


def _require_data_utils(data_utils) -> None:
    for name in ("check_det_dataset", "check_cls_dataset"):
        require(data_utils, name)


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


def _load_method(original: Callable) -> Callable:
    """``BaseModel.load`` (``pretrained=``) that warns when the weights miss the ConvMixer backbone (``transfer``)."""

    @functools.wraps(original)
    def load(self, weights, *args, **kwargs):
        result = original(self, weights, *args, **kwargs)
        import ultralytics.nn.tasks as tasks

        warn_if_backbone_missed(self, weights, tasks.LOGGER.warning)
        return result

    load._convmixer = True
    return load


# ----------------------------------------------------------------------------------------------------------------------
# Model and data YAML names
# ----------------------------------------------------------------------------------------------------------------------
def _yaml_model_load(original: Callable, path):
    """Load a model YAML; a packaged plugin YAML is found by name unless a local file of that name exists."""
    import ultralytics.nn.tasks as tasks

    name = Path(str(path))
    packaged = model_yaml(name.name)
    local = name.exists() or (name.parent / unscaled_name(name.name)).exists()
    if packaged is None or local or name.parent != Path("."):  # a path names that file, found or not (as stock)
        d = original(path)
    else:
        from ultralytics.utils import YAML

        d = YAML.load(packaged)
        d["scale"] = tasks.guess_model_scale(name)
        d["yaml_file"] = str(packaged.with_name(name.name))
    # Before Ultralytics guesses the task from the head: an older release knows no YOLO26 head and would fail there
    # with "does not support '_new' mode for 'None' task" instead.
    check_release(d, d.get("yaml_file", str(path)))
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
    root, data = classify_root(Path(dataset))
    result = original(root, *args, **kwargs)
    warn_if_names_differ(data, result["names"], dataset)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# parse_model: plugin rows treated like native rows
# ----------------------------------------------------------------------------------------------------------------------
def _parse_model(original: Callable, d: dict, ch, verbose: bool = True):
    """Build plugin rows here, let the original parse_model build the rest around ``Index`` stubs, then swap them in."""
    rows = d["backbone"] + d["head"]
    if not any(row[2] in PLUGIN_MODULES for row in rows):
        return original(d, ch, verbose)
    plan = Planner(d, ch, original)
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

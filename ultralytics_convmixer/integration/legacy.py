"""The module paths of ultralytics-convmixer 0.1.0, so that its checkpoints and data YAMLs keep working.

A checkpoint pickles each layer's class by module path (``ultralytics_convmixer.modules.ConvMixerBackbone``), and a
0.1.0 data YAML's ``download`` script imports ``ultralytics_convmixer.shapes``. Importing the package installs
:class:`LegacyPathFinder`, which answers for those paths with a module that forwards every attribute to the module
that now holds it; :func:`legacy_class_names` gives ``registration`` the old names of the classes a checkpoint may
pickle, for ``ULTRALYTICS_SAFE_LOAD=1`` loads (torch's weights-only unpickler matches classes by path).

Torch-free: it runs at every interpreter start, through the start-up hook.
"""

from __future__ import annotations

import importlib
import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Iterable, List, Tuple

PACKAGE = "ultralytics_convmixer"
# 0.1.0 module -> the module that holds its names now (0.1.0's ``integration`` module is a package now; its names
# were never pickled).
MOVED = {
    f"{PACKAGE}.modules": f"{PACKAGE}.nn.modules",
    f"{PACKAGE}.dwconv": f"{PACKAGE}.nn.dwconv",
    f"{PACKAGE}.dwconv_triton": f"{PACKAGE}.nn.dwconv_triton",
    f"{PACKAGE}.planner": f"{PACKAGE}.integration.planner",
    f"{PACKAGE}.resources": f"{PACKAGE}.integration.resources",
    f"{PACKAGE}.classify_data": f"{PACKAGE}.integration.classify_data",
    f"{PACKAGE}.patch_resize": f"{PACKAGE}.pretrained.patch_resize",
    f"{PACKAGE}.timm_source": f"{PACKAGE}.pretrained.timm_source",
    f"{PACKAGE}.timm_import": f"{PACKAGE}.pretrained.timm_import",
    f"{PACKAGE}.shapes": f"{PACKAGE}.data.shapes",
    f"{PACKAGE}.shapes_labels": f"{PACKAGE}.data.shapes_labels",
    f"{PACKAGE}.timing": f"{PACKAGE}.compare.timing",
}


class _ForwardingLoader(Loader):
    """Makes the old module a stand-in whose attributes are the new module's (PEP 562 module ``__getattr__``)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a plain module object, filled in by exec_module

    def exec_module(self, module: ModuleType) -> None:
        target = importlib.import_module(self.target)
        module.__doc__ = f"The 0.1.0 path of {self.target}, kept so its checkpoints and data YAMLs load."
        module.__getattr__ = lambda name: getattr(target, name)


class LegacyPathFinder(MetaPathFinder):
    """Meta-path finder that answers only for the 0.1.0 module paths in :data:`MOVED`."""

    def find_spec(self, fullname: str, path=None, target=None):
        """Return a spec of the forwarding module for a 0.1.0 path, None for any other name."""
        new = MOVED.get(fullname)
        return None if new is None else ModuleSpec(fullname, _ForwardingLoader(new))


def install() -> None:
    """Put :class:`LegacyPathFinder` on ``sys.meta_path`` once."""
    if not any(isinstance(f, LegacyPathFinder) for f in sys.meta_path):
        sys.meta_path.append(LegacyPathFinder())


def legacy_class_names(classes: Iterable[type]) -> List[Tuple[type, str]]:
    """Return ``(class, its 0.1.0 path)`` for each of ``classes`` that lives in a moved module.

    Args:
        classes (Iterable[type]): Classes a checkpoint may pickle.

    Returns:
        (List[Tuple[type, str]]): Entries for ``torch.serialization.add_safe_globals``.
    """
    old_of = {new: old for old, new in MOVED.items()}
    return [(c, f"{old_of[c.__module__]}.{c.__qualname__}") for c in classes if c.__module__ in old_of]

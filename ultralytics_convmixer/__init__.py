"""ConvMixer backbones for Ultralytics YOLO.

Installing the package is enough: the modules are registered with Ultralytics in every process (see ``_hook.py``).
The public names load on first use::

    from ultralytics_convmixer import ConvMixerBackbone, ConvMixerBlock, ConvMixerStage, PatchEmbed  # plain PyTorch
    from ultralytics_convmixer import distill, import_timm  # tools, which use Ultralytics

The package has three layers, imported one way (``docs/design.md``, "Layout"): ``nn`` (the model, plain PyTorch),
``integration`` (everything that touches Ultralytics' internals) and the tools (``pretrained``, ``data``,
``compare``), with ``cli`` on top. Importing the package imports neither torch nor Ultralytics: the start-up hook
imports it in every interpreter.
"""

import importlib

from ._hook import install as _install_hook
from .integration.legacy import install as _install_legacy_paths

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "ConvMixerBlock": "nn.modules",
    "PatchEmbed": "nn.modules",
    "ConvMixerStage": "nn.modules",
    "ConvMixerBackbone": "nn.modules",
    "FeatureSpec": "nn.modules",
    "DepthwiseConv2d": "nn.dwconv",
    "register": "integration.registration",
    "model_yaml": "integration.resources",
    "model_yamls": "integration.resources",
    "import_timm": "pretrained.timm_import",
    "distill": "pretrained.distill",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    """Import a public name on first use (the model's names without Ultralytics)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ultralytics_convmixer' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


_install_legacy_paths()  # 0.1.0's module paths, for its checkpoints
_install_hook()  # registers now if Ultralytics is loaded, else right after `ultralytics.nn.tasks` is imported

"""ConvMixer backbones for Ultralytics YOLO.

Installing the package is enough: the modules are registered with Ultralytics in every process (see ``_hook.py``).
Importing this package also registers them, and exposes the modules for use from Python::

    from ultralytics_convmixer import ConvMixerBackbone, ConvMixerBlock, ConvMixerStage, PatchEmbed, import_timm

Attribute access is lazy so that the start-up hook, which imports this package, never imports torch.
"""

from ._hook import install as _install_hook

__version__ = "0.1.0"

_LAZY = {
    "ConvMixerBlock": "modules",
    "PatchEmbed": "modules",
    "ConvMixerStage": "modules",
    "ConvMixerBackbone": "modules",
    "FeatureSpec": "modules",
    "DepthwiseConv2d": "dwconv",
    "import_timm": "timm_import",
    "register": "integration",
    "model_yaml": "resources",
    "model_yamls": "resources",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    """Import public names on first use and make sure the plugin is registered with Ultralytics."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ultralytics_convmixer' has no attribute {name!r}")
    import importlib

    from .integration import register

    register()
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


_install_hook()  # registers now if Ultralytics is loaded, else right after `ultralytics.nn.tasks` is imported

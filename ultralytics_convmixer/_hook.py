"""Interpreter-start hook: register the plugin right after ``ultralytics.nn.tasks`` is imported.

The wheel installs ``ultralytics_convmixer.pth`` into site-packages; Python's ``site`` module runs its one line at every
interpreter start, which imports ``ultralytics_convmixer`` and so calls :func:`install`. That must stay cheap: nothing
here imports torch or Ultralytics. :func:`install` only puts a finder on ``sys.meta_path`` that wraps the loaders of
``ultralytics.*`` modules. Once ``ultralytics.nn.tasks`` has executed, it calls
:func:`ultralytics_convmixer.integration.registration.register`; every Ultralytics module loaded after that is handed to
:func:`ultralytics_convmixer.integration.registration.on_module_loaded`, which finishes what registration could not do
earlier (a module that was only half-initialised then) and rebinds names the module imported from patched ones. So the
stock ``yolo`` CLI, DDP worker scripts, spawned dataloader workers and a fresh ``python`` that loads ``best.pt`` all see
the plugin without importing it, whatever order Ultralytics' own modules are imported in.

If registration fails (an Ultralytics release without an internal the plugin needs), the hook only warns, so stock
models keep working; registering afterwards (``ultralytics_convmixer.register()``, which the tools call) raises
the ImportError that names the release and the supported range.

Set ``ULTRALYTICS_CONVMIXER_NO_HOOK=1`` to skip the start-up line; ``import ultralytics_convmixer`` still registers.
"""

import sys
import warnings
from importlib.abc import Loader, MetaPathFinder

TARGET = "ultralytics.nn.tasks"
_state = {"tasks_loaded": False}


def _after_import(module) -> None:
    """Finish registration after an ``ultralytics.*`` module executes; failures only warn (stock models work)."""
    name = module.__name__
    if name != TARGET and not _state["tasks_loaded"]:
        return  # nothing to do before the model parser exists; avoids importing torch early
    try:
        from ultralytics_convmixer.integration import registration

        if name == TARGET:
            registration.register()
            _state["tasks_loaded"] = True  # only now: after a failure no later module gets half of the plugin
        else:
            registration.on_module_loaded(module)
    except Exception as e:  # noqa: BLE001 - never break `import ultralytics` for users of stock models
        warnings.warn(f"ultralytics-convmixer could not register its modules: {e}", RuntimeWarning, stacklevel=2)


class _NotifyingLoader(Loader):
    """Wraps the real loader of an Ultralytics module and reports the module once it has executed."""

    def __init__(self, loader: Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _after_import(module)

    def __getattr__(self, name):  # get_source, get_filename, get_resource_reader, ... for inspect and importlib
        if name == "loader":  # not set yet (copy and pickle build the object without __init__): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


class _UltralyticsImportWatcher(MetaPathFinder):
    """Meta-path finder that only answers for ``ultralytics.*`` modules, delegating the search to the other finders."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("ultralytics."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _NotifyingLoader):
                    spec.loader = _NotifyingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Install the watcher once; if ``ultralytics.nn.tasks`` is already imported, register now.

    Registering now happens on an explicit ``import ultralytics_convmixer`` after Ultralytics was imported (the
    start-up line runs before any Ultralytics import), so an unsupported Ultralytics release raises there.
    """
    if not any(isinstance(f, _UltralyticsImportWatcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _UltralyticsImportWatcher())
    if TARGET in sys.modules and not _state["tasks_loaded"]:
        from ultralytics_convmixer.integration import registration

        registration.register()
        _state["tasks_loaded"] = True

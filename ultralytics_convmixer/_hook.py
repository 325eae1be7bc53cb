"""Interpreter-start hook: register the plugin right after ``ultralytics.nn.tasks`` is imported.

The wheel installs ``ultralytics_convmixer.pth`` into site-packages; Python's ``site`` module runs its one line at every
interpreter start, which imports ``ultralytics_convmixer`` and so calls :func:`install`. That must stay cheap: nothing
here imports torch or Ultralytics. :func:`install` only puts a finder on ``sys.meta_path`` that waits for
``ultralytics.nn.tasks`` and, once that module has executed, calls :func:`ultralytics_convmixer.integration.register`.
So the stock ``yolo`` CLI, DDP worker scripts, spawned dataloader workers and a fresh ``python`` that loads ``best.pt``
all see the plugin without importing it.

Set ``ULTRALYTICS_CONVMIXER_NO_HOOK=1`` to skip the start-up line; ``import ultralytics_convmixer`` still registers.
"""

import sys
import warnings
from importlib.abc import Loader, MetaPathFinder

TARGET = "ultralytics.nn.tasks"


def _register_now() -> None:
    """Register the plugin; at start-up a failure becomes a warning so stock Ultralytics keeps working."""
    try:
        from ultralytics_convmixer.integration import register

        register()
    except Exception as e:  # noqa: BLE001 - never break `import ultralytics` for users of stock models
        warnings.warn(f"ultralytics-convmixer could not register its modules: {e}", RuntimeWarning, stacklevel=2)


class _RegisteringLoader(Loader):
    """Wraps the real loader of ``ultralytics.nn.tasks`` and registers the plugin after the module has executed."""

    def __init__(self, loader: Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _register_now()

    def __getattr__(self, name):  # get_source, get_filename, ... for inspect and linecache
        return getattr(self.loader, name)


class _TasksImportWatcher(MetaPathFinder):
    """Meta-path finder that only answers for ``ultralytics.nn.tasks``, delegating the search to the other finders."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _RegisteringLoader):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Install the watcher once; if ``ultralytics.nn.tasks`` is already imported, register immediately."""
    if TARGET in sys.modules:
        _register_now()
    elif not any(isinstance(f, _TasksImportWatcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _TasksImportWatcher())

"""What every part of ``compare`` uses.

- :class:`CompareError` and :class:`TrainingError`: its two errors (a user error; a failed training run).
- :func:`log` and :data:`PREFIX`: its progress lines, each starting ``compare: ``.
- :func:`one_line`: the one-line form of an exception, for those lines and the error messages.
- :func:`register_plugin`: Ultralytics imported and the plugin registered, on first use.
"""

from __future__ import annotations

PREFIX = "compare: "


class CompareError(ValueError):
    """A user error (unknown model, missing data, wrong argument); the message is one line naming the culprit."""


class TrainingError(RuntimeError):
    """Training a model failed; Ultralytics' own output above says why."""


def log(msg: str) -> None:
    """Print one progress line of the comparison, flushed so that it shows at once.

    Args:
        msg (str): The line, without the ``compare:`` prefix.
    """
    print(f"{PREFIX}{msg}", flush=True)


def one_line(e: BaseException) -> str:
    """Return an exception's message on one line, at most 300 characters (its type's name if it has none).

    Args:
        e (BaseException): The exception.

    Returns:
        (str): The message.
    """
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def register_plugin() -> None:
    """Import Ultralytics and register the plugin, once (imported here: importing ``compare`` imports no torch)."""
    from ..integration.registration import register

    register()

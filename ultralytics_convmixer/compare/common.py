"""What every part of ``compare`` uses.

- :class:`CompareError` and :class:`TrainingError`: its two errors (a user error; a failed training run).
- :func:`log` and :data:`PREFIX`: its progress lines, each starting ``compare: ``.
- :func:`one_line`: the one-line form of an exception, for those lines and the error messages.
- :func:`import_ultralytics`: Ultralytics imported in the order that registers the plugin in one go.
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


def import_ultralytics() -> None:
    """Import Ultralytics through ``ultralytics.nn.tasks`` first, so that the plugin registers in one go.

    Importing ``ultralytics.data.utils`` first makes the start-up hook register while that module is half-initialised.
    """
    import ultralytics.nn.tasks  # noqa: F401

"""``key=value`` Ultralytics training arguments on the plugin's command lines, read the way the ``yolo`` CLI reads them.

Torch-free to import (the command line reports a bad argument without importing torch); Ultralytics is imported when
arguments are parsed.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Sequence


class TrainingArgumentError(ValueError):
    """A ``key=value`` argument that is malformed, unknown, reserved by the command or of the wrong type."""


def parse_training_args(items: Sequence[str], reserved: Mapping[str, str], command: str) -> dict[str, Any]:
    """Parse ``key=value`` training arguments as the ``yolo`` CLI does, and check them against Ultralytics' own.

    Args:
        items (Sequence[str]): Strings such as ``epochs=3``, ``device=cpu``, ``fraction=0.5``, ``cache=None``.
        reserved (Mapping[str, str]): Arguments the command sets itself, each with what to do instead.
        command (str): The command, for the messages.

    Returns:
        (dict[str, Any]): Argument names to values converted by Ultralytics' ``smart_value`` (int, float, bool,
            None, or the string).

    Raises:
        TrainingArgumentError: For a malformed item, an unknown or reserved argument, or a value of the wrong type.
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg, smart_value

    args: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise TrainingArgumentError(f"argument '{item}' is not key=value")
        if key in reserved:
            raise TrainingArgumentError(f"argument '{key}' is set by {command} itself; {reserved[key]}")
        if key != "data" and key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, list(DEFAULT_CFG_DICT), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TrainingArgumentError(f"unknown training argument '{key}'{hint}")
        args[key] = smart_value(value.strip())
    try:
        check_cfg({k: v for k, v in args.items() if k != "data"})
    except (TypeError, ValueError) as e:
        raise TrainingArgumentError(" ".join(str(e).split())) from None
    return args

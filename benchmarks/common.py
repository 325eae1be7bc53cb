"""Helpers shared by the benchmark scripts (and the tests): Markdown tables, JSON files rewritten after every finished
step, a state file that lets a rerun skip what is done, and Ultralytics' log messages collected.

The scripts import this module as ``common`` after putting their own folder on ``sys.path``, so that ``python
benchmarks/X.py`` works from any directory.
"""

import contextlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

Getter = Union[str, Callable[[Mapping[str, Any]], Any]]
Column = Union[str, Tuple[str, Getter], Tuple[str, Getter, str]]
"""A table column: a key of the rows (also its header), ``(header, key or function of a row)``, or that plus the
format of the column's numbers (``"{:.2f}"``, ``"{:.2f}x"``)."""


def write_json(path: Union[str, Path], data: Any, indent: int = 2) -> None:
    """Write ``data`` as JSON to ``path``, replacing the file atomically and creating its folder.

    Scripts call this after every finished step, so a run stopped at any moment (a GPU session's time limit) leaves
    the last complete file, never a half-written one.

    Args:
        path (str | Path): File to (re)write.
        data (Any): JSON-serialisable data (NaN and infinities are written as JavaScript's literals, as ``json`` does).
        indent (int): Indentation of the JSON text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=indent) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Optional[Sequence[Column]] = None, number_format: str = "{:.3f}"
) -> str:
    """Return ``rows`` as a Markdown table, one line per row.

    Cells: None is ``-``; floats (and ints of a column with its own format) use the column's format, else
    ``number_format``; everything else ``str``. Columns whose cells are all numbers (or None) are right-aligned.

    Args:
        rows (Sequence[Mapping[str, Any]]): The table's rows.
        columns (Sequence[Column] | None): The columns in order (see ``Column``); default: every key of the first row.
        number_format (str): Format of float cells in columns without their own format.

    Returns:
        (str): The table, without a trailing newline (empty without columns).
    """
    specs = [_Spec.of(c, number_format) for c in (columns if columns is not None else list(rows[0]) if rows else [])]
    if not specs:
        return ""
    table = [[spec.get(row) for spec in specs] for row in rows]
    lines = ["| " + " | ".join(spec.header for spec in specs) + " |", "|"]
    for i in range(len(specs)):
        cells = [cells[i] for cells in table]
        numeric = any(_is_number(v) for v in cells) and all(_is_number(v) or v is None for v in cells)
        lines[1] += "---:|" if numeric else "---|"
    lines += ["| " + " | ".join(spec.cell(v) for spec, v in zip(specs, cells)) + " |" for cells in table]
    return "\n".join(lines)


class _Spec(NamedTuple):
    header: str
    get: Callable[[Mapping[str, Any]], Any]
    number_format: str
    formats_ints: bool  # the column named its format: it applies to ints too

    @classmethod
    def of(cls, column: Column, number_format: str) -> "_Spec":
        """Parse a ``Column``."""
        if isinstance(column, str):
            column = (column, column)
        header, getter, *fmt = column
        get = getter if callable(getter) else (lambda row, key=getter: row[key])
        return cls(header, get, fmt[0] if fmt else number_format, bool(fmt))

    def cell(self, value: Any) -> str:
        """Format one value of this column."""
        if value is None:
            return "-"
        if isinstance(value, float) or (self.formats_ints and _is_number(value)):
            return self.number_format.format(value)
        return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_state(out: Path, name: str) -> Tuple[Path, Path, dict]:
    """Make the output folder ``out``; return it resolved, its state file ``name`` and what that file holds so far.

    Args:
        out (Path): The script's output folder.
        name (str): The state file's name in it (``starts.json``).

    Returns:
        (Tuple[Path, Path, dict]): The folder, the state file, and its contents (empty on a first run).
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    state_file = out / name
    return out, state_file, json.loads(state_file.read_text()) if state_file.exists() else {}


@contextlib.contextmanager
def ultralytics_log(level: int = logging.NOTSET) -> Iterator[List[str]]:
    """Collect the messages Ultralytics logs (at ``level`` or above) inside the ``with`` block, without colour codes."""
    messages: List[str] = []
    handler = logging.Handler(level)
    handler.emit = lambda record: messages.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))
    logger = logging.getLogger("ultralytics")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)

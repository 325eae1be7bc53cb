"""The options of the pretrained-start tools and the errors they raise on bad input; torch-free for the command line."""

from pathlib import Path
from typing import Type, Union

# The stem kernel resizes of ``patch_resize.RESIZE_METHODS``, and the default: the one ``benchmarks/patch_resize.py``
# found to keep an imported trunk's features closer to timm's.
RESIZE_NAMES = ("pi", "bilinear")
DEFAULT_RESIZE = "pi"


class TimmImportError(ValueError):
    """A source, task or output ``import_timm`` cannot take; the message names it and what to do."""


class DistillError(ValueError):
    """A teacher, student, image source or output ``distill`` cannot take; the message names it and what to do."""


def check_output(out: Union[str, Path, None], force: bool, error: Type[ValueError]) -> Path:
    """Return the checkpoint path ``out`` resolved, or raise ``error`` naming what is wrong with it.

    Args:
        out (str | Path | None): The ``.pt`` file a tool will write (None: not given).
        force (bool): Whether an existing file may be overwritten.
        error (Type[ValueError]): The tool's error type.

    Returns:
        (Path): ``out``, absolute.
    """
    if out is None:
        raise error("--out is required: the checkpoint to write (.pt)")
    out = Path(out).expanduser()
    if out.suffix != ".pt":
        raise error(f"--out {out}: an Ultralytics checkpoint is a .pt file")
    if out.exists() and not force:
        raise error(f"--out {out} exists; pass --force (Python: force=True) to overwrite it")
    if not out.parent.is_dir():
        raise error(f"--out {out}: folder {out.parent} does not exist")
    return out.resolve()

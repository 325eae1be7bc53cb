"""The options of the pretrained-start tools and the error they raise on bad input; torch-free for the command line."""

# The stem kernel resizes of ``patch_resize.RESIZE_METHODS``, and the default: the one ``benchmarks/patch_resize.py``
# found to keep an imported trunk's features closer to timm's.
RESIZE_NAMES = ("pi", "bilinear")
DEFAULT_RESIZE = "pi"


class TimmImportError(ValueError):
    """A source, task or output ``import_timm`` cannot take; the message names it and what to do."""

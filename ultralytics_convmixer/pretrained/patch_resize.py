"""Resize a patch-embedding kernel to another patch size, so that a trunk trained at patch 7 runs at stride 8.

Two methods, both mapping an ``(out, in, p, p)`` kernel to ``(out, in, q, q)``:

- ``pi``: FlexiViT's pseudo-inverse resize (Beyer et al., "FlexiViT: One Model for All Patch Sizes"). With ``B`` the
  bilinear resize of a ``p x p`` patch to ``q x q``, the new kernel ``w'`` solves ``B^T w' = w`` in the least-squares
  sense, so a patch resized by ``B`` gets the response the original patch got (exactly, when ``q >= p``).
- ``bilinear``: the kernel itself resized bilinearly and scaled by ``(p / q) ** 2``, the ratio of the patch areas, so
  that a smooth kernel keeps its response to a flat patch.

``benchmarks/patch_resize.py`` measures which keeps a trunk's features closer to the original on resized images;
:data:`DEFAULT_RESIZE` is the one it found closer.
"""

from typing import Callable, Dict

import torch
import torch.nn.functional as F

# Defined without torch (the command line offers them); re-exported here, beside the methods they name.
from .options import DEFAULT_RESIZE, RESIZE_NAMES

__all__ = ["DEFAULT_RESIZE", "RESIZE_METHODS", "RESIZE_NAMES", "resize_kernel", "resize_matrix"]


def _bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of the last two dims to ``size x size`` (antialiased when shrinking), as images are resized."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


def resize_matrix(p: int, q: int) -> torch.Tensor:
    """Return the matrix ``B`` of the bilinear resize of a ``p x p`` patch to ``q x q``, as images are resized.

    Args:
        p (int): Side of the patch.
        q (int): Side of the resized patch.

    Returns:
        (torch.Tensor): ``B``, ``(q*q, p*p)`` float64: ``B @ patch.flatten()`` is the resized patch, flattened.
    """
    basis = torch.eye(p * p, dtype=torch.float64).reshape(p * p, 1, p, p)
    return _bilinear(basis, q).reshape(p * p, q * q).T


def resize_kernel(weight: torch.Tensor, q: int, method: str = DEFAULT_RESIZE) -> torch.Tensor:
    """Resize a patch kernel to patch size ``q`` by ``method`` (a key of :data:`RESIZE_METHODS`).

    Args:
        weight (torch.Tensor): The kernel, ``(out, in, p, p)``.
        q (int): The new patch size.
        method (str): ``pi`` or ``bilinear`` (see the module docstring).

    Returns:
        (torch.Tensor): The kernel ``(out, in, q, q)``, in ``weight``'s dtype (a copy if ``q == p``).
    """
    p = weight.shape[-1]
    if p == q:
        return weight.clone()
    return RESIZE_METHODS[method](weight.to(torch.float64), p, q).to(weight.dtype)


def _pseudo_inverse(weight: torch.Tensor, p: int, q: int) -> torch.Tensor:
    """Resize a float64 kernel by FlexiViT's pseudo-inverse: the ``w'`` with ``B^T w' = w`` (least squares)."""
    flat = weight.reshape(-1, p * p)
    resized = flat @ torch.linalg.pinv(resize_matrix(p, q).T).T  # each row w' = pinv(B^T) w
    return resized.reshape(*weight.shape[:2], q, q)


def _area_scaled_bilinear(weight: torch.Tensor, p: int, q: int) -> torch.Tensor:
    """Resize a float64 kernel bilinearly and scale it by the ratio of the patch areas ``(p / q) ** 2``."""
    return _bilinear(weight, q) * (p / q) ** 2


# ``options.RESIZE_NAMES`` names these keys for the command line; tests/test_timm_import.py checks that they agree.
RESIZE_METHODS: Dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "pi": _pseudo_inverse,
    "bilinear": _area_scaled_bilinear,
}

"""What the depthwise convolution's fast path must compute, by PyTorch's own convolution, and how far off it may be.

The Triton kernels, their tests and benchmark (``dwconv_check``) and their check of themselves at run time
(``dwconv_selfcheck``) all measure them against these functions, with these tolerances.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}
"""Largest relative error accepted per input dtype (:func:`relative_error`): the kernels accumulate in fp32 and round
once to the output dtype, so a correct result is orders of magnitude closer; a wrong tile or race is off by O(1)."""


def reference_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Compute ``F.conv2d(x, weight, bias, padding=k // 2, groups=C)``: the function the kernels must match.

    Args:
        x (torch.Tensor): Input ``(N, C, H, W)``.
        weight (torch.Tensor): Filters ``(C, 1, k, k)``, odd ``k``.
        bias (torch.Tensor | None): Optional ``(C,)`` bias.

    Returns:
        (torch.Tensor): The convolution.
    """
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=weight.shape[0])


def reference_grads(
    grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool, need: Tuple[bool, bool, bool]
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Compute the input, weight and bias gradients of :func:`reference_conv` that ``need`` asks for (None else).

    Args:
        grad_y (torch.Tensor): Gradient of the output.
        x (torch.Tensor): The input.
        weight (torch.Tensor): The filters.
        has_bias (bool): Whether the convolution has a bias.
        need (Tuple[bool, bool, bool]): Which of the input, weight and bias gradients to compute.

    Returns:
        (Tuple): The three gradients, None where not needed.
    """
    c, pad = weight.shape[0], weight.shape[-1] // 2
    return torch.ops.aten.convolution_backward(
        grad_y, x, weight, [c] if has_bias else None, [1, 1], [pad, pad], [1, 1], False, [0, 0], c, list(need)
    )


def relative_error(a: torch.Tensor, ref: torch.Tensor, scale: Optional[torch.Tensor] = None) -> float:
    """Return the largest absolute difference of ``a`` from ``ref`` over the largest magnitude of ``scale``, in float64.

    Args:
        a (torch.Tensor): The tensor checked.
        ref (torch.Tensor): The reference, of the same shape.
        scale (torch.Tensor | None): What the error is measured against; None: ``ref``. Where the reference sums
            terms that cancel (a bias gradient behind a BatchNorm is near zero), pass the same sum of their magnitudes
            (the reference of the inputs' absolute values): rounding errors are relative to that.

    Returns:
        (float): The relative error (the absolute one where the scale is all zeros).
    """
    ref, scale = ref.double(), (ref if scale is None else scale).double()
    return ((a.double() - ref).abs().max() / scale.abs().max().clamp_min(1e-30)).item()

"""Checks of the depthwise convolution's fast path against PyTorch's: value, gradients, dtype, layout, determinism.

One harness for the tests (the Triton kernels under Triton's interpreter, on the CPU) and ``benchmarks/kernels.py
--check`` (on a GPU). Errors are relative: the largest absolute difference from float64 ``F.conv2d`` over the largest
magnitude of that reference, so one tolerance per dtype serves every shape.
"""

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import dwconv_selfcheck
from .dwconv import depthwise_conv2d_triton
from .dwconv_reference import TOLERANCE, reference_conv, relative_error

ERRORS = ("y", "grad_x", "grad_w", "grad_b")  # the output and the input, weight and bias gradients
Conv = Union[Callable[..., torch.Tensor], nn.Conv2d]
__all__ = ["ERRORS", "TOLERANCE", "check_case", "make_inputs", "relative_error", "weight_grad"]


def make_inputs(
    shape: Sequence[int],
    k: int,
    dtype: torch.dtype,
    device: Union[str, torch.device] = "cpu",
    channels_last: bool = False,
    bias: bool = True,
    seed: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Return a random input, filters, bias and output gradient for one depthwise convolution (CPU generator).

    Args:
        shape (Sequence[int]): ``(N, C, H, W)`` of the input.
        k (int): Kernel size.
        dtype (torch.dtype): Dtype of every tensor.
        device (str | torch.device): Their device.
        channels_last (bool): Whether the input and output gradient are channels_last.
        bias (bool): Whether to make a bias (else None).
        seed (int): Seed of the generator.

    Returns:
        (Tuple): ``x``, ``weight`` ``(C, 1, k, k)``, ``bias`` ``(C,)`` or None, and ``grad_y`` (shaped as ``x``).
    """
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def randn(*size: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*size, generator=gen) * scale).to(device=device, dtype=dtype)

    x = randn(n, c, h, w).contiguous(memory_format=layout)
    weight = randn(c, 1, k, k, scale=1 / k)
    b = randn(c) if bias else None
    return x, weight, b, randn(n, c, h, w).contiguous(memory_format=layout)


def _as_function(conv: Conv, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Tuple[Callable, List]:
    """Return ``conv`` as ``f(x, weight, bias)`` and the weight and bias it trains: a module's own, set to these."""
    if not isinstance(conv, nn.Conv2d):
        return conv, [weight, bias]
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return (lambda x, w, b: conv(x)), [conv.weight, conv.bias if bias is not None else None]


def check_case(
    shape: Sequence[int],
    k: int,
    dtype: torch.dtype,
    channels_last: bool,
    device: Union[str, torch.device] = "cpu",
    conv: Optional[Conv] = None,
    bias: bool = True,
    grads: str = "xwb",
    seed: int = 0,
    repeat: bool = False,
) -> Dict:
    """Compare one depthwise convolution and its gradients with float64 ``F.conv2d`` on random inputs.

    Args:
        shape (Sequence[int]): ``(N, C, H, W)``.
        k (int): Kernel size.
        dtype (torch.dtype): Dtype of the inputs.
        channels_last (bool): Input layout.
        device (str | torch.device): Device.
        conv (Callable | nn.Conv2d | None): ``f(x, weight, bias)``, or a depthwise module of that shape (its own
            parameters take the random values); None: the Triton kernels (``depthwise_conv2d_triton``).
        bias (bool): With a bias.
        grads (str): The gradients to ask for: any of ``x``, ``w``, ``b``.
        seed (int): Seed of the inputs.
        repeat (bool): Run twice, and check that the weight and bias gradients are bit-identical.

    Returns:
        (Dict): The case, a relative error per computed ``ERRORS`` entry, ``layout_ok`` (dtypes, shapes and memory
        formats as ``F.conv2d``'s), ``deterministic`` with ``repeat``, and ``ok``: all of it within ``TOLERANCE``.
    """
    x, weight, b, grad_y = make_inputs(shape, k, dtype, device, channels_last, bias, seed)
    ref = [t.detach().double().requires_grad_() if t is not None else None for t in (x, weight, b)]
    y_ref = reference_conv(*ref)
    y_ref.backward(grad_y.double())
    fn, (weight, b) = _as_function(conv or depthwise_conv2d_triton, weight, b)
    ours = [x.requires_grad_("x" in grads), weight.requires_grad_("w" in grads)]
    ours.append(b.requires_grad_("b" in grads) if b is not None else None)
    with dwconv_selfcheck.disabled():  # the kernels' own results, not the self-check's corrections
        y = fn(*ours)
        y.backward(grad_y)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    row = {"shape": list(shape), "k": k, "dtype": str(dtype).split(".")[-1], "channels_last": channels_last}
    row["y"] = relative_error(y, y_ref)
    wanted = [(key, t, r) for key, name, t, r in zip(ERRORS[1:], "xwb", ours, ref) if t is not None and name in grads]
    row.update({key: relative_error(t.grad, r.grad) for key, t, r in wanted})
    row["layout_ok"] = (
        y.dtype == dtype
        and y.is_contiguous(memory_format=layout)
        and all(t.grad.dtype == t.dtype and t.grad.shape == t.shape for _, t, _ in wanted)
        and (not x.requires_grad or x.grad.is_contiguous(memory_format=layout))
    )
    if repeat:
        with dwconv_selfcheck.disabled():
            row["deterministic"] = _same_parameter_grads_again(fn, ours, grad_y)
    errors = [row[key] for key in ERRORS if key in row]
    row["ok"] = row["layout_ok"] and row.get("deterministic", True) and max(errors) <= TOLERANCE[dtype]
    return row


def _same_parameter_grads_again(fn: Callable, inputs: List[Optional[torch.Tensor]], grad_y: torch.Tensor) -> bool:
    """Run ``fn(*inputs)`` backward again; whether its weight and bias gradients equal the first run's bit for bit."""
    params = [t for t in inputs[1:] if t is not None and t.grad is not None]
    first = [t.grad for t in params]
    for t in inputs:
        if t is not None:
            t.grad = None  # the second call must not accumulate into the first's gradients
    fn(*inputs).backward(grad_y)
    return all(torch.equal(a, t.grad) for a, t in zip(first, params))


def weight_grad(
    shape: Sequence[int], k: int, dtype: torch.dtype, channels_last: bool, device: Union[str, torch.device] = "cpu"
) -> torch.Tensor:
    """Return the Triton kernels' weight gradient on :func:`make_inputs`' tensors (seed 0), to compare across runs.

    Args:
        shape (Sequence[int]): ``(N, C, H, W)``.
        k (int): Kernel size.
        dtype (torch.dtype): Dtype.
        channels_last (bool): Input layout.
        device (str | torch.device): Device.

    Returns:
        (torch.Tensor): The gradient of the filters, ``(C, 1, k, k)``.
    """
    x, weight, b, grad_y = make_inputs(shape, k, dtype, device, channels_last)
    weight.requires_grad_()
    with dwconv_selfcheck.disabled():
        depthwise_conv2d_triton(x, weight, b).backward(grad_y)
    return weight.grad

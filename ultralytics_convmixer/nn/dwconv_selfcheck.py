"""The depthwise fast path checks itself: the first time it meets a case, against PyTorch's convolution, once.

A case is a device, dtype, memory layout, input shape and kernel size. Its first forward pass is compared with
``F.conv2d`` on the same input, and its first backward pass (input, weight and bias gradients) with PyTorch's
convolution backward, both in float32 with TF32 off (float64 for float64 inputs). Each error is relative to the same
computation on the inputs' absolute values, the scale of its rounding errors, so sums that cancel (a bias gradient
behind a BatchNorm) raise no false alarm. An error beyond
``dwconv_reference.TOLERANCE`` warns once, naming the case and the error, returns PyTorch's result, and from then on
the case runs on ``nn.Conv2d`` (``dwconv.fast_path_reason`` says why). :func:`checked_cases` lists every case checked
and its verdict, for ``compare`` and bug reports. The check costs one PyTorch convolution per case, and the memory of
a float32 copy of its tensors; ``ULTRALYTICS_CONVMIXER_FAST_DWCONV=nocheck`` skips it (``all,nocheck`` with ``all``).

Kernels that fail to run at all are handled in ``dwconv`` (the whole process then uses ``nn.Conv2d``).
"""

import contextlib
import threading
import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from .dwconv_reference import TOLERANCE, reference_conv, reference_grads, relative_error

Case = Tuple[str, str, str, Tuple[int, ...], int]  # device, dtype, layout, input shape, kernel size
GRADIENTS = ("grad_x", "grad_w", "grad_b")


@dataclass
class Verdict:
    """What the check found for one case: the errors measured and, if any was too large, which."""

    device: str
    dtype: str
    layout: str
    shape: Tuple[int, ...]
    k: int
    forward_error: Optional[float] = None
    backward_errors: Dict[str, float] = field(default_factory=dict)
    failed: Optional[str] = None  # "forward" or a gradient's name, with its error and the tolerance


_verdicts: Dict[Case, Verdict] = {}
_lock = threading.Lock()
_state = {"disabled": 0}


def case_of(x: torch.Tensor, weight: torch.Tensor, channels_last: bool) -> Case:
    """Return the case of a convolution of ``x`` by ``weight``."""
    layout = "channels_last" if channels_last else "contiguous"
    return str(x.device), str(x.dtype).removeprefix("torch."), layout, tuple(x.shape), int(weight.shape[-1])


def any_failed() -> bool:
    """Return whether any case failed its check in this process (cheap: the dispatcher asks it on every call)."""
    return any(v.failed for v in _verdicts.values())


def failure(case: Case) -> Optional[str]:
    """Return why ``case`` failed its check (it runs on ``nn.Conv2d``), or None."""
    verdict = _verdicts.get(case)
    return verdict.failed if verdict is not None else None


def checked_cases() -> List[dict]:
    """Return every case the fast path has checked in this process, with its errors and verdict.

    Returns:
        (List[dict]): One dict per case: ``device``, ``dtype``, ``layout``, ``shape``, ``k``, ``forward_error``,
        ``backward_errors`` (per gradient; empty until the case's first backward) and ``failed`` (None if it passed).
    """
    with _lock:
        return [asdict(v) for v in _verdicts.values()]


def forget_cases() -> None:
    """Forget every verdict, so that each case is checked again (for tests and benchmarks that break kernels)."""
    with _lock:
        _verdicts.clear()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the fast path without checking it inside the ``with`` block (the kernels' own tests compare them)."""
    _state["disabled"] += 1
    try:
        yield
    finally:
        _state["disabled"] -= 1


def _wanted(setting: set) -> bool:
    return not _state["disabled"] and "nocheck" not in setting


@contextlib.contextmanager
def _exact(device: torch.device) -> Iterator[None]:
    """Run the reference without autocast and without TF32: it must be the exact function in float32."""
    tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _reference_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], y: torch.Tensor, setting: set,
                  channels_last: bool) -> Optional[torch.Tensor]:  # fmt: skip
    """Check ``y``, the fast path's output, if its case is new: return PyTorch's output instead if ``y`` is wrong.

    Args:
        x (torch.Tensor): The convolution's input.
        weight (torch.Tensor): Its filters.
        bias (torch.Tensor | None): Its bias.
        y (torch.Tensor): What the kernels computed.
        setting (set): The words of ``ULTRALYTICS_CONVMIXER_FAST_DWCONV`` (``nocheck`` skips the check).
        channels_last (bool): The layout the kernels ran in.

    Returns:
        (torch.Tensor | None): The reference output (dtype and layout of ``y``) if the check failed, else None.
    """
    case = case_of(x, weight, channels_last)
    if case in _verdicts or not _wanted(setting):
        return None
    dtype = _reference_dtype(x.dtype)
    x, weight, bias = (t.to(dtype) if t is not None else None for t in (x, weight, bias))
    with torch.no_grad(), _exact(x.device):
        ref = reference_conv(x, weight, bias)
        scale = reference_conv(x.abs(), weight.abs(), bias.abs() if bias is not None else None)
    error = relative_error(y, ref, scale)
    verdict = Verdict(*case, forward_error=error)
    with _lock:
        _verdicts[case] = verdict
    if error <= TOLERANCE.get(x.dtype, TOLERANCE[torch.float32]):
        return None
    _fail(verdict, "forward", error, x.dtype)
    return ref.to(y.dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def check_backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool, need: tuple,
                   grads: tuple, channels_last: bool) -> Optional[tuple]:  # fmt: skip
    """Check the fast path's gradients on its case's first backward: return PyTorch's instead if any is wrong.

    Args:
        grad_y (torch.Tensor): The output's gradient.
        x (torch.Tensor): The input.
        weight (torch.Tensor): The filters.
        has_bias (bool): Whether the convolution has a bias.
        need (tuple): Which of the input, weight and bias gradients were computed.
        grads (tuple): What the kernels computed (None where not needed).
        channels_last (bool): The layout the kernels ran in.

    Returns:
        (tuple | None): The reference gradients (the dtypes and layouts of ``grads``) if the check failed, else None.
    """
    verdict = _verdicts.get(case_of(x, weight, channels_last))
    if verdict is None or verdict.backward_errors or verdict.failed or not any(need):
        return None  # not checked forward (the check is off), checked already, or nothing to check
    dtype = _reference_dtype(x.dtype)
    grad_y, x, weight = grad_y.to(dtype), x.to(dtype), weight.to(dtype)
    with torch.no_grad(), _exact(x.device):
        refs = reference_grads(grad_y, x, weight, has_bias, need)
        scales = reference_grads(grad_y.abs(), x.abs(), weight.abs(), has_bias, need)
    errors = {name: relative_error(g, r, m) for name, g, r, m in zip(GRADIENTS, grads, refs, scales) if g is not None}
    with _lock:
        verdict.backward_errors = errors
    tolerance = TOLERANCE.get(x.dtype, TOLERANCE[torch.float32])
    wrong = [(name, e) for name, e in errors.items() if e > tolerance]
    if not wrong:
        return None
    _fail(verdict, *max(wrong, key=lambda item: item[1]), x.dtype)
    return tuple(r.to(g.dtype).contiguous(memory_format=_format_of(g)) if g is not None else None
                 for g, r in zip(grads, refs))  # fmt: skip


def _format_of(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and not t.is_contiguous() else torch.contiguous_format


def _fail(verdict: Verdict, what: str, error: float, dtype: torch.dtype) -> None:
    """Record that ``what`` (the output or a gradient) of the verdict's case was wrong, and warn once for the case."""
    tolerance = TOLERANCE.get(dtype, TOLERANCE[torch.float32])
    verdict.failed = f"{what}: relative error {error:.2e} > {tolerance:.0e}"
    shape = "x".join(map(str, verdict.shape))
    warnings.warn(
        f"ultralytics_convmixer: the Triton depthwise convolution's self-check failed on {verdict.device} "
        f"{verdict.dtype} {verdict.layout} {shape}, kernel {verdict.k} ({verdict.failed}); this case uses "
        "nn.Conv2d from now on. ultralytics_convmixer.nn.dwconv_selfcheck.checked_cases() lists every case checked "
        "(please include it in a bug report).",
        RuntimeWarning,
        stacklevel=4,
    )

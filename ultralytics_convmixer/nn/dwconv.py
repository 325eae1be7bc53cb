"""Depthwise convolution used by every ConvMixer block, with a fast Triton path for CUDA.

``DepthwiseConv2d`` is a subclass of ``nn.Conv2d`` (``groups == channels``, "same" padding for odd kernels), so
parameters, ``state_dict``, fusing, TorchScript and ONNX export behave exactly as for a plain depthwise ``nn.Conv2d``.

Why a custom kernel: cuDNN's depthwise convolution is fast for k <= 7 but falls off a cliff at k = 9 (the ConvMixer
paper's kernel), about 10x slower than k = 7 on an H100 in fp16 channels_last, forward plus backward. The Triton
kernels of ``dwconv_triton`` compute the same function directly for every odd k from 3 to 13; ``forward`` uses them
only when it is safe and worth it (see ``fast_path_reason``: by default for the kernels cuDNN is slow at, k >= 9) and
otherwise calls ``nn.Conv2d.forward``, so exported graphs hold a standard ``Conv`` and CPU results are bit-identical to
``nn.Conv2d``. Under ``torch.compile`` the kernels run as the custom operators ``ultralytics_convmixer::
depthwise_conv2d`` and ``depthwise_conv2d_backward``, opaque nodes of the compiled graphs.

``dwconv_triton`` is imported on the first call that takes the fast path, so importing this module never imports
Triton. A Triton kernel that fails (e.g. does not compile for the GPU) is reported once, with a warning, and every
later call of the process uses ``nn.Conv2d`` (``triton_failure`` says why). A kernel that runs is checked against
PyTorch's convolution the first time it meets a case (``dwconv_selfcheck``): one that computes wrong values warns and
leaves that case to ``nn.Conv2d``.
"""

import contextlib
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import dwconv_selfcheck as selfcheck
from .dwconv_reference import reference_conv, reference_grads
from .dwconv_tiling import FWD_NCHW_CONFIGS, GRID_AXIS_MAX, INT32_MAX, interpreting, wgrad_nchw_block

ENV_FAST_DWCONV = "ULTRALYTICS_CONVMIXER_FAST_DWCONV"
"""Environment variable, comma-separated words: ``0`` always uses ``nn.Conv2d.forward`` (cuDNN on CUDA); ``all`` uses
the Triton kernels for every supported kernel size, ``CUDNN_FAST_KERNELS`` included (unset: for the rest); ``nocheck``
skips their self-check (``dwconv_selfcheck``), as in ``all,nocheck``."""

SUPPORTED_KERNELS = (3, 5, 7, 9, 11, 13)
CUDNN_FAST_KERNELS = (3, 5, 7)
"""Kernel sizes left to cuDNN by default: its depthwise convolution takes 0.3-2.0 ms at these on an H100 (fp16,
channels_last, forward plus backward, the four shapes of ``benchmarks/kernels.py``) against 2.4-20.5 ms at k = 9, so
the Triton kernels are needed from k = 9 on; set ``ULTRALYTICS_CONVMIXER_FAST_DWCONV=all`` to use them for these too."""
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise k x k convolution with stride 1 and "same" padding.

    On CUDA it runs the Triton kernels of ``dwconv_triton`` when ``fast_path_reason`` allows: by default for k >= 9,
    where cuDNN is slow (``ULTRALYTICS_CONVMIXER_FAST_DWCONV=all`` for every k, ``=0`` never); everywhere else it is
    exactly ``nn.Conv2d``.

    Args:
        channels (int): Input and output channels (one filter per channel).
        k (int): Odd kernel size.
        bias (bool): Whether to add a learnable bias.
    """

    def __init__(self, channels: int, k: int = 9, bias: bool = True):
        super().__init__(channels, channels, k, padding=k // 2, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the depthwise convolution."""
        if not torch.jit.is_scripting() and self._use_fast_path(x):
            return self._fast_forward(x)
        return self._conv_forward(x, self.weight, self.bias)  # what nn.Conv2d.forward does (and TorchScript-able)

    @torch.jit.unused
    def _use_fast_path(self, x: torch.Tensor) -> bool:
        return fast_path_reason(x, self) is None

    @torch.jit.unused
    def _fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled("cuda"):  # cast like autocast does for F.conv2d: everything to the autocast dtype
            dtype = torch.get_autocast_dtype("cuda")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        return _apply(x, weight, bias)


# ----------------------------------------------------------------------------------------------------------------------
# Fast-path decision
# ----------------------------------------------------------------------------------------------------------------------


_TELLS_EXPORT_FROM_COMPILE = hasattr(torch.compiler, "is_exporting")  # torch 2.7+


def fast_path_reason(x: torch.Tensor, module: nn.Conv2d) -> Optional[str]:
    """Say why ``module(x)`` will not use the Triton kernels (it cannot, or cuDNN is as fast), or None if it will.

    Args:
        x (torch.Tensor): The input that would be passed to ``module``.
        module (nn.Conv2d): A ``DepthwiseConv2d`` (or an equivalent depthwise ``nn.Conv2d``).

    Returns:
        (str | None): A short human-readable reason for using ``nn.Conv2d.forward`` instead, or None for the fast path.
    """
    if not _TELLS_EXPORT_FROM_COMPILE and torch.compiler.is_compiling():
        # torch < 2.7 cannot tell torch.export from torch.compile (and its Dynamo cannot trace the environment read)
        return "torch.compile or torch.export on torch < 2.7 (an exported program must hold a standard convolution)"
    setting = _setting()
    if "0" in setting:
        return f"disabled by {ENV_FAST_DWCONV}=0"
    if torch.onnx.is_in_onnx_export():  # before tracing: the TorchScript-based exporter traces
        return "ONNX export (the graph must hold a standard Conv)"
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return "TorchScript scripting or tracing (the graph must hold a standard convolution)"
    if _TELLS_EXPORT_FROM_COMPILE and torch.compiler.is_exporting():
        # torch.export (ExecuTorch, dynamo ONNX); torch.compile keeps the Triton path (torch 2.7-2.11 also answer True
        # under torch.compile, pytorch/pytorch#176347: there it takes nn.Conv2d too)
        return "torch.export (the exported program must hold a standard convolution)"
    reason = _module_reason(module) or _input_reason(x, module)
    if reason is not None:
        return reason
    if not _triton_available():
        return "triton is not importable"
    if triton_failure() is not None:
        return f"the Triton kernels failed earlier in this process ({triton_failure()})"
    k = module.kernel_size[0]
    if k in CUDNN_FAST_KERNELS and "all" not in setting:  # could run, but cuDNN is as fast (CUDNN_FAST_KERNELS)
        return f"kernel {k} is fast in cuDNN ({ENV_FAST_DWCONV}=all uses the Triton kernels for it)"
    failed = selfcheck.any_failed() and selfcheck.failure(selfcheck.case_of(x, module.weight, _is_channels_last(x)))
    return f"the Triton kernels' self-check failed for this case ({failed})" if failed else None


def _setting() -> set:
    """Return the words of ``ULTRALYTICS_CONVMIXER_FAST_DWCONV`` (see ``ENV_FAST_DWCONV``)."""
    return set(os.environ.get(ENV_FAST_DWCONV, "").replace(" ", "").lower().split(","))


def _module_reason(module: nn.Conv2d) -> Optional[str]:
    """Say why the kernels cannot compute ``module`` (not a stride-1 "same" depthwise convolution), or None."""
    k = module.kernel_size
    if k[0] != k[1] or k[0] not in SUPPORTED_KERNELS:
        return f"kernel {tuple(k)} is not square with an odd size in {SUPPORTED_KERNELS}"
    if not (
        module.out_channels == module.in_channels == module.groups
        and tuple(module.stride) == (1, 1)
        and tuple(module.dilation) == (1, 1)
        and tuple(module.padding) == (k[0] // 2, k[0] // 2)
        and module.padding_mode == "zeros"
    ):
        return "not a stride-1, 'same'-padded depthwise convolution"
    return None


def _input_reason(x: torch.Tensor, module: nn.Conv2d) -> Optional[str]:
    """Say why the kernels cannot take ``x`` for ``module`` (device, dtype, size), or None."""
    c = module.in_channels
    if x.dim() != 4 or x.shape[1] != c:
        return f"input shape {tuple(x.shape)} is not (N, {c}, H, W)"  # incl. unbatched 3-D input
    if not (x.is_cuda or interpreting()):  # Triton's interpreter runs the kernels on CPU tensors (for the tests)
        return f"input is on {x.device.type}, not CUDA"
    if module.weight.device != x.device:
        return "input and parameters are on different devices"  # nn.Conv2d raises the proper error
    dtype = x.dtype
    param_dtypes = {p.dtype for p in (module.weight, module.bias) if p is not None}
    # Autocast casts the input and parameters of a convolution to its dtype, but leaves float64 ones as they are.
    if torch.is_autocast_enabled("cuda") and param_dtypes | {dtype} <= set(SUPPORTED_DTYPES):
        dtype = torch.get_autocast_dtype("cuda")  # what nn.Conv2d would compute in
    elif param_dtypes != {dtype}:
        return "input and parameter dtypes differ"  # nn.Conv2d raises the proper error
    if dtype not in SUPPORTED_DTYPES:
        return f"dtype {dtype} is not one of {SUPPORTED_DTYPES}"
    n, _, h, w = x.shape
    if x.numel() == 0:
        return "empty input"
    if c * h * w > INT32_MAX or n * h * w > INT32_MAX:
        return "input too large for the kernels' 32-bit indexing"
    fewest_pixels_per_program = min(
        *(block for _, block in FWD_NCHW_CONFIGS), wgrad_nchw_block(module.kernel_size[0], INT32_MAX)
    )
    if h * w > GRID_AXIS_MAX * fewest_pixels_per_program:
        return f"a {h} x {w} plane has more pixel tiles than a CUDA grid axis holds"
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Functional entry points
# ----------------------------------------------------------------------------------------------------------------------


def depthwise_conv2d_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Depthwise "same" convolution (stride 1, padding ``k // 2``) with the Triton kernels, differentiable.

    Computes ``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` without any of the dispatcher's checks: it is the
    entry point for tests and benchmarks, including on CPU tensors under ``TRITON_INTERPRET=1``. A failing kernel
    falls back to ``F.conv2d`` as in ``DepthwiseConv2d``.

    Args:
        x (torch.Tensor): Input ``(N, C, H, W)``, fp32, fp16 or bf16, NCHW or channels_last.
        weight (torch.Tensor): Filters ``(C, 1, k, k)`` with odd ``k`` in 3..13, same dtype as ``x``.
        bias (torch.Tensor | None): Optional ``(C,)`` bias, same dtype as ``x``.

    Returns:
        (torch.Tensor): Output with the shape, dtype and memory format of ``x``.
    """
    c, k = weight.shape[0], weight.shape[-1]
    if x.dim() != 4 or x.shape[1] != c or tuple(weight.shape) != (c, 1, k, k) or k not in SUPPORTED_KERNELS:
        raise ValueError(f"unsupported depthwise convolution: x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    return _apply(x, weight, bias)


def triton_failure() -> Optional[str]:
    """Return the error that made this process give up the Triton kernels, or None.

    Set by the first failing kernel launch (it warns once); while it is set, every call uses ``nn.Conv2d``.
    """
    return _triton_state.get("failure")


def take_triton_failure() -> Optional[str]:
    """Return the recorded Triton failure (as ``triton_failure``) and forget it, so later calls try the kernels again.

    Giving up Triton for the rest of a process after one failure is right for training; a benchmark or check that runs
    many cases in one process takes each case's failure instead, so that one exotic case does not leave every later
    one on ``nn.Conv2d``.
    """
    return _triton_state.pop("failure", None)


# ----------------------------------------------------------------------------------------------------------------------
# Autograd function and custom operators
# ----------------------------------------------------------------------------------------------------------------------


def _apply(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Run the Triton path: as the custom operator under torch.compile, as the autograd.Function otherwise."""
    if torch.compiler.is_compiling():
        return _depthwise_conv2d_op(x, weight, bias)
    return _DepthwiseConv2dFunction.apply(x, weight, bias)


class _DepthwiseConv2dFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton kernels; same function and gradients as ``F.conv2d(..., groups=C)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _forward(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight = ctx.saved_tensors
        return _backward(grad_y, x, weight, ctx.has_bias, tuple(ctx.needs_input_grad))


# The same function as a PyTorch custom operator, for torch.compile (Ultralytics' ``compile=True``): Dynamo cannot
# trace Triton's autotuner or this module's fallback logic, but it keeps a custom operator as one opaque node whose
# output it knows from the "fake" functions below. Eager calls take the autograd.Function: a custom operator costs
# ~70 us more per forward plus backward in Python dispatch (measured on the 2-core CI machine).
@torch.library.custom_op("ultralytics_convmixer::depthwise_conv2d", mutates_args=())
def _depthwise_conv2d_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return _forward(x, weight, bias)


@_depthwise_conv2d_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.empty_like(x, memory_format=_layout(_is_channels_last(x)))


@torch.library.custom_op("ultralytics_convmixer::depthwise_conv2d_backward", mutates_args=())
def _depthwise_conv2d_backward_op(
    grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool, need: Sequence[bool]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # An operator returns tensors only: an empty one stands for a gradient that is not needed, a new one each time,
    # since an operator's outputs must not alias each other (frozen weights: neither weight nor bias gradient).
    grads = _backward(grad_y, x, weight, has_bias, tuple(need))
    return tuple(
        g.contiguous(memory_format=m) if g is not None else x.new_empty(0) for g, m in zip(grads, _grad_layouts(x))
    )


@_depthwise_conv2d_backward_op.register_fake
def _(
    grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool, need: Sequence[bool]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    likes = (x, weight, weight.new_empty(weight.shape[0]))
    return tuple(
        torch.empty_like(like, memory_format=m) if wanted else x.new_empty(0)
        for like, m, wanted in zip(likes, _grad_layouts(x), _wanted_grads(has_bias, need))
    )


def _op_setup_context(ctx, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _op_backward(ctx, grad_y: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
    x, weight = ctx.saved_tensors
    need = [bool(n) for n in ctx.needs_input_grad]
    grads = _depthwise_conv2d_backward_op(grad_y, x, weight, ctx.has_bias, need)
    return tuple(g if wanted else None for g, wanted in zip(grads, need))


_depthwise_conv2d_op.register_autograd(_op_backward, setup_context=_op_setup_context)


def _wanted_grads(has_bias: bool, need: Sequence[bool]) -> Tuple[bool, bool, bool]:
    """Which of the input, weight and bias gradients to compute, the same for the operator and its fake."""
    return bool(need[0]), bool(need[1]), has_bias and bool(need[2])


def _grad_layouts(x: torch.Tensor) -> Tuple[torch.memory_format, ...]:
    """Memory formats of the input, weight and bias gradients, the same for the operator and its fake."""
    return _layout(_is_channels_last(x)), torch.contiguous_format, torch.contiguous_format


# ----------------------------------------------------------------------------------------------------------------------
# Kernel calls and the fallback to nn.Conv2d
# ----------------------------------------------------------------------------------------------------------------------


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Return the convolution of ``x`` (NCHW or channels_last) by the Triton kernels, in the memory format of ``x``.

    PyTorch's convolution computes it instead where the kernels failed to run, or failed their check of this case.
    """
    nhwc = _is_channels_last(x)
    x = x.contiguous(memory_format=_layout(nhwc))
    if selfcheck.failure(selfcheck.case_of(x, weight, nhwc)) is None:
        y = _unless_triton_fails(lambda kernels: kernels.forward(x, weight, bias, nhwc), x)
        if y is not None:
            corrected = selfcheck.check_forward(x, weight, bias, y, _setting(), nhwc)
            return y if corrected is None else corrected
    return reference_conv(x, weight, bias).contiguous(memory_format=_layout(nhwc))


def _backward(
    grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool, need: Tuple[bool, bool, bool]
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Return the gradients of ``_forward`` that ``need`` asks for (input, weight, bias; None for the others)."""
    nhwc = _is_channels_last(x)
    x = x.contiguous(memory_format=_layout(nhwc))  # a no-op for the x that _forward saw
    grad_y = grad_y.contiguous(memory_format=_layout(nhwc))
    need = _wanted_grads(has_bias, need)
    if selfcheck.failure(selfcheck.case_of(x, weight, nhwc)) is None:
        grads = _unless_triton_fails(lambda kernels: _triton_grads(kernels, x, weight, grad_y, nhwc, need), x)
        if grads is not None:
            corrected = selfcheck.check_backward(grad_y, x, weight, has_bias, need, grads, nhwc)
            return grads if corrected is None else corrected
    return tuple(reference_grads(grad_y, x, weight, has_bias, need))


def _triton_grads(
    kernels: Any, x: torch.Tensor, weight: torch.Tensor, grad_y: torch.Tensor, nhwc: bool, need: Tuple[bool, ...]
) -> Tuple[Any, Any, Any]:
    """Input, weight and bias gradients (None where not ``need``-ed) from the Triton kernels."""
    gx = kernels.input_grad(grad_y, weight, nhwc) if need[0] else None
    gw = gb = None
    if need[1] or need[2]:
        gw, gb = kernels.weight_grad(x, grad_y, weight.shape[-1], nhwc, need[2])
        gw = gw.to(weight.dtype) if need[1] else None
        gb = gb.to(weight.dtype) if gb is not None else None
    return gx, gw, gb


def _unless_triton_fails(launch: Callable[[Any], Any], x: torch.Tensor) -> Any:
    """Return ``launch(kernels)`` on ``x``'s device, or None if the Triton kernels failed now or earlier."""
    if triton_failure() is not None:
        return None
    try:
        with _device_guard(x):
            return launch(_kernels())
    except torch.OutOfMemoryError:  # not a failure of the kernels
        raise
    except Exception as error:
        _give_up_triton(error)
        return None


def _give_up_triton(error: Exception) -> None:
    """Record that a Triton kernel failed (e.g. it does not compile for this GPU) and warn once.

    Every later call takes ``nn.Conv2d``'s path (``fast_path_reason`` says why), so a fast path that breaks on a GPU,
    driver or Triton release it was never run on costs speed, not the training run. Out-of-memory errors are not
    failures of the kernels and are raised as they are.
    """
    if "failure" not in _triton_state:
        first_line = next(iter(str(error).strip().splitlines()), "")  # messages may be empty or blank
        _triton_state["failure"] = f"{type(error).__name__}: {first_line}"
        warnings.warn(
            f"ultralytics_convmixer: the Triton depthwise convolution failed ({_triton_state['failure']}); using "
            f"nn.Conv2d (cuDNN) for the rest of this process. Set {ENV_FAST_DWCONV}=0 to skip the Triton kernels.",
            RuntimeWarning,
            stacklevel=3,
        )


_triton_state: Dict[str, Any] = {}
"""Filled lazily: ``available`` (whether Triton imports), ``kernels`` (the ``dwconv_triton`` module, or a stand-in
with the same ``forward``, ``input_grad`` and ``weight_grad``) and ``failure`` (see ``triton_failure``)."""


def _triton_available() -> bool:
    """Return True if Triton imports (checked once, and only when a CUDA tensor asks for the fast path)."""
    if "available" not in _triton_state:
        try:
            import triton  # noqa: F401

            _triton_state["available"] = True
        except Exception:  # ImportError, or a broken install that fails while importing
            _triton_state["available"] = False
    return _triton_state["available"]


def _kernels() -> Any:
    """Return the Triton kernels: the ``dwconv_triton`` module, imported (and its kernels defined) on first use."""
    if "kernels" not in _triton_state:
        from . import dwconv_triton

        _triton_state["kernels"] = dwconv_triton
    return _triton_state["kernels"]


def _device_guard(x: torch.Tensor):
    """Make ``x``'s GPU current, as Triton launches on the current device and stream."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _is_channels_last(x: torch.Tensor) -> bool:
    """Return True if ``x`` is (or is best treated as) channels_last, i.e. channels are the innermost dimension."""
    if x.is_contiguous():
        return False  # also covers tensors that are both, e.g. C == 1 or H == W == 1
    return x.is_contiguous(memory_format=torch.channels_last) or x.stride(1) == 1


def _layout(nhwc: bool) -> torch.memory_format:
    return torch.channels_last if nhwc else torch.contiguous_format


__all__: List[str] = [
    "DepthwiseConv2d",
    "depthwise_conv2d_triton",
    "fast_path_reason",
    "reference_conv",
    "take_triton_failure",
    "triton_failure",
]

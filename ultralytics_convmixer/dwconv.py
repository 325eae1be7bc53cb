"""Depthwise convolution used by every ConvMixer block, with a fast Triton path for CUDA.

``DepthwiseConv2d`` is a subclass of ``nn.Conv2d`` (``groups == channels``, "same" padding for odd kernels), so
parameters, ``state_dict``, fusing, TorchScript and ONNX export behave exactly as for a plain depthwise ``nn.Conv2d``.

Why a custom kernel: cuDNN's depthwise convolution is fast for k <= 7 but falls off a cliff at k = 9 (the ConvMixer
paper's kernel), about 10x slower than k = 7 on an H100 in fp16 channels_last, forward plus backward. The Triton
kernels below compute the same function directly for every odd k from 3 to 13; ``forward`` uses them only when it
is safe and worth it (see ``fast_path_reason``: by default for the kernels cuDNN is slow at, k >= 9) and otherwise
calls ``nn.Conv2d.forward``, so exported graphs hold a standard ``Conv`` and CPU results are bit-identical to
``nn.Conv2d``. Under ``torch.compile`` the kernels run as the custom operators ``ultralytics_convmixer::
depthwise_conv2d`` and ``depthwise_conv2d_backward``, opaque nodes of the compiled graphs.

Kernel design (``k`` odd, stride 1, padding ``k // 2``; all accumulation in fp32):

* Forward and input gradient share one kernel: the input gradient of a "same" correlation is the same correlation
  of ``grad_output`` with the spatially flipped filter.

  - channels_last (NHWC): one program per (image, ``TH x TW`` pixel tile, ``BLOCK_C`` channels). Channels are the
    contiguous vector dimension, so each of the ``k * k`` shifted tile loads is a coalesced, vectorised read that hits
    L1/L2 for all but the first tap, and each tap needs one ``BLOCK_C`` weight vector.
  - Kernel rows are a runtime loop and kernel columns (partly) unrolled: unrolling all ``k * k`` taps lets the compiler
    hoist every load, which needs hundreds of registers (spills) and minutes of compilation at k = 13.
  - NCHW: one program per (image, channel) plane and ``BLOCK`` consecutive pixels of it (flattened, so small planes
    such as 20 x 20 waste few lanes); the weight of each tap is a scalar shared by the whole program.

* Weight and bias gradients are deterministic: no atomics. Every program owns a disjoint slice of the reduction and
  keeps all ``k * k`` taps in one register accumulator of shape ``[KK_PAD, ...]`` (taps flattened and padded to a
  power of two), updated by a single gathered load per step; the per-program partial sums go to a buffer that
  ``torch.sum`` reduces in a fixed order. The split that sets the summation order is a fixed function of the shape;
  only parameters that cannot change it are autotuned, so the bits of the result never depend on timing.

  - NCHW: one program per (channel, pixel tile), looping over the batch.
  - NHWC: one program per (channel block, run of consecutive pixels), looping over the pixels.
"""

import contextlib
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

ENV_FAST_DWCONV = "ULTRALYTICS_CONVMIXER_FAST_DWCONV"
"""Environment variable: ``0`` always uses ``nn.Conv2d.forward`` (cuDNN on CUDA); ``all`` uses the Triton kernels for
every supported kernel size, ``CUDNN_FAST_KERNELS`` included; unset (or anything else) uses them for the rest."""

SUPPORTED_KERNELS = (3, 5, 7, 9, 11, 13)
CUDNN_FAST_KERNELS = (3, 5, 7)
"""Kernel sizes left to cuDNN by default: its depthwise convolution takes 0.3-2.0 ms at these on an H100 (fp16,
channels_last, forward plus backward, the four shapes of ``benchmarks/kernels.py``) against 2.4-20.5 ms at k = 9, so
the Triton kernels are needed from k = 9 on; set ``ULTRALYTICS_CONVMIXER_FAST_DWCONV=all`` to use them for these too."""
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_INT32_MAX = 2**31 - 1
_GRID_AXIS_MAX = 65535  # CUDA's limit of grid axes 1 and 2; the NCHW kernels put a plane's pixel tiles on axis 1
_FWD_NCHW_CONFIGS = ((4, 512), (4, 256), (4, 1024), (8, 1024), (8, 2048))  # (num_warps, BLOCK) that autotuning tries
_WGRAD_PROGRAMS = 1024  # target number of programs of the NHWC weight-gradient kernel (a few waves on any GPU)

_triton_state: Dict[str, Any] = {}  # filled lazily: whether Triton imports, then the kernels and their configs
FORCED_CONFIGS: Dict[str, Dict[str, int]] = {}
"""Kernel name (``fwd_nchw``, ``fwd_nhwc``, ``wgrad_nhwc``) -> meta-parameters to use instead of autotuning."""


def _triton_available() -> bool:
    """Return True if Triton imports (checked once, and only when a CUDA tensor asks for the fast path)."""
    if "available" not in _triton_state:
        try:
            import triton  # noqa: F401

            _triton_state["available"] = True
        except Exception:  # ImportError, or a broken install that fails while importing
            _triton_state["available"] = False
    return _triton_state["available"]


def triton_failure() -> Optional[str]:
    """Return the error that made this process give up the Triton kernels (see ``_give_up_triton``), or None."""
    return _triton_state.get("failure")


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


def _is_channels_last(x: torch.Tensor) -> bool:
    """Return True if ``x`` is (or is best treated as) channels_last, i.e. channels are the innermost dimension."""
    if x.is_contiguous():
        return False  # also covers tensors that are both, e.g. C == 1 or H == W == 1
    return x.is_contiguous(memory_format=torch.channels_last) or x.stride(1) == 1


def fast_path_reason(x: torch.Tensor, module: nn.Conv2d) -> Optional[str]:
    """Say why ``module(x)`` will not use the Triton kernels (it cannot, or cuDNN is as fast), or None if it will.

    Args:
        x (torch.Tensor): The input that would be passed to ``module``.
        module (nn.Conv2d): A ``DepthwiseConv2d`` (or an equivalent depthwise ``nn.Conv2d``).

    Returns:
        (str | None): A short human-readable reason for using ``nn.Conv2d.forward`` instead, or None for the fast path.
    """
    setting = os.environ.get(ENV_FAST_DWCONV, "").strip().lower()
    if setting == "0":
        return f"disabled by {ENV_FAST_DWCONV}=0"
    if torch.onnx.is_in_onnx_export():  # before tracing: the TorchScript-based exporter traces
        return "ONNX export (the graph must hold a standard Conv)"
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return "TorchScript scripting or tracing (the graph must hold a standard convolution)"
    if torch.compiler.is_exporting():  # torch.export (ExecuTorch, dynamo ONNX); torch.compile keeps the Triton path
        return "torch.export (the exported program must hold a standard convolution)"
    k = module.kernel_size
    if k[0] != k[1] or k[0] not in SUPPORTED_KERNELS:
        return f"kernel {tuple(k)} is not square with an odd size in {SUPPORTED_KERNELS}"
    c = module.in_channels
    if not (
        module.out_channels == c == module.groups
        and tuple(module.stride) == (1, 1)
        and tuple(module.dilation) == (1, 1)
        and tuple(module.padding) == (k[0] // 2, k[0] // 2)
        and module.padding_mode == "zeros"
    ):
        return "not a stride-1, 'same'-padded depthwise convolution"
    if x.dim() != 4 or x.shape[1] != c:
        return f"input shape {tuple(x.shape)} is not (N, {c}, H, W)"  # incl. unbatched 3-D input
    if not (x.is_cuda or _interpreting()):  # Triton's interpreter runs the kernels on CPU tensors (for the tests)
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
    if c * h * w > _INT32_MAX or n * h * w > _INT32_MAX:
        return "input too large for the kernels' 32-bit indexing"
    fewest_pixels_per_program = min(*(block for _, block in _FWD_NCHW_CONFIGS), _wgrad_nchw_block(k[0], _INT32_MAX))
    if h * w > _GRID_AXIS_MAX * fewest_pixels_per_program:
        return f"a {h} x {w} plane has more pixel tiles than a CUDA grid axis holds"
    if not _triton_available():
        return "triton is not importable"
    if triton_failure() is not None:
        return f"the Triton kernels failed earlier in this process ({triton_failure()})"
    if k[0] in CUDNN_FAST_KERNELS and setting != "all":  # could run, but cuDNN is as fast (CUDNN_FAST_KERNELS)
        return f"kernel {k[0]} is fast in cuDNN ({ENV_FAST_DWCONV}=all uses the Triton kernels for it)"
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Triton kernels, defined on first use so that importing this module never imports Triton.
# ----------------------------------------------------------------------------------------------------------------------


def _kernels() -> Dict[str, Any]:
    """Import Triton and define the kernels (once); return ``_triton_state``."""
    if "fwd_nchw" in _triton_state:
        return _triton_state
    global triton, tl  # module globals, because @triton.jit resolves names through the function's __globals__
    import triton
    import triton.language as tl

    @triton.jit(do_not_specialize=["H", "W", "HW_BUCKET"])  # one compile for all sizes (no effect on alignment)
    def fwd_nchw(
        x_ptr, w_ptr, b_ptr, y_ptr, C, H, W, HW_BUCKET, K: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr
    ):
        # One program: BLOCK consecutive pixels of one (n, c) plane. w_ptr: fp32 [C, K*K]; HW_BUCKET: autotune key.
        PAD: tl.constexpr = K // 2
        plane = tl.program_id(0)
        c = plane % C
        base = plane.to(tl.int64) * H * W
        p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = p < H * W
        h = p // W
        w = p % W
        x_row = x_ptr + base + p - PAD * W  # pointers of the first kernel row's centre taps
        w_row = w_ptr + c * (K * K)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for i in range(K):  # a runtime loop (see the module docstring); columns unrolled
            hh = h + (i - PAD)
            row_ok = inside & (hh >= 0) & (hh < H)
            for j in tl.static_range(K):
                ww = w + (j - PAD)
                xv = tl.load(x_row + (j - PAD), mask=row_ok & (ww >= 0) & (ww < W), other=0.0)
                acc += xv.to(tl.float32) * tl.load(w_row + j)
            x_row += W
            w_row += K
        if HAS_BIAS:
            acc += tl.load(b_ptr + c)
        tl.store(y_ptr + base + p, acc.to(y_ptr.dtype.element_ty), mask=inside)

    @triton.jit(do_not_specialize=["H", "W", "HW_BUCKET"])
    def fwd_nhwc(
        x_ptr,
        w_ptr,
        b_ptr,
        y_ptr,
        C,
        H,
        W,
        HW_BUCKET,
        K: tl.constexpr,
        HAS_BIAS: tl.constexpr,
        TH: tl.constexpr,
        TW: tl.constexpr,
        BLOCK_C: tl.constexpr,
        UNROLL: tl.constexpr,
    ):
        # One program: a TH x TW pixel tile of one image times BLOCK_C channels. w_ptr: fp32 [K*K, C].
        PAD: tl.constexpr = K // 2
        tiles_w = tl.cdiv(W, TW)
        tiles = tl.cdiv(H, TH) * tiles_w
        pid = tl.program_id(0)
        n = pid // tiles
        t = pid % tiles
        idx = tl.arange(0, TH * TW)
        h = (t // tiles_w) * TH + idx // TW
        w = (t % tiles_w) * TW + idx % TW
        cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_ok = cs < C
        base = n.to(tl.int64) * H * W * C
        pix = (h * W + w) * C
        x_row = x_ptr + base + (pix - PAD * W * C)[:, None] + cs[None, :]  # first kernel row, centre taps
        w_row = w_ptr + cs
        acc = tl.zeros([TH * TW, BLOCK_C], dtype=tl.float32)
        for i in range(K):  # a runtime loop, see fwd_nchw
            hh = h + (i - PAD)
            row_ok = (hh >= 0) & (hh < H)
            # Partly unrolled: all K loads in flight need too many registers when C % 16 != 0 (unvectorised loads).
            for j in tl.range(0, K, loop_unroll_factor=UNROLL):
                ww = w + (j - PAD)
                ok = (row_ok & (ww >= 0) & (ww < W))[:, None] & c_ok[None, :]
                xv = tl.load(x_row + (j - PAD) * C, mask=ok, other=0.0)
                wv = tl.load(w_row + j * C, mask=c_ok, other=0.0)
                acc += xv.to(tl.float32) * wv[None, :]
            x_row += W * C
            w_row += K * C
        if HAS_BIAS:
            acc += tl.load(b_ptr + cs, mask=c_ok, other=0.0)[None, :]
        out_ok = ((h < H) & (w < W))[:, None] & c_ok[None, :]
        tl.store(y_ptr + base + pix[:, None] + cs[None, :], acc.to(y_ptr.dtype.element_ty), mask=out_ok)

    @triton.jit(do_not_specialize=["N", "H", "W"])
    def wgrad_nchw(
        x_ptr,
        g_ptr,
        pw_ptr,
        pb_ptr,
        N,
        C,
        H,
        W,
        K: tl.constexpr,
        KK_PAD: tl.constexpr,
        BLOCK: tl.constexpr,
        HAS_BIAS: tl.constexpr,
    ):
        # One program: channel c, pixels [tile * BLOCK, +BLOCK) of every image. acc[t, p] sums, over the batch,
        # grad_y[n, c, p] * x[n, c, p + offset of tap t]. Writes pw[c, tile, :K*K] and pb[c, tile].
        PAD: tl.constexpr = K // 2
        c = tl.program_id(0)
        tile = tl.program_id(1)
        p = tile * BLOCK + tl.arange(0, BLOCK)
        inside = p < H * W
        h = p // W
        w = p % W
        t = tl.arange(0, KK_PAD)
        di = t // K - PAD
        dj = t % K - PAD
        hh = h[None, :] + di[:, None]
        ww = w[None, :] + dj[:, None]
        ok = (t < K * K)[:, None] & inside[None, :] & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        offs = p[None, :] + (di * W + dj)[:, None]
        acc = tl.zeros([KK_PAD, BLOCK], dtype=tl.float32)
        acc_b = tl.zeros([BLOCK], dtype=tl.float32)
        for n in range(N):
            base = (n * C + c).to(tl.int64) * H * W
            g = tl.load(g_ptr + base + p, mask=inside, other=0.0).to(tl.float32)
            xv = tl.load(x_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
            acc += xv * g[None, :]
            acc_b += g
        out = (c * tl.num_programs(1) + tile).to(tl.int64)
        tl.store(pw_ptr + out * (K * K) + t, tl.sum(acc, axis=1), mask=t < K * K)
        if HAS_BIAS:
            tl.store(pb_ptr + out, tl.sum(acc_b, axis=0))

    @triton.jit(do_not_specialize=["H", "W", "NHW", "PIX_PER_PROG", "NHW_BUCKET"])
    def wgrad_nhwc(
        x_ptr,
        g_ptr,
        pw_ptr,
        pb_ptr,
        C,
        H,
        W,
        NHW,
        PIX_PER_PROG,
        NHW_BUCKET,
        K: tl.constexpr,
        KK_PAD: tl.constexpr,
        HAS_BIAS: tl.constexpr,
        BLOCK_C: tl.constexpr,
        UNROLL: tl.constexpr,
    ):
        # One program: BLOCK_C channels, flattened (n, h, w) pixels [chunk * PIX_PER_PROG, +PIX_PER_PROG). acc[t, c]
        # sums grad_y[q, c] * x[q + offset of tap t, c] over its pixels q. Writes pw[chunk, :K*K, C], pb[chunk, C].
        # Each accumulator is owned by one thread and updated in pixel order, so BLOCK_C, UNROLL and num_warps (all
        # autotuned) cannot change the bits of the result; PIX_PER_PROG (which does) is a function of the shape.
        PAD: tl.constexpr = K // 2
        cs = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_ok = cs < C
        chunk = tl.program_id(1)
        t = tl.arange(0, KK_PAD)
        t_ok = t < K * K
        di = t // K - PAD
        dj = t % K - PAD
        tap_offs = (di * W + dj) * C
        acc = tl.zeros([KK_PAD, BLOCK_C], dtype=tl.float32)
        acc_b = tl.zeros([BLOCK_C], dtype=tl.float32)
        q0 = chunk * PIX_PER_PROG
        for step in tl.range(0, tl.minimum(PIX_PER_PROG, NHW - q0), loop_unroll_factor=UNROLL):
            q = q0 + step  # not the loop variable itself: that is a Python int under the interpreter
            r = q % (H * W)
            h = r // W
            w = r % W
            ok = t_ok & (h + di >= 0) & (h + di < H) & (w + dj >= 0) & (w + dj < W)
            base = q.to(tl.int64) * C
            g = tl.load(g_ptr + base + cs, mask=c_ok, other=0.0).to(tl.float32)
            xv = tl.load(x_ptr + base + tap_offs[:, None] + cs[None, :], mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc += xv.to(tl.float32) * g[None, :]
            acc_b += g
        out = chunk.to(tl.int64) * C
        tl.store(pw_ptr + out * (K * K) + t[:, None] * C + cs[None, :], acc, mask=t_ok[:, None] & c_ok[None, :])
        if HAS_BIAS:
            tl.store(pb_ptr + out + cs, acc_b, mask=c_ok)

    def prune_nhwc(configs, named_args, **kwargs):
        # Channel blocks wider than the (power-of-two rounded) channel count only add masked-off lanes.
        widest = max(16, triton.next_power_of_2(named_args["C"]))
        return [cfg for cfg in configs if cfg.kwargs["BLOCK_C"] <= widest] or configs[:1]

    def cfg(num_warps: int, **meta: int) -> "triton.Config":
        return triton.Config(meta, num_warps=num_warps)

    configs = {  # modest: each new (K, C, HW bucket, dtype) costs one short benchmark of every config
        "fwd_nchw": [cfg(num_warps, BLOCK=block) for num_warps, block in _FWD_NCHW_CONFIGS],
        "fwd_nhwc": [
            cfg(4, TH=8, TW=8, BLOCK_C=32, UNROLL=3),
            cfg(4, TH=4, TW=16, BLOCK_C=32, UNROLL=3),
            cfg(8, TH=8, TW=8, BLOCK_C=32, UNROLL=3),
            cfg(8, TH=8, TW=16, BLOCK_C=32, UNROLL=3),
            cfg(4, TH=4, TW=8, BLOCK_C=64, UNROLL=3),
            cfg(8, TH=8, TW=8, BLOCK_C=64, UNROLL=3),
            cfg(4, TH=8, TW=8, BLOCK_C=32, UNROLL=1),
            cfg(4, TH=8, TW=16, BLOCK_C=16, UNROLL=3),  # the only one kept for C <= 16
        ],
    }
    configs["wgrad_nhwc"] = [
        cfg(4, BLOCK_C=32, UNROLL=1),
        cfg(4, BLOCK_C=32, UNROLL=2),
        cfg(8, BLOCK_C=32, UNROLL=2),
        cfg(8, BLOCK_C=64, UNROLL=1),
        cfg(2, BLOCK_C=16, UNROLL=2),
    ]
    key = ["K", "C", "HW_BUCKET"]  # Triton appends the dtypes of tensor arguments
    prune = {"early_config_prune": prune_nhwc}
    _triton_state.update(
        configs=configs,
        raw={"fwd_nchw": fwd_nchw, "fwd_nhwc": fwd_nhwc, "wgrad_nhwc": wgrad_nhwc},
        fwd_nchw=triton.autotune(configs["fwd_nchw"], key=key)(fwd_nchw),
        fwd_nhwc=triton.autotune(configs["fwd_nhwc"], key=key, prune_configs_by=prune)(fwd_nhwc),
        wgrad_nchw=wgrad_nchw,  # not autotuned: its tiling sets the summation order
        wgrad_nhwc=triton.autotune(configs["wgrad_nhwc"], key=["K", "C", "NHW_BUCKET"], prune_configs_by=prune)(
            wgrad_nhwc
        ),
    )
    return _triton_state


def _interpreting() -> bool:
    """Return True under Triton's CPU interpreter, which can run kernels but not autotune them."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _wgrad_nchw_block(k: int, plane: int) -> int:
    """Pixels per program of the NCHW weight-gradient kernel: ~8K fp32 accumulators (32 registers per thread)."""
    return max(16, min(8192 // _next_pow2(k * k), _next_pow2(plane)))


def _next_pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


def _launch(name: str, grid, args: tuple, meta: Dict[str, Any]) -> None:
    """Launch kernel ``name``: autotuned, or with ``FORCED_CONFIGS[name]`` (under the interpreter: its first config)."""
    ks = _kernels()
    forced = FORCED_CONFIGS.get(name)
    if forced is None and _interpreting():
        first = ks["configs"][name][0]
        forced = {**first.kwargs, "num_warps": first.num_warps}
    if forced is None:
        ks[name][grid](*args, **meta)
    else:
        ks["raw"][name][grid](*args, **meta, **forced)


def _conv_same(x: torch.Tensor, w_flat: torch.Tensor, bias: Optional[torch.Tensor], k: int, nhwc: bool) -> torch.Tensor:
    """Launch the forward kernel: "same" depthwise correlation of ``x`` (contiguous in its layout) with fp32 taps.

    ``w_flat`` is fp32 ``[C, k*k]`` for NCHW and ``[k*k, C]`` for NHWC; ``bias`` is fp32 ``[C]`` or None.
    """
    n, c, h, w = x.shape
    y = torch.empty_like(x)  # keeps the memory format of x
    name = "fwd_nhwc" if nhwc else "fwd_nchw"
    args = (x, w_flat, bias if bias is not None else w_flat, y, c, h, w, _next_pow2(h * w))
    meta = {"K": k, "HAS_BIAS": bias is not None}
    if nhwc:

        def grid(m):
            return (n * triton.cdiv(h, m["TH"]) * triton.cdiv(w, m["TW"]), triton.cdiv(c, m["BLOCK_C"]))

    else:

        def grid(m):
            return (n * c, triton.cdiv(h * w, m["BLOCK"]))

    _launch(name, grid, args, meta)
    return y


def _weight_grad(
    x: torch.Tensor, grad_y: torch.Tensor, k: int, nhwc: bool, with_bias: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Return fp32 ``(grad_weight [C, 1, k, k], grad_bias [C] or None)``, deterministically (see module docstring)."""
    ks = _kernels()
    n, c, h, w = x.shape
    kk = k * k
    kk_pad = _next_pow2(kk)
    if nhwc:
        # The pixel split (and so the summation order) depends on the shape only: ~_WGRAD_PROGRAMS programs when
        # channels come in blocks of 32; the channel block itself is autotuned.
        pix = n * h * w
        per_prog = triton.cdiv(pix, max(1, min(pix, triton.cdiv(_WGRAD_PROGRAMS, triton.cdiv(c, 32)))))
        chunks = triton.cdiv(pix, per_prog)
        pw = torch.empty((chunks, kk, c), device=x.device, dtype=torch.float32)
        pb = torch.empty((chunks, c), device=x.device, dtype=torch.float32) if with_bias else pw

        def grid(m):
            return (triton.cdiv(c, m["BLOCK_C"]), chunks)

        args = (x, grad_y, pw, pb, c, h, w, pix, per_prog, _next_pow2(pix))
        _launch("wgrad_nhwc", grid, args, {"K": k, "KK_PAD": kk_pad, "HAS_BIAS": with_bias})
        gw = pw.sum(0).t()
        gb = pb.sum(0) if with_bias else None
    else:
        block = _wgrad_nchw_block(k, h * w)
        tiles = triton.cdiv(h * w, block)
        pw = torch.empty((c, tiles, kk), device=x.device, dtype=torch.float32)
        pb = torch.empty((c, tiles), device=x.device, dtype=torch.float32) if with_bias else pw
        ks["wgrad_nchw"][(c, tiles)](
            x, grad_y, pw, pb, n, c, h, w, K=k, KK_PAD=kk_pad, BLOCK=block, HAS_BIAS=with_bias, num_warps=8
        )
        gw = pw.sum(1)
        gb = pb.sum(1) if with_bias else None
    return gw.reshape(c, 1, k, k), gb


def _layout(nhwc: bool) -> torch.memory_format:
    return torch.channels_last if nhwc else torch.contiguous_format


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Return the convolution of ``x`` (NCHW or channels_last) by the Triton kernels, in the memory format of ``x``."""
    nhwc = _is_channels_last(x)
    x = x.contiguous(memory_format=_layout(nhwc))
    b = bias.detach().float().contiguous() if bias is not None else None
    y = _unless_triton_fails(lambda: _conv_same(x, _taps(weight, nhwc), b, weight.shape[-1], nhwc), x)
    return y if y is not None else reference_conv(x, weight, bias).contiguous(memory_format=_layout(nhwc))


def _backward(
    grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool, need: Tuple[bool, bool, bool]
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Return the gradients of ``_forward`` that ``need`` asks for (input, weight, bias; None for the others)."""
    nhwc = _is_channels_last(x)
    x = x.contiguous(memory_format=_layout(nhwc))  # a no-op for the x that _forward saw
    grad_y = grad_y.contiguous(memory_format=_layout(nhwc))
    need = _wanted_grads(has_bias, need)
    grads = _unless_triton_fails(lambda: _triton_grads(x, weight, grad_y, nhwc, need), x)
    if grads is not None:
        return grads
    c, pad = weight.shape[0], weight.shape[-1] // 2
    gx, gw, gb = torch.ops.aten.convolution_backward(
        grad_y, x, weight, [c] if has_bias else None, [1, 1], [pad, pad], [1, 1], False, [0, 0], c, list(need)
    )
    return gx, gw, gb


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


def _wanted_grads(has_bias: bool, need: Sequence[bool]) -> Tuple[bool, bool, bool]:
    """Which of the input, weight and bias gradients to compute, the same for the operator and its fake."""
    return bool(need[0]), bool(need[1]), has_bias and bool(need[2])


def _grad_layouts(x: torch.Tensor) -> Tuple[torch.memory_format, ...]:
    """Memory formats of the input, weight and bias gradients, the same for the operator and its fake."""
    return _layout(_is_channels_last(x)), torch.contiguous_format, torch.contiguous_format


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


def _apply(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Run the Triton path: as the custom operator under torch.compile, as the autograd.Function otherwise."""
    if torch.compiler.is_compiling():
        return _depthwise_conv2d_op(x, weight, bias)
    return _DepthwiseConv2dFunction.apply(x, weight, bias)


def _triton_grads(
    x: torch.Tensor, weight: torch.Tensor, grad_y: torch.Tensor, nhwc: bool, need: Tuple[bool, bool, bool]
) -> Tuple[Any, Any, Any]:
    """Input, weight and bias gradients (None where not ``need``-ed) from the Triton kernels."""
    k = weight.shape[-1]
    gx = gw = gb = None
    if need[0]:
        # Input gradient of a "same" correlation = the same correlation with the flipped filter.
        gx = _conv_same(grad_y, _taps(weight, nhwc, flip=True), None, k, nhwc)
    if need[1] or need[2]:
        gw, gb = _weight_grad(x, grad_y, k, nhwc, need[2])
        gw = gw.to(weight.dtype) if need[1] else None
        gb = gb.to(weight.dtype) if gb is not None else None
    return gx, gw, gb


def _unless_triton_fails(launch: Callable[[], Any], x: torch.Tensor) -> Any:
    """Return ``launch()`` on ``x``'s device, or None if the Triton kernels failed now or earlier in this process."""
    if triton_failure() is not None:
        return None
    try:
        with _device_guard(x):
            return launch()
    except torch.OutOfMemoryError:  # not a failure of the kernels
        raise
    except Exception as error:
        _give_up_triton(error)
        return None


def _device_guard(x: torch.Tensor):
    """Make ``x``'s GPU current, as Triton launches on the current device and stream."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _taps(weight: torch.Tensor, nhwc: bool, flip: bool = False) -> torch.Tensor:
    """Return filters ``(C, 1, k, k)`` as the kernels read them: fp32 ``[C, k*k]`` (NCHW) or ``[k*k, C]`` (NHWC)."""
    c, k = weight.shape[0], weight.shape[-1]
    w = weight.detach()
    w = (w.flip((2, 3)) if flip else w).reshape(c, k * k).float()
    return (w.t() if nhwc else w).contiguous()


def depthwise_conv2d_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Depthwise "same" convolution (stride 1, padding ``k // 2``) with the Triton kernels, differentiable.

    Computes ``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` without any of the dispatcher's checks: it is the
    entry point for tests and benchmarks, including on CPU tensors under ``TRITON_INTERPRET=1``.

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


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise k x k convolution with stride 1 and "same" padding.

    On CUDA it runs the Triton kernels of this module when ``fast_path_reason`` allows: by default for k >= 9, where
    cuDNN is slow (``ULTRALYTICS_CONVMIXER_FAST_DWCONV=all`` for every k, ``=0`` never); everywhere else it is
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


def reference_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d`` with the same arguments as ``depthwise_conv2d_triton`` (the function the kernels must match)."""
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=weight.shape[0])


__all__: List[str] = [
    "DepthwiseConv2d",
    "depthwise_conv2d_triton",
    "fast_path_reason",
    "reference_conv",
    "triton_failure",
]

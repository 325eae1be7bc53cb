"""Triton kernels of ``DepthwiseConv2d`` and their launch helpers: "same" depthwise correlation, forward and backward.

This module imports Triton, so ``dwconv`` imports it only when a call takes the fast path (``import
ultralytics_convmixer`` and CPU use never do). Its entry points launch kernels on the current device and stream with
no checks and no fallback; ``dwconv`` adds both.

Public API:

* ``forward``, ``input_grad``, ``weight_grad``: the three computations of a forward plus backward pass.
* ``KERNELS`` (name -> kernel as launched: autotuned where that cannot change results), ``RAW_KERNELS`` (the
  autotuned ones without their autotuner), ``CONFIGS`` (the configs autotuning tries), and ``FORCED_CONFIGS``,
  ``config_meta``, ``WGRAD_PROGRAMS`` and ``AUTOTUNE_IN_INTERPRETER`` to steer them.

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

from typing import Any, Dict, List, Optional, Tuple

import torch
import triton
import triton.language as tl

from .dwconv_tiling import FWD_NCHW_CONFIGS, interpreting, next_pow2, wgrad_nchw_block

WGRAD_PROGRAMS = 1024
"""Target number of programs of the NHWC weight-gradient kernel (a few waves on any GPU); it sets the pixel split."""

FORCED_CONFIGS: Dict[str, Dict[str, int]] = {}
"""Kernel name (``fwd_nchw``, ``fwd_nhwc``, ``wgrad_nhwc``) -> meta-parameters to use instead of autotuning."""

AUTOTUNE_IN_INTERPRETER = False
"""Autotune under Triton's interpreter too. It cannot time kernels, so by default each kernel runs its first config
there; set this only with the autotuners' benchmark stubbed."""


# ----------------------------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------------------------


def forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], nhwc: bool) -> torch.Tensor:
    """Return the "same" depthwise correlation of ``x`` with ``weight`` plus ``bias``.

    Args:
        x (torch.Tensor): Input ``(N, C, H, W)``, contiguous in its layout (channels_last if ``nhwc``).
        weight (torch.Tensor): Filters ``(C, 1, k, k)``.
        bias (torch.Tensor | None): ``(C,)`` bias or None.
        nhwc (bool): Whether ``x`` is channels_last.

    Returns:
        (torch.Tensor): Output with the shape, dtype and memory format of ``x``.
    """
    b = bias.detach().float().contiguous() if bias is not None else None
    return _conv_same(x, taps(weight, nhwc), b, weight.shape[-1], nhwc)


def input_grad(grad_y: torch.Tensor, weight: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """Return the input gradient of ``forward``: the same correlation of ``grad_y`` with the flipped filters.

    Args:
        grad_y (torch.Tensor): Gradient of the output, contiguous in its layout (channels_last if ``nhwc``).
        weight (torch.Tensor): Filters ``(C, 1, k, k)`` of the forward pass.
        nhwc (bool): Whether ``grad_y`` is channels_last.

    Returns:
        (torch.Tensor): Gradient of the input, with the shape, dtype and memory format of ``grad_y``.
    """
    return _conv_same(grad_y, taps(weight, nhwc, flip=True), None, weight.shape[-1], nhwc)


def weight_grad(
    x: torch.Tensor, grad_y: torch.Tensor, k: int, nhwc: bool, with_bias: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Return the weight and bias gradients of ``forward``, deterministically (see the module docstring).

    Args:
        x (torch.Tensor): Input of the forward pass, contiguous in its layout.
        grad_y (torch.Tensor): Gradient of the output, in the layout of ``x``.
        k (int): Kernel size.
        nhwc (bool): Whether both are channels_last.
        with_bias (bool): Whether to compute the bias gradient too.

    Returns:
        (tuple[torch.Tensor, torch.Tensor | None]): fp32 ``grad_weight`` ``(C, 1, k, k)`` and ``grad_bias`` ``(C,)``
            (None unless ``with_bias``).
    """
    c = x.shape[1]
    gw, gb = (_wgrad_nhwc_partials if nhwc else _wgrad_nchw_partials)(x, grad_y, k, with_bias)
    return gw.reshape(c, 1, k, k), gb


def taps(weight: torch.Tensor, nhwc: bool, flip: bool = False) -> torch.Tensor:
    """Return filters ``(C, 1, k, k)`` as the kernels read them: fp32 ``[C, k*k]`` (NCHW) or ``[k*k, C]`` (NHWC).

    Args:
        weight (torch.Tensor): Filters ``(C, 1, k, k)``.
        nhwc (bool): Whether the kernel that reads them is the channels_last one.
        flip (bool): Flip the filters spatially (for the input gradient).
    """
    c, k = weight.shape[0], weight.shape[-1]
    w = weight.detach()
    w = (w.flip((2, 3)) if flip else w).reshape(c, k * k).float()
    return (w.t() if nhwc else w).contiguous()


def config_meta(config: "triton.Config") -> Dict[str, int]:
    """Return the meta-parameters and ``num_warps`` of an autotuning config, as ``FORCED_CONFIGS`` takes them.

    Args:
        config (triton.Config): A config of ``CONFIGS``.

    Returns:
        (Dict[str, int]): Its keyword arguments (``BLOCK``, ``TH``, ...) and ``num_warps``.
    """
    return {**config.kwargs, "num_warps": config.num_warps}


# ----------------------------------------------------------------------------------------------------------------------
# Launch helpers
# ----------------------------------------------------------------------------------------------------------------------


def _launch(name: str, grid, args: tuple, meta: Dict[str, Any]) -> None:
    """Launch kernel ``name``: autotuned, or with ``FORCED_CONFIGS[name]`` (under the interpreter: its first config)."""
    forced = FORCED_CONFIGS.get(name)
    if forced is None and interpreting() and not AUTOTUNE_IN_INTERPRETER:
        forced = config_meta(CONFIGS[name][0])
    if forced is None:
        KERNELS[name][grid](*args, **meta)
    else:
        RAW_KERNELS[name][grid](*args, **meta, **forced)


def _conv_same(x: torch.Tensor, w_flat: torch.Tensor, bias: Optional[torch.Tensor], k: int, nhwc: bool) -> torch.Tensor:
    """Launch the forward kernel on ``x`` (contiguous in its layout) with fp32 ``w_flat`` (``taps``) and ``bias``."""
    n, c, h, w = x.shape
    y = torch.empty_like(x)  # keeps the memory format of x
    args = (x, w_flat, bias if bias is not None else w_flat, y, c, h, w, next_pow2(h * w))
    meta = {"K": k, "HAS_BIAS": bias is not None}
    if nhwc:

        def grid(m):
            return (n * triton.cdiv(h, m["TH"]) * triton.cdiv(w, m["TW"]), triton.cdiv(c, m["BLOCK_C"]))

    else:

        def grid(m):
            return (n * c, triton.cdiv(h * w, m["BLOCK"]))

    _launch("fwd_nhwc" if nhwc else "fwd_nchw", grid, args, meta)
    return y


def _wgrad_nhwc_partials(
    x: torch.Tensor, grad_y: torch.Tensor, k: int, with_bias: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Weight gradient ``[C, k*k]`` and bias gradient of channels_last tensors, summed from per-program partials."""
    n, c, h, w = x.shape
    kk = k * k
    # The pixel split (and so the summation order) depends on the shape only: ~WGRAD_PROGRAMS programs when channels
    # come in blocks of 32; the channel block itself is autotuned.
    pix = n * h * w
    per_prog = triton.cdiv(pix, max(1, min(pix, triton.cdiv(WGRAD_PROGRAMS, triton.cdiv(c, 32)))))
    chunks = triton.cdiv(pix, per_prog)
    pw = torch.empty((chunks, kk, c), device=x.device, dtype=torch.float32)
    pb = torch.empty((chunks, c), device=x.device, dtype=torch.float32) if with_bias else pw

    def grid(m):
        return (triton.cdiv(c, m["BLOCK_C"]), chunks)

    args = (x, grad_y, pw, pb, c, h, w, pix, per_prog, next_pow2(pix))
    _launch("wgrad_nhwc", grid, args, {"K": k, "KK_PAD": next_pow2(kk), "HAS_BIAS": with_bias})
    return pw.sum(0).t(), pb.sum(0) if with_bias else None


def _wgrad_nchw_partials(
    x: torch.Tensor, grad_y: torch.Tensor, k: int, with_bias: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Weight gradient ``[C, k*k]`` and bias gradient of NCHW tensors, summed from per-program partials."""
    n, c, h, w = x.shape
    kk = k * k
    block = wgrad_nchw_block(k, h * w)
    tiles = triton.cdiv(h * w, block)
    pw = torch.empty((c, tiles, kk), device=x.device, dtype=torch.float32)
    pb = torch.empty((c, tiles), device=x.device, dtype=torch.float32) if with_bias else pw
    KERNELS["wgrad_nchw"][(c, tiles)](
        x,
        grad_y,
        pw,
        pb,
        n,
        c,
        h,
        w,
        K=k,
        KK_PAD=next_pow2(kk),
        BLOCK=block,
        HAS_BIAS=with_bias,
        num_warps=8,
    )
    return pw.sum(1), pb.sum(1) if with_bias else None


# ----------------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["H", "W", "HW_BUCKET"])  # one compile for all sizes (no effect on alignment)
def fwd_nchw(
    x_ptr, w_ptr, b_ptr, y_ptr, C, H, W, HW_BUCKET, K: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr
):
    """Forward, NCHW: one program computes BLOCK consecutive pixels of one (n, c) plane.

    ``w_ptr`` holds fp32 taps ``[C, K*K]``; ``HW_BUCKET`` is only an autotuning key.
    """
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
    """Forward, NHWC: one program computes a TH x TW pixel tile of one image times BLOCK_C channels.

    ``w_ptr`` holds fp32 taps ``[K*K, C]``.
    """
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
    """Weight gradient, NCHW: one program sums channel c's pixels [tile * BLOCK, +BLOCK) over every image.

    ``acc[t, p]`` sums, over the batch, ``grad_y[n, c, p] * x[n, c, p + offset of tap t]``. Writes ``pw[c, tile,
    :K*K]`` and ``pb[c, tile]``.
    """
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
    """Weight gradient, NHWC: one program sums BLOCK_C channels over a run of consecutive pixels.

    The run is the flattened (n, h, w) pixels ``[chunk * PIX_PER_PROG, +PIX_PER_PROG)``: ``acc[t, c]`` sums
    ``grad_y[q, c] * x[q + offset of tap t, c]`` over its pixels q. Writes ``pw[chunk, :K*K, C]`` and ``pb[chunk, C]``.
    Each accumulator is owned by one thread and updated in pixel order, so BLOCK_C, UNROLL and num_warps (all
    autotuned) cannot change the bits of the result; PIX_PER_PROG (which does) is a function of the shape.
    """
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


# ----------------------------------------------------------------------------------------------------------------------
# Kernel table
# ----------------------------------------------------------------------------------------------------------------------


def _config(num_warps: int, **meta: int) -> "triton.Config":
    return triton.Config(meta, num_warps=num_warps)


CONFIGS: Dict[str, List["triton.Config"]] = {
    "fwd_nchw": [_config(num_warps, BLOCK=block) for num_warps, block in FWD_NCHW_CONFIGS],
    "fwd_nhwc": [
        _config(4, TH=8, TW=8, BLOCK_C=32, UNROLL=3),
        _config(4, TH=4, TW=16, BLOCK_C=32, UNROLL=3),
        _config(8, TH=8, TW=8, BLOCK_C=32, UNROLL=3),
        _config(8, TH=8, TW=16, BLOCK_C=32, UNROLL=3),
        _config(4, TH=4, TW=8, BLOCK_C=64, UNROLL=3),
        _config(8, TH=8, TW=8, BLOCK_C=64, UNROLL=3),
        _config(4, TH=8, TW=8, BLOCK_C=32, UNROLL=1),
        _config(4, TH=8, TW=16, BLOCK_C=16, UNROLL=3),  # the only one kept for C <= 16
    ],
    "wgrad_nhwc": [
        _config(4, BLOCK_C=32, UNROLL=1),
        _config(4, BLOCK_C=32, UNROLL=2),
        _config(8, BLOCK_C=32, UNROLL=2),
        _config(8, BLOCK_C=64, UNROLL=1),
        _config(2, BLOCK_C=16, UNROLL=2),
    ],
}
"""Configs autotuning tries per kernel; modest, as each new (K, C, size bucket, dtype) benchmarks every one."""


def _prune_nhwc(configs, named_args, **kwargs):
    """Drop channel blocks wider than the (power-of-two rounded) channel count: they only add masked-off lanes."""
    widest = max(16, triton.next_power_of_2(named_args["C"]))
    return [cfg for cfg in configs if cfg.kwargs["BLOCK_C"] <= widest] or configs[:1]


_KEY = ["K", "C", "HW_BUCKET"]  # Triton appends the dtypes of tensor arguments
_PRUNE = {"early_config_prune": _prune_nhwc}

RAW_KERNELS: Dict[str, Any] = {"fwd_nchw": fwd_nchw, "fwd_nhwc": fwd_nhwc, "wgrad_nhwc": wgrad_nhwc}
"""The autotuned kernels without their autotuner, for launches with ``FORCED_CONFIGS`` and for compiling them alone."""

KERNELS: Dict[str, Any] = {
    "fwd_nchw": triton.autotune(CONFIGS["fwd_nchw"], key=_KEY)(fwd_nchw),
    "fwd_nhwc": triton.autotune(CONFIGS["fwd_nhwc"], key=_KEY, prune_configs_by=_PRUNE)(fwd_nhwc),
    "wgrad_nchw": wgrad_nchw,  # not autotuned: its tiling sets the summation order
    "wgrad_nhwc": triton.autotune(CONFIGS["wgrad_nhwc"], key=["K", "C", "NHW_BUCKET"], prune_configs_by=_PRUNE)(
        wgrad_nhwc
    ),
}
"""Kernel name -> the kernel as launched (autotuned ones have ``best_config`` once they ran)."""

__all__ = [
    "AUTOTUNE_IN_INTERPRETER",
    "CONFIGS",
    "FORCED_CONFIGS",
    "KERNELS",
    "RAW_KERNELS",
    "WGRAD_PROGRAMS",
    "config_meta",
    "forward",
    "input_grad",
    "taps",
    "weight_grad",
]

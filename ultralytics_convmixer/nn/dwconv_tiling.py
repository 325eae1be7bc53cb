"""How the Triton depthwise kernels tile their work, without Triton or torch.

``dwconv`` reads it to refuse planes the kernels cannot take (before importing Triton), ``dwconv_triton`` launches by
it, and ``benchmarks/kernels.py`` reports it.
"""

import os

INT32_MAX = 2**31 - 1  # the kernels index with 32-bit integers
GRID_AXIS_MAX = 65535  # CUDA's limit of grid axes 1 and 2; the NCHW kernels put a plane's pixel tiles on axis 1
FWD_NCHW_CONFIGS = ((4, 512), (4, 256), (4, 1024), (8, 1024), (8, 2048))
"""``(num_warps, BLOCK)`` of the NCHW forward kernel that autotuning tries; ``BLOCK`` pixels per program."""


def interpreting() -> bool:
    """Return whether Triton's CPU interpreter is on (``TRITON_INTERPRET``): it runs kernels but cannot autotune them.

    Returns:
        (bool): True when ``TRITON_INTERPRET`` is set to anything but ``0`` or empty.
    """
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def wgrad_nchw_block(k: int, plane: int) -> int:
    """Return the pixels per program of the NCHW weight-gradient kernel: ~8K fp32 accumulators (32 registers a thread).

    Args:
        k (int): Kernel size.
        plane (int): Pixels of one channel plane, ``H * W``.

    Returns:
        (int): A power of two, at least 16, at most the plane rounded up to a power of two.
    """
    return max(16, min(8192 // next_pow2(k * k), next_pow2(plane)))


def next_pow2(v: int) -> int:
    """Return the smallest power of two >= ``v`` (1 for ``v <= 1``), as Triton's block sizes must be.

    Args:
        v (int): The value.

    Returns:
        (int): The power of two.
    """
    return 1 << max(0, (v - 1).bit_length())

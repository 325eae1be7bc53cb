"""Benchmark the Triton depthwise convolution against cuDNN, and check its values and gradients.

For each shape and kernel size it times, with CUDA events (median of ``--reps`` after ``--warmup`` calls):

* cuDNN: ``F.conv2d(x, w, b, padding=k // 2, groups=C)``, forward and forward + backward (input, weight and bias grads);
* ours: ``depthwise_conv2d_triton``, the same, plus its two backward kernels alone (input grad, weight + bias grads),
  at every kernel size: run as a script it sets ``ULTRALYTICS_CONVMIXER_FAST_DWCONV=all`` unless that is set, so the
  sizes ``DepthwiseConv2d`` leaves to cuDNN by default (``dwconv.CUDNN_FAST_KERNELS``) are timed too;

and reports the memory-traffic floor (forward: read x, write y; forward + backward: also read grad_y and x, write
grad_x, i.e. 2 and 5 tensor passes) at the bandwidth of a large device copy (or ``--bandwidth``), the ratio of our time
to the floor and to cuDNN with k = 7 (the largest kernel cuDNN runs fast: the alternative to a fast k = 9).

``--check`` compares values and all gradients with float64 ``F.conv2d`` for every supported kernel size, dtype and
layout, checks that the weight gradient is bit-identical across calls, that the dispatcher picks the fast path and, on
CUDA, that torch.compile with Inductor keeps it (the custom operator, not ``aten.convolution``) with eager numbers.

Examples::

    python benchmarks/kernels.py --check --out kernels.json            # CUDA: fp16 channels_last, every shape and k
    python benchmarks/kernels.py --layout contiguous --dtype bf16 --ks 7 9
    python benchmarks/kernels.py --device cpu --check                  # CI smoke test: small shapes, nn.Conv2d only
"""

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script

from common import markdown_table, write_json  # noqa: E402

from ultralytics_convmixer.nn import dwconv, dwconv_tiling  # noqa: E402
from ultralytics_convmixer.nn.dwconv import (  # noqa: E402
    DepthwiseConv2d,
    depthwise_conv2d_triton,
    fast_path_reason,
    take_triton_failure,
)
from ultralytics_convmixer.nn.dwconv_check import ERRORS, TOLERANCE, check_case, make_inputs, relative_error  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
GPU_SHAPES = [(32, 64, 160, 160), (32, 128, 80, 80), (32, 256, 40, 40), (32, 512, 20, 20)]
CPU_SHAPES = [(2, 16, 24, 24), (2, 32, 12, 12)]
CPU_KS = [7, 9]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="default fp16 on CUDA, fp32 on CPU")
    p.add_argument("--layout", default="channels_last", choices=["channels_last", "contiguous", "both"])
    p.add_argument("--ks", type=int, nargs="+", default=None, help="kernel sizes (default 3..13 CUDA, 7 9 CPU)")
    p.add_argument("--shapes", nargs="+", default=None, help="N,C,H,W ... (default: the four ConvMixer shapes)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 10 CUDA, 1 CPU)")
    p.add_argument("--reps", type=int, default=None, help="timed calls (default 50 CUDA, 3 CPU)")
    p.add_argument("--bandwidth", type=float, default=None, help="GB/s for the floor (default: measure a copy)")
    p.add_argument("--no-autotune", action="store_true", help="use the first config of each kernel (faster start)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="set torch.backends.cudnn.benchmark = True")
    p.add_argument("--check", action="store_true", help="also check values and gradients against float64")
    p.add_argument("--skip-bench", action="store_true", help="only run --check (or --compile-report)")
    p.add_argument(
        "--compile-report",
        action="store_true",
        help="compile every kernel config for sm_90a (no GPU needed) and report ptxas registers and spills",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> float:
    """Median time of ``fn`` in ms: CUDA events around each call on GPU, ``perf_counter`` on CPU."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure_bandwidth(device: torch.device) -> float:
    """Device-memory bandwidth in GB/s from a large copy (read + write), median of several."""
    n = (1 << 30) if device.type == "cuda" else (1 << 26)  # bytes per buffer: far larger than any cache
    src = torch.empty(n, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, warmup=3, reps=10 if device.type == "cuda" else 3)
    return 2 * n / (ms * 1e-3) / 1e9


def cudnn_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=weight.shape[0])


def fwd_bwd(conv, inputs, grad) -> Callable[[], None]:
    def run():
        for t in inputs:
            t.grad = None
        conv(*inputs).backward(grad)

    return run


def fwd_only(conv, inputs) -> Callable[[], None]:
    def run():
        with torch.no_grad():
            conv(*inputs)

    return run


def bench_row(shape, k, layout, args, device, bandwidth_gbps, cudnn_k7: Dict[tuple, float]) -> dict:
    """Time one (shape, k) for cuDNN (or nn.Conv2d on CPU) and ours; return one result row."""
    dtype, channels_last = DTYPES[args.dtype], layout == "channels_last"
    x, weight, bias, grad = make_inputs(shape, k, dtype, device, channels_last)
    inputs = [t.requires_grad_() for t in (x, weight, bias)]
    module = DepthwiseConv2d(shape[1], k).to(device=device, dtype=dtype)
    row = {"shape": list(shape), "k": k, "dtype": args.dtype, "layout": layout}
    row["fast_path_reason"] = fast_path_reason(inputs[0], module)
    ours = depthwise_conv2d_triton if row["fast_path_reason"] is None else cudnn_conv
    t = lambda fn: time_ms(fn, device, args.warmup, args.reps)  # noqa: E731
    row["cudnn_fwd_ms"] = t(fwd_only(cudnn_conv, inputs))
    row["cudnn_fwdbwd_ms"] = t(fwd_bwd(cudnn_conv, inputs, grad))
    t0 = time.perf_counter()
    fwd_bwd(ours, inputs, grad)()  # the first call compiles and autotunes
    sync(device)
    row["ours_first_call_s"] = time.perf_counter() - t0
    row["ours_fwd_ms"] = t(fwd_only(ours, inputs))
    row["ours_fwdbwd_ms"] = t(fwd_bwd(ours, inputs, grad))
    if ours is depthwise_conv2d_triton:  # the backward kernels alone, for tuning
        kernels = triton_kernels()
        x, weight, _ = (v.detach() for v in inputs)
        nhwc = channels_last
        row["ours_bwd_input_ms"] = t(lambda: kernels.input_grad(grad, weight, nhwc))
        row["ours_bwd_weight_ms"] = t(lambda: kernels.weight_grad(x, grad, k, nhwc, True))
        names = ("fwd_nhwc", "wgrad_nhwc") if nhwc else ("fwd_nchw",)
        row["ours_configs"] = {name: str(getattr(kernels.KERNELS[name], "best_config", None)) for name in names}
    size = shape[0] * shape[1] * shape[2] * shape[3] * torch.finfo(dtype).bits // 8
    row["floor_fwd_ms"] = 2 * size / (bandwidth_gbps * 1e9) * 1e3
    row["floor_fwdbwd_ms"] = 5 * size / (bandwidth_gbps * 1e9) * 1e3
    row["ours_over_floor"] = row["ours_fwdbwd_ms"] / row["floor_fwdbwd_ms"]
    row["cudnn_over_ours"] = row["cudnn_fwdbwd_ms"] / row["ours_fwdbwd_ms"]
    if k == 7:
        cudnn_k7[(layout, *shape)] = row["cudnn_fwdbwd_ms"]
    return row


def triton_kernels():
    """Return the ``dwconv_triton`` module (it imports Triton: only for the CUDA or interpreter paths)."""
    from ultralytics_convmixer import dwconv_triton

    return dwconv_triton


def checked(use_triton: bool, shape, k: int, dtype: torch.dtype, channels_last: bool, device: torch.device) -> dict:
    """``check_case`` (twice, for determinism) of the kernels or the module, failed if the Triton kernels failed in it.

    Each case takes its own failure (``take_triton_failure``), so that one exotic case does not leave every later one
    on the ``nn.Conv2d`` fallback.
    """
    conv = depthwise_conv2d_triton if use_triton else DepthwiseConv2d(shape[1], k).to(device=device, dtype=dtype)
    row = check_case(shape, k, dtype, channels_last, device, conv=conv, seed=k, repeat=True)
    failure = take_triton_failure()
    if failure is not None:
        row.update(ok=False, triton_failure=failure)
    return row


def check_all(device: torch.device, ks: Sequence[int]) -> dict:
    """Check values and gradients against float64 for every k, dtype and layout, every kernel config, and dispatch.

    Every (k, dtype, layout) runs with the first config of each kernel (autotuning them all would compile hundreds of
    variants); every config is then checked once, at k = 9 in fp16 with C a multiple of 16 (vectorised loads).
    """
    use_triton = device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
    shape = (2, 24, 23, 29) if device.type == "cuda" else (2, 5, 9, 7)  # odd sizes, C not a multiple of 16
    results = []
    kernels = triton_kernels() if use_triton else None
    forced = kernels.FORCED_CONFIGS if use_triton else {}
    all_configs = kernels.CONFIGS if use_triton else {}
    saved = dict(forced)
    try:
        for name, configs in all_configs.items():
            forced[name] = kernels.config_meta(configs[0])
        for k in ks:
            for dtype in DTYPES.values():
                for channels_last in (False, True):
                    results.append(checked(use_triton, shape, k, dtype, channels_last, device))
        if use_triton and 9 in ks:
            config_shape = (2, 32, 21, 27) if device.type == "cuda" else (1, 16, 7, 9)
            for name, configs in all_configs.items():
                for config in configs:
                    forced[name] = kernels.config_meta(config)
                    row = checked(use_triton, config_shape, 9, torch.float16, name != "fwd_nchw", device)
                    results.append({**row, "config": f"{name}: {config}"})
                forced[name] = kernels.config_meta(configs[0])
    finally:
        forced.clear()
        forced.update(saved)
    failures = [r for r in results if not r["ok"]]
    dispatch = {}
    if device.type == "cuda":  # the module must choose the fast path on CUDA, also under autocast
        module = DepthwiseConv2d(16, 9).to(device)
        x = torch.randn(2, 16, 20, 20, device=device)
        dispatch["cuda"] = fast_path_reason(x, module)
        with torch.autocast("cuda", dtype=torch.float16):
            dispatch["autocast_fp16"] = fast_path_reason(x, module)
            y = module(x)
        dispatch["autocast_output_dtype"] = str(y.dtype)
        if dispatch["cuda"] is not None or dispatch["autocast_fp16"] is not None or y.dtype != torch.float16:
            failures.append({"dispatch": dispatch})
        dispatch["compile"] = check_compile(module, x)
        if not dispatch["compile"]["ok"]:
            failures.append({"compile": dispatch["compile"]})
    max_err = {
        name: max((max(r[key] for key in ERRORS if key in r) for r in results if r["dtype"] == name), default=None)
        for name in ("float32", "float16", "bfloat16")
    }
    path = "triton" if use_triton else "nn.Conv2d fallback"
    return dict(
        path=path, shape=list(shape), max_rel_err=max_err, failures=failures, dispatch=dispatch, results=results
    )


def check_compile(module: DepthwiseConv2d, x: torch.Tensor) -> dict:
    """Check that Inductor (Ultralytics' ``compile=True``) keeps the Triton path and computes what eager mode does.

    The graph Dynamo hands to Inductor must call the custom operator, not ``aten.convolution``; outputs and gradients
    under fp16 autocast must match the eager module's.
    """
    from torch._inductor.compile_fx import compile_fx

    graphs = []

    def inductor_keeping_graph(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    torch._dynamo.reset()
    module.zero_grad()
    compiled_module = copy.deepcopy(module)
    compiled = torch.compile(compiled_module, backend=inductor_keeping_graph, fullgraph=True)
    t0 = time.perf_counter()
    outputs = []
    for m in (module, compiled):
        with torch.autocast("cuda", dtype=torch.float16):
            y = m(x)
        y.float().square().mean().backward()
        outputs.append(y.float())
    targets = [str(node.target) for gm in graphs for node in gm.graph.nodes if node.op == "call_function"]
    report = {
        "seconds": time.perf_counter() - t0,
        "graph_ops": sorted(set(targets)),
        "output_rel_err": relative_error(outputs[1], outputs[0]),
        "weight_grad_rel_err": relative_error(compiled_module.weight.grad, module.weight.grad),
    }
    uses_op = any("ultralytics_convmixer.depthwise_conv2d" in t for t in targets)
    uses_aten_conv = any("conv" in t and "ultralytics_convmixer" not in t for t in targets)
    errors_ok = max(report["output_rel_err"], report["weight_grad_rel_err"]) <= TOLERANCE[torch.float16]
    report["ok"] = uses_op and not uses_aten_conv and errors_ok
    module.zero_grad()
    return report


def markdown(rows: List[dict], cudnn_k7: Dict[tuple, float]) -> str:
    """The benchmark rows as a Markdown table (times in ms)."""

    def over_k7(r: dict) -> Optional[float]:
        k7 = cudnn_k7.get((r["layout"], *r["shape"]))
        return r["ours_fwdbwd_ms"] / k7 if k7 else None

    ms = "{:.2f}"
    columns = [
        "layout",
        ("shape (N, C, H, W)", lambda r: ", ".join(map(str, r["shape"]))),
        "k",
        ("cuDNN fwd", "cudnn_fwd_ms", ms),
        ("ours fwd", "ours_fwd_ms", ms),
        ("cuDNN fwd+bwd", "cudnn_fwdbwd_ms", ms),
        ("ours fwd+bwd", "ours_fwdbwd_ms", ms),
        ("ours bwd dx", lambda r: r.get("ours_bwd_input_ms"), ms),
        ("ours bwd dW", lambda r: r.get("ours_bwd_weight_ms"), ms),
        ("cuDNN/ours", "cudnn_over_ours", ms),
        ("ours/cuDNN k=7", over_k7, ms),
        ("floor", "floor_fwdbwd_ms", "{:.3f}"),
        ("ours/floor", "ours_over_floor", "{:.1f}"),
    ]
    return markdown_table(rows, columns)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available; use --device cpu")
    cuda = device.type == "cuda"
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    args.reps = args.reps if args.reps is not None else (50 if cuda else 3)
    args.dtype = args.dtype or ("fp16" if cuda else "fp32")
    args.ks = args.ks or (list(dwconv.SUPPORTED_KERNELS) if cuda else CPU_KS)
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else None
    shapes = shapes or (GPU_SHAPES if cuda else CPU_SHAPES)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.no_autotune and cuda:
        kernels = triton_kernels()
        for name in ("fwd_nchw", "fwd_nhwc", "wgrad_nhwc"):
            kernels.FORCED_CONFIGS[name] = kernels.config_meta(kernels.CONFIGS[name][0])
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "triton": _triton_version(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }

    def save():  # after every step: a run stopped by the GPU session's time limit keeps what it finished
        if args.out:
            write_json(args.out, result)

    def check():
        t0 = time.perf_counter()
        report = result["check"] = check_all(device, args.ks)
        report["seconds"] = time.perf_counter() - t0
        print(f"check ({report['path']}, {report['seconds']:.1f} s): max relative error {report['max_rel_err']}")
        for failure in report["failures"]:
            print("CHECK FAILED:", failure)
        save()

    if args.compile_report:
        result["compile_report"] = compile_report(args.ks, args.dtype)
    triton_failures = []  # a failing kernel is reported in its row and forgotten, so later rows still time Triton
    if args.skip_bench and args.check:
        check()
    if not args.skip_bench:
        triton_failures = benchmark(args, device, shapes, result, save, check if args.check else None)
    # Every row and check case takes its own failure (take_triton_failure): nothing is left to read from dwconv.
    result["triton_failure"] = triton_failures[0] if triton_failures else None
    save()
    if args.out:
        print(f"wrote {args.out}")
    return 1 if (args.check and result["check"]["failures"]) or result["triton_failure"] else 0


def benchmark(args, device: torch.device, shapes, result: dict, save, check) -> List[str]:
    """Time every layout, shape and k into ``result["rows"]`` (saved after each), ``check`` between; print the table.

    k = 7 comes first (cuDNN's k = 7 is the reference of every row), then 9 at every shape, then ``check`` (if not
    None): the comparison this benchmark exists for, our k = 9 against cuDNN's k = 7, is in even if the time limit
    stops the run before the checks and the other kernel sizes. Returns the Triton failures of the rows.
    """
    measured = args.bandwidth is None
    bandwidth = measure_bandwidth(device) if measured else args.bandwidth
    result["bandwidth_gbps"], result["bandwidth_source"] = bandwidth, "measured copy" if measured else "given"
    print(f"{result['device']}: {bandwidth:.0f} GB/s ({result['bandwidth_source']}); {args.dtype} {args.layout}")
    layouts = ["channels_last", "contiguous"] if args.layout == "both" else [args.layout]
    rows: List[dict] = []
    cudnn_k7: Dict[tuple, float] = {}
    triton_failures = []
    first = [k for k in (7, 9) if k in args.ks]
    result["rows"] = rows  # the same list: every save() writes the rows finished so far
    for group, ks in enumerate((first, sorted(set(args.ks) - set(first)))):
        if group == 1 and check is not None:
            check()
        for layout, shape, k in ((layout, shape, k) for layout in layouts for shape in shapes for k in ks):
            r = bench_row(shape, k, layout, args, device, bandwidth, cudnn_k7)
            k7 = cudnn_k7.get((layout, *shape))
            r["ours_over_cudnn_k7"] = r["ours_fwdbwd_ms"] / k7 if k7 else None
            r["triton_failure"] = take_triton_failure()  # if set, its "ours" is cuDNN's
            if r["triton_failure"]:
                triton_failures.append(r["triton_failure"])
                print(f"  {layout} {shape} k={k}: TRITON KERNELS FAILED: {r['triton_failure']}")
            rows.append(r)
            save()
            print(
                f"  {layout} {shape} k={k}: cuDNN {r['cudnn_fwdbwd_ms']:.3f} ms, "
                f"ours {r['ours_fwdbwd_ms']:.3f} ms (first call {r['ours_first_call_s']:.1f} s)",
                flush=True,
            )
    rows.sort(key=lambda r: (layouts.index(r["layout"]), shapes.index(tuple(r["shape"])), r["k"]))
    print()
    print(f"Times in ms, median of {args.reps}; {args.dtype}, {args.layout}; floor at {bandwidth:.0f} GB/s.")
    if device.type != "cuda":
        print("On CPU, 'cuDNN' is ATen's CPU convolution and 'ours' the nn.Conv2d fallback of DepthwiseConv2d.")
    print(markdown(rows, cudnn_k7))
    return triton_failures


def compile_report(ks: Sequence[int], dtype: str) -> List[dict]:
    """Compile every config of every kernel for sm_90a (H100) on the CPU; return ptxas' registers and spill bytes.

    Assumes what the runtime specialises for the benchmark shapes: 16-byte aligned pointers and C % 16 == 0.
    """
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernels = triton_kernels()
    tt = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}[dtype]
    rows = []
    largest_plane = max(h * w for _, _, h, w in GPU_SHAPES)
    for k in ks:
        kk_pad = dwconv_tiling.next_pow2(k * k)
        block = dwconv_tiling.wgrad_nchw_block(k, largest_plane)  # as weight_grad tiles the benchmark's largest plane
        variants = [
            (fn, name, {**c.kwargs}, c.num_warps)
            for name, fn in kernels.RAW_KERNELS.items()
            for c in kernels.CONFIGS[name]
        ]
        variants.append((kernels.KERNELS["wgrad_nchw"], "wgrad_nchw", {"BLOCK": block}, 8))
        for fn, name, meta, warps in variants:
            sig, constants = {}, {"K": k, "HAS_BIAS": True, **meta}
            if name.startswith("wgrad"):
                constants["KK_PAD"] = kk_pad
            for arg in fn.arg_names:
                if arg in constants:
                    sig[arg] = "constexpr"
                elif arg.endswith("_ptr"):
                    sig[arg] = f"*{tt}" if arg[0] in "xgy" else "*fp32"
                else:
                    sig[arg] = "i32"
            attrs = {
                (i,): [["tt.divisibility", 16]] for i, a in enumerate(fn.arg_names) if a.endswith("_ptr") or a == "C"
            }
            t0 = time.perf_counter()
            src = ASTSource(fn, sig, constants, attrs=attrs)
            compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
            with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
                f.write(compiled.asm["ptx"])
                f.flush()
                cmd = [triton.knobs.nvidia.ptxas.path, "-arch=sm_90a", "-v", f.name, "-o", os.devnull]
                log = subprocess.run(cmd, capture_output=True, text=True).stderr
            regs = re.findall(r"Used (\d+) registers", log)
            spills = re.findall(r"(\d+) bytes spill stores", log)
            row = {"kernel": name, "k": k, "dtype": dtype, "meta": meta, "num_warps": warps}
            row.update(registers=int(regs[0]) if regs else None, spill_bytes=int(spills[0]) if spills else None)
            row["seconds"] = round(time.perf_counter() - t0, 2)
            rows.append(row)
            print(f"  {name:10s} k={k:2d} {dtype} {meta} w{warps}: {row['registers']} registers, "
                  f"{row['spill_bytes']} spill bytes, {row['seconds']} s", flush=True)  # fmt: skip
    return rows


def _triton_version() -> Optional[str]:
    try:
        import triton

        return triton.__version__
    except Exception:
        return None


if __name__ == "__main__":
    # Time the Triton kernels at every kernel size, also those DepthwiseConv2d leaves to cuDNN by default
    # (dwconv.CUDNN_FAST_KERNELS): this table is what that default is chosen by.
    os.environ.setdefault(dwconv.ENV_FAST_DWCONV, "all")
    sys.exit(main())

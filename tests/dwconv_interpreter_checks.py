"""Checks of the Triton depthwise kernels under Triton's interpreter, run by ``test_dwconv_kernels.py``.

``TRITON_INTERPRET=1 python tests/dwconv_interpreter_checks.py [compile]`` prints one JSON line per case and a report
as the last line. The cases are small, with forced tiles, so that each kernel runs several programs along every tiled
axis, with ragged last ones.
"""

import copy
import json
import os
import sys
import warnings
from unittest import mock

import torch

from ultralytics_convmixer.nn import dwconv
from ultralytics_convmixer.nn.dwconv import DepthwiseConv2d
from ultralytics_convmixer.nn.dwconv_check import check_case, weight_grad


def _compile_main() -> None:
    """Compile a 9x9 ConvMixerBackbone under the interpreter; print a JSON report of its graphs as the last line."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    from ultralytics_convmixer.nn.modules import ConvMixerBackbone

    assert os.environ.get("TRITON_INTERPRET") == "1", "set TRITON_INTERPRET=1"
    graphs = {"forward": [], "backward": []}

    def keep(kind):
        def compiler(gm, example_inputs):
            graphs[kind].append(gm)
            return make_boxed_func(gm.forward)

        return compiler

    kernel_calls = _count_kernel_calls()
    torch.manual_seed(0)
    eager = ConvMixerBackbone(3, [16, 24, 32], [2, 1, 1], 9, "hierarchical", "silu", True, "conv-bn-act").train()
    compiled_copy = copy.deepcopy(eager)
    compiled = torch.compile(
        compiled_copy, backend=aot_autograd(fw_compiler=keep("forward"), bw_compiler=keep("backward")), fullgraph=True
    )
    runs = []
    for shape in ((2, 3, 64, 96), (1, 3, 96, 64)):
        for kind in graphs:
            graphs[kind].clear()
            kernel_calls[kind] = 0
        for model in (eager, compiled_copy):
            model.zero_grad()
        x = torch.randn(shape)
        out = compiled(x)
        sum(level.square().mean() for level in out).backward()
        calls = dict(kernel_calls)
        with mock.patch.dict(os.environ, {dwconv.ENV_FAST_DWCONV: "0"}):  # the reference: nn.Conv2d
            ref = eager(x)
            sum(level.square().mean() for level in ref).backward()
        grad_errors = {}
        for (name, a), b in zip(eager.named_parameters(), compiled_copy.parameters()):
            try:
                torch.testing.assert_close(b.grad, a.grad)
            except AssertionError as error:
                grad_errors[name] = str(error).splitlines()[-1]
        runs.append(
            {
                "graphs": {kind: len(gms) for kind, gms in graphs.items()},
                "forward_ops": _ops_of(graphs["forward"]),
                "backward_ops": _ops_of(graphs["backward"]),
                "kernel_calls": calls,
                "output_error": max((a - b).abs().max().item() for a, b in zip(out, ref)),
                "gradient_errors": grad_errors,
            }
        )
    frozen_error = _frozen_input_grad_error(aot_autograd(fw_compiler=keep("forward"), bw_compiler=keep("backward")))
    # torch.export (Ultralytics' ExecuTorch export, dynamo ONNX) must get a standard convolution, not our operator.
    program = torch.export.export(DepthwiseConv2d(4, 9).eval(), (torch.randn(1, 4, 10, 10),))
    export_ops = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
    report = {"runs": runs, "frozen_input_grad_error": frozen_error, "export_ops": export_ops}
    print(json.dumps({**report, "triton_failure": dwconv.triton_failure()}))


def _count_kernel_calls() -> dict:
    """Count the calls that reach the Triton kernels: every backward pass of a trained layer computes a weight grad."""
    from ultralytics_convmixer.nn import dwconv_triton

    kernel_calls = {"forward": 0, "backward": 0}
    for kind, entry_point in (("forward", "forward"), ("backward", "weight_grad")):
        original = getattr(dwconv_triton, entry_point)

        def counted(*args, _kind=kind, _original=original):
            kernel_calls[_kind] += 1
            return _original(*args)

        setattr(dwconv_triton, entry_point, counted)
    return kernel_calls


def _ops_of(gms) -> dict:
    """Count our operators, and aten convolutions (and their backward) with 9x9 filters."""
    counts = {}
    for node in (node for gm in gms for node in gm.graph.nodes):
        name = str(node.target)
        if name.startswith("aten.convolution"):  # (x, weight, ...) and (grad_y, x, weight, ...)
            weight = node.args[2 if "backward" in name else 1]
            if weight.meta["val"].shape[-1] != 9:
                continue
        elif not name.startswith("ultralytics_convmixer."):
            continue
        counts[name] = counts.get(name, 0) + 1
    return counts


def _frozen_input_grad_error(backend) -> float:
    """Frozen weights (Ultralytics' freeze=): the backward operator returns the input gradient and two empty ones."""
    frozen = DepthwiseConv2d(4, 9).requires_grad_(False)
    x = torch.randn(1, 4, 10, 10, requires_grad=True)
    torch.compile(frozen, backend=backend)(x).sum().backward()
    frozen_grad, x.grad = x.grad, None
    with mock.patch.dict(os.environ, {dwconv.ENV_FAST_DWCONV: "0"}):
        frozen(x).sum().backward()
    return (frozen_grad - x.grad).abs().max().item()


def _interpreter_main() -> None:
    """Run the interpreter checks (``TRITON_INTERPRET=1`` must be set) and print a JSON report as the last line."""
    assert os.environ.get("TRITON_INTERPRET") == "1", "set TRITON_INTERPRET=1"
    from ultralytics_convmixer.nn import dwconv_triton

    # Few weight-gradient programs, so that each loops over several pixels and the last one is ragged.
    dwconv_triton.WGRAD_PROGRAMS = 5
    failures, report = [], []
    for case in _interpreter_cases():
        dwconv_triton.FORCED_CONFIGS.clear()
        dwconv_triton.FORCED_CONFIGS.update(case.pop("forced", {}))
        row = check_case(case.pop("shape"), **case)
        report.append(row)
        if not row["ok"]:
            failures.append(row)
    # Determinism: the same call, and the same call with another (autotunable) NHWC weight-gradient config, give
    # bit-identical weight gradients.
    dwconv_triton.FORCED_CONFIGS.clear()
    first = weight_grad((1, 5, 9, 13), 9, torch.float32, True)
    for forced in ({}, {"wgrad_nhwc": {"BLOCK_C": 16, "UNROLL": 3}}):
        dwconv_triton.FORCED_CONFIGS.update(forced)
        if not torch.equal(weight_grad((1, 5, 9, 13), 9, torch.float32, True), first):
            failures.append({"determinism": f"weight gradient differs between identical calls with {forced}"})
    failures += _autotuned_failures()
    for row in report:
        print(json.dumps(row))
    print(json.dumps({"cases": len(report), "failures": failures, "triton_failure": dwconv.triton_failure()}))


def _interpreter_cases() -> list:
    """The cases of ``_interpreter_main``: ``check_case`` arguments, plus ``forced`` configs."""
    cases = []
    # Every kernel size, both layouts, fp32; odd channel counts and spatial sizes exercise every mask.
    shapes = {3: (2, 5, 9, 7), 5: (2, 6, 7, 11), 7: (1, 7, 11, 9), 9: (1, 5, 9, 13), 11: (1, 6, 13, 7)}
    shapes[13] = (1, 5, 7, 9)  # an image smaller than the kernel
    for k, shape in shapes.items():
        for cl in (False, True):
            cases.append(dict(shape=shape, k=k, dtype=torch.float32, channels_last=cl))
    for dtype in (torch.float16, torch.bfloat16):  # low precision (fp32 accumulation, rounded output)
        for cl in (False, True):
            cases.append(dict(shape=(2, 6, 7, 9), k=5, dtype=dtype, channels_last=cl))
    for cl in (False, True):  # no bias; only some gradients requested
        cases.append(dict(shape=(2, 4, 8, 10), k=5, dtype=torch.float32, channels_last=cl, bias=False, grads="w"))
        cases.append(dict(shape=(1, 4, 8, 10), k=3, dtype=torch.float32, channels_last=cl, grads="xb"))
    # Small forced tiles: several pixel tiles per plane/image and several channel blocks (C = 20 > BLOCK_C = 16).
    small = {
        "fwd_nchw": {"BLOCK": 32},
        "fwd_nhwc": {"TH": 4, "TW": 4, "BLOCK_C": 16, "UNROLL": 2},
        "wgrad_nhwc": {"BLOCK_C": 16, "UNROLL": 3},
    }
    for cl in (False, True):
        cases.append(dict(shape=(1, 20, 7, 9), k=3, dtype=torch.float32, channels_last=cl, forced=small))
    return cases


def _autotuned_failures() -> list:
    """Check the autotuner's plumbing (key, pruning, grid) with a stub benchmark (the interpreter cannot time)."""
    from ultralytics_convmixer.nn import dwconv_triton

    failures = []
    dwconv_triton.FORCED_CONFIGS.clear()
    benched = []
    for name in ("fwd_nchw", "fwd_nhwc", "wgrad_nhwc"):
        dwconv_triton.KERNELS[name]._do_bench = lambda fn, quantiles: (fn(), benched.append(1), [1.0, 1.0, 1.0])[-1]
    dwconv_triton.AUTOTUNE_IN_INTERPRETER = True
    for cl in (False, True):
        benched.clear()
        row = check_case((1, 24, 5, 7), 3, torch.float32, cl)
        if not row["ok"] or len(benched) < 5:
            failures.append({"autotuned": cl, **row, "configs_benchmarked": len(benched)})
    return failures


def _broken(entry: str, original):
    """A kernel entry point that computes a wrong result: the output, or the weight gradient, off by 5%."""
    if entry == "forward":
        return lambda *args: original(*args) * 1.05
    return lambda *args: tuple(g * 1.05 if i == 0 and g is not None else g for i, g in enumerate(original(*args)))


def _training_steps(block, x, steps: int = 2) -> None:
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        block(x).square().mean().backward()
        optimizer.step()


def _selfcheck_main() -> None:
    """Break a kernel (its output, or its weight gradient), train a 9x9 block two steps, and report what happened."""
    from ultralytics_convmixer.nn import dwconv_selfcheck, dwconv_triton
    from ultralytics_convmixer.nn.modules import ConvMixerBlock

    assert os.environ.get("TRITON_INTERPRET") == "1", "set TRITON_INTERPRET=1"
    dwconv_triton.FORCED_CONFIGS.update(  # small tiles: several programs along every tiled axis
        fwd_nchw={"BLOCK": 32}, fwd_nhwc={"TH": 4, "TW": 4, "BLOCK_C": 16, "UNROLL": 2},
        wgrad_nhwc={"BLOCK_C": 16, "UNROLL": 3},
    )  # fmt: skip
    report = {}
    for entry in ("forward", "weight_grad"):
        dwconv_selfcheck.forget_cases()
        torch.manual_seed(0)
        block, x = ConvMixerBlock(20, 9, "silu", True, "conv-bn-act").train(), torch.randn(2, 20, 11, 13)
        reference = copy.deepcopy(block)
        before = dwconv.fast_path_reason(x, block.dw.conv)
        original = getattr(dwconv_triton, entry)
        setattr(dwconv_triton, entry, _broken(entry, original))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _training_steps(block, x)
        setattr(dwconv_triton, entry, original)
        with mock.patch.dict(os.environ, {dwconv.ENV_FAST_DWCONV: "0"}):  # the reference: nn.Conv2d throughout
            _training_steps(reference, x)
        report[entry] = {
            "fast_path_before": before,
            "fast_path_after": dwconv.fast_path_reason(x, block.dw.conv),
            "warnings": [str(w.message) for w in caught if "self-check" in str(w.message)],
            "cases": dwconv_selfcheck.checked_cases(),
            "parameter_error": max(
                (a - b).abs().max().item() for a, b in zip(block.parameters(), reference.parameters())
            ),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    {"compile": _compile_main, "selfcheck": _selfcheck_main}.get(
        sys.argv[1] if sys.argv[1:] else "", _interpreter_main
    )()

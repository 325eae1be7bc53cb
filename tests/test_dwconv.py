"""Tests of DepthwiseConv2d: exact nn.Conv2d fallback, dispatcher, export, and the Triton kernels on CPU.

The Triton kernels are checked with Triton's interpreter (``TRITON_INTERPRET=1``) in a subprocess, so the variable
does not leak into other tests; run this file directly to see the errors: ``TRITON_INTERPRET=1 python
tests/test_dwconv.py``.
"""

import copy
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import types
import warnings
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn

from ultralytics_convmixer import dwconv
from ultralytics_convmixer.dwconv import DepthwiseConv2d, fast_path_reason

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None


def plain_conv(c: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=bias)


class FakeCudaTensor:
    """Just enough of a CUDA tensor for fast_path_reason, so its accept branch is testable without a GPU."""

    def __init__(self, shape, dtype=torch.float32):
        self.shape, self.dtype = torch.Size(shape), dtype
        self.is_cuda, self.device = True, torch.device("cpu")  # the device of the (CPU) parameters of the tests

    def dim(self):
        return len(self.shape)

    def numel(self):
        return self.shape.numel()

    def is_floating_point(self):
        return self.dtype.is_floating_point


class ReasonRecorder(nn.Module):
    """Runs a DepthwiseConv2d and records the dispatcher's reason, as seen inside forward (e.g. while tracing)."""

    def __init__(self, c: int = 4, k: int = 9):
        super().__init__()
        self.dw = DepthwiseConv2d(c, k)
        self.reasons = []

    def forward(self, x):
        self.reasons.append(fast_path_reason(x, self.dw))
        return self.dw(x)


# ----------------------------------------------------------------------------------------------------------------------
# Fallback path == nn.Conv2d
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 7, 9, 13])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fallback_equals_conv2d(k, bias, channels_last):
    torch.manual_seed(k)
    ours, ref = DepthwiseConv2d(6, k, bias=bias), plain_conv(6, k, bias)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 11, 13)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    assert torch.equal(ya, yb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    assert torch.equal(xa.grad, xb.grad)
    assert torch.equal(ours.weight.grad, ref.weight.grad)
    if bias:
        assert torch.equal(ours.bias.grad, ref.bias.grad)


def test_signature_and_parameters_unchanged():
    m = DepthwiseConv2d(8)
    assert isinstance(m, nn.Conv2d)
    assert (m.kernel_size, m.padding, m.stride, m.groups) == ((9, 9), (4, 4), (1, 1), 8)
    assert tuple(m.weight.shape) == (8, 1, 9, 9) and tuple(m.bias.shape) == (8,)
    assert DepthwiseConv2d(8, 5, bias=False).bias is None


def test_state_dict_round_trip():
    ours, ref = DepthwiseConv2d(5, 7), plain_conv(5, 7)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight", "bias"]
    ref.load_state_dict(ours.state_dict(), strict=True)
    back = DepthwiseConv2d(5, 7)
    back.load_state_dict(ref.state_dict(), strict=True)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, back.state_dict()[key])


def test_pickle_and_deepcopy():
    m = DepthwiseConv2d(4, 5)
    x = torch.randn(1, 4, 6, 6)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert type(clone) is DepthwiseConv2d
        assert torch.equal(clone(x), m(x))


def test_import_does_not_import_triton():
    code = "import sys, ultralytics_convmixer.dwconv as d; d.DepthwiseConv2d(4)(__import__('torch').zeros(1, 4, 9, 9))"
    code += "; assert 'triton' not in sys.modules, 'triton imported'"
    code += "; assert 'ultralytics_convmixer.dwconv_triton' not in sys.modules, 'kernels imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


# ----------------------------------------------------------------------------------------------------------------------
# Dispatcher
# ----------------------------------------------------------------------------------------------------------------------


def test_dispatcher_cpu_falls_back():
    m = DepthwiseConv2d(4, 9)
    assert "not CUDA" in fast_path_reason(torch.randn(1, 4, 8, 8), m)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_dispatcher_accepts_supported_cuda_input(monkeypatch):
    monkeypatch.setenv(dwconv.ENV_FAST_DWCONV, "all")
    for k in dwconv.SUPPORTED_KERNELS:
        for dtype in dwconv.SUPPORTED_DTYPES:
            m = DepthwiseConv2d(8, k).to(dtype)
            assert fast_path_reason(FakeCudaTensor((2, 8, 20, 20), dtype), m) is None


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_dispatcher_leaves_kernels_up_to_7_to_cudnn_by_default(monkeypatch):
    monkeypatch.delenv(dwconv.ENV_FAST_DWCONV, raising=False)
    x = FakeCudaTensor((2, 8, 20, 20))
    for k in (3, 5, 7):
        assert f"kernel {k} is fast in cuDNN" in fast_path_reason(x, DepthwiseConv2d(8, k))
    for k in (9, 11, 13):  # where cuDNN's depthwise convolution is about 10x slower than at 7
        assert fast_path_reason(x, DepthwiseConv2d(8, k)) is None
    assert "not CUDA" in fast_path_reason(torch.randn(2, 8, 20, 20), DepthwiseConv2d(8, 3))  # the real reason first


def test_dispatcher_env_var(monkeypatch):
    m = DepthwiseConv2d(8, 9)
    monkeypatch.setenv(dwconv.ENV_FAST_DWCONV, "0")
    assert "disabled" in fast_path_reason(FakeCudaTensor((2, 8, 20, 20)), m)
    assert "disabled" in fast_path_reason(FakeCudaTensor((2, 8, 20, 20)), DepthwiseConv2d(8, 3))
    monkeypatch.setenv(dwconv.ENV_FAST_DWCONV, "1")
    assert "disabled" not in (fast_path_reason(FakeCudaTensor((2, 8, 20, 20)), m) or "")


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_dispatcher_under_autocast_takes_fp32_parameters_but_not_float64_ones(monkeypatch):
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda device_type=None: device_type == "cuda")
    monkeypatch.setattr(torch, "get_autocast_dtype", lambda device_type: torch.float16)
    x = FakeCudaTensor((2, 8, 20, 20))
    assert fast_path_reason(x, DepthwiseConv2d(8, 9)) is None  # autocast casts both to fp16, as for F.conv2d
    # autocast leaves float64 alone, so F.conv2d would get fp16 input and float64 weights and raise
    assert "dtypes differ" in fast_path_reason(x, DepthwiseConv2d(8, 9).double())


@pytest.mark.parametrize("k", [1, 2, 4, 8, 15])
def test_dispatcher_unsupported_kernels(k):
    assert "kernel" in fast_path_reason(FakeCudaTensor((2, 8, 20, 20)), DepthwiseConv2d(8, k))


def test_dispatcher_other_unsupported_cases():
    x = FakeCudaTensor((2, 8, 20, 20))
    non_square = nn.Conv2d(8, 8, (3, 5), padding=(1, 2), groups=8)
    assert "kernel" in fast_path_reason(x, non_square)
    assert "depthwise" in fast_path_reason(x, nn.Conv2d(8, 8, 9, padding=4, stride=2, groups=8))
    assert "depthwise" in fast_path_reason(x, nn.Conv2d(8, 8, 9, padding=0, groups=8))
    assert "depthwise" in fast_path_reason(x, nn.Conv2d(8, 8, 9, padding=4, groups=8, padding_mode="reflect"))
    m = DepthwiseConv2d(8, 9)
    assert "shape" in fast_path_reason(FakeCudaTensor((8, 20, 20)), m)  # unbatched input
    assert "dtype" in fast_path_reason(FakeCudaTensor((2, 8, 20, 20), torch.float16), m)  # fp32 weights
    assert "dtype" in fast_path_reason(FakeCudaTensor((2, 8, 20, 20), torch.float64), DepthwiseConv2d(8, 9).double())
    assert "empty" in fast_path_reason(FakeCudaTensor((0, 8, 20, 20)), m)


@pytest.mark.parametrize("k, largest_side", [(3, 4095), (9, 2047), (13, 1448)])
def test_dispatcher_refuses_planes_with_more_pixel_tiles_than_a_grid_axis(monkeypatch, k, largest_side):
    monkeypatch.setenv(dwconv.ENV_FAST_DWCONV, "all")
    # The NCHW kernels put a plane's pixel tiles on grid axis 1 (at most 65535): 256 pixels per forward program and
    # fewer per weight-gradient program the larger k is (32 at k = 13), so the largest plane shrinks with k.
    assert min(block for _, block in dwconv.FWD_NCHW_CONFIGS) == 256 and dwconv.wgrad_nchw_block(13, 2**30) == 32
    m = DepthwiseConv2d(1, k)
    assert fast_path_reason(FakeCudaTensor((1, 1, largest_side, largest_side)), m) is None
    reason = fast_path_reason(FakeCudaTensor((1, 1, largest_side + 1, largest_side + 1)), m)
    assert reason is not None and "grid axis" in reason


def test_dispatcher_tracing_and_onnx_export():
    rec = ReasonRecorder()
    x = torch.randn(1, 4, 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(rec, x)
        assert "tracing" in rec.reasons[0]  # the first call traces; check_trace then calls it untraced
        assert torch.equal(traced(x), rec.dw(x))
        rec.reasons.clear()
        torch.onnx.export(rec, (x,), io.BytesIO(), dynamo=False)
    assert rec.reasons and all("ONNX" in r for r in rec.reasons)


def test_torchscript_script_and_trace():
    m = DepthwiseConv2d(4, 9).eval()
    x = torch.randn(2, 4, 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted, traced = torch.jit.script(m), torch.jit.trace(m, x)
    assert torch.equal(scripted(x), m(x)) and torch.equal(traced(x), m(x))
    assert "aten::_convolution" in str(traced.graph) or "aten::conv2d" in str(traced.graph)


def test_torch_compile_traces_the_backbone_in_one_graph_with_eager_outputs_and_gradients():
    """Ultralytics' ``compile=True`` wraps the model in torch.compile: no graph break, same numbers as eager."""
    from ultralytics_convmixer.modules import ConvMixerBackbone

    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = ConvMixerBackbone(3, [16, 24, 32], [2, 1, 1], 9, "hierarchical", "silu", True, "conv-bn-act").train()
    compiled_copy = copy.deepcopy(eager)
    rec = ReasonRecorder()
    # aot_eager: Dynamo and AOTAutograd as in Inductor, without its C++ compile (minutes on 2 cores).
    compiled = torch.compile(compiled_copy, backend="aot_eager", fullgraph=True)  # fullgraph: a break would raise
    x = torch.randn(2, 3, 64, 96)
    outputs = [eager(x), compiled(x)]
    for a, b in zip(*outputs):
        torch.testing.assert_close(b, a)
    for out in outputs:
        sum(level.square().mean() for level in out).backward()
    for (name, a), b in zip(eager.named_parameters(), compiled_copy.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
    # Compiling does not change the dispatcher's decision (on CUDA the Triton kernels run as custom operators).
    x = torch.randn(1, 4, 10, 10)
    torch.compile(rec, backend="aot_eager", fullgraph=True)(x)
    assert rec.reasons == [fast_path_reason(x, rec.dw)] == ["input is on cpu, not CUDA"]


def test_onnx_export_has_only_standard_ops():
    onnx = pytest.importorskip("onnx")
    model = nn.Sequential(DepthwiseConv2d(8, 9), nn.GELU(), nn.Conv2d(8, 8, 1)).eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 8, 16, 16),), f, dynamo=False, opset_version=17)
    graph = onnx.load_from_string(f.getvalue()).graph
    assert all(node.domain in ("", "ai.onnx") for node in graph.node), [n.domain for n in graph.node]
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convs) == 2
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in convs[0].attribute}
    assert attrs["group"] == 8 and list(attrs["kernel_shape"]) == [9, 9] and list(attrs["pads"]) == [4, 4, 4, 4]


# ----------------------------------------------------------------------------------------------------------------------
# A Triton kernel that fails (e.g. does not compile for the GPU) costs speed, not the run
# ----------------------------------------------------------------------------------------------------------------------


def _fake_forward(x, weight, bias, nhwc):
    """What ``dwconv_triton.forward`` computes, with F.conv2d."""
    return dwconv.reference_conv(x, weight, bias)


def _fake_input_grad(grad_y, weight, nhwc):
    """What ``dwconv_triton.input_grad`` computes: the correlation with the flipped filters, with F.conv2d."""
    return dwconv.reference_conv(grad_y, weight.flip((2, 3)))


def _not_reached(*args, **kwargs):
    pytest.fail("a kernel that must not run was launched")


def _fake_kernels(**entry_points):
    """A stand-in for the ``dwconv_triton`` module (no Triton needed): F.conv2d, with ``entry_points`` replaced."""
    kernels = types.SimpleNamespace(forward=_fake_forward, input_grad=_fake_input_grad, weight_grad=_not_reached)
    for name, fn in entry_points.items():
        setattr(kernels, name, fn)
    return kernels


def _raise_kernel_error(*args, **kwargs):
    raise RuntimeError("Triton Error [CUDA]: no kernel image is available for execution on the device")


def _grads_of(fn, x, w, b):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = fn(x, w, b)
    y.square().sum().backward()
    return y.detach(), x.grad, w.grad, b.grad


@pytest.mark.parametrize("failing", ["forward", "weight_grad"])  # fails in forward, or only in backward
def test_failing_triton_kernel_falls_back_to_conv2d_and_warns_once(monkeypatch, failing):
    kernels = _fake_kernels(**{failing: _raise_kernel_error})
    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": kernels})
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 6, 9, 11), torch.randn(6, 1, 5, 5), torch.randn(6)
    want = _grads_of(dwconv.reference_conv, x, w, b)  # output, then the gradients of x, weight and bias
    with pytest.warns(RuntimeWarning, match="Triton depthwise convolution failed .*no kernel image.*nn.Conv2d"):
        torch.testing.assert_close(_grads_of(dwconv.depthwise_conv2d_triton, x, w, b), want)
    assert "no kernel image" in dwconv.triton_failure()
    for name in ("forward", "input_grad", "weight_grad"):
        monkeypatch.setattr(kernels, name, lambda *a: pytest.fail("a failed kernel was launched again"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: later calls are silent
        torch.testing.assert_close(_grads_of(dwconv.depthwise_conv2d_triton, x, w, b), want)
    reason = fast_path_reason(FakeCudaTensor((2, 6, 9, 11)), DepthwiseConv2d(6, 9))
    assert "failed earlier in this process" in reason and "no kernel image" in reason


def test_a_kernel_error_with_a_blank_message_still_falls_back(monkeypatch):
    def blank_error(*args, **kwargs):
        raise RuntimeError("  \n")

    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": _fake_kernels(forward=blank_error)})
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3)
    with pytest.warns(RuntimeWarning, match="Triton depthwise convolution failed"):
        torch.testing.assert_close(dwconv.depthwise_conv2d_triton(x, w), dwconv.reference_conv(x, w))
    assert dwconv.triton_failure() == "RuntimeError: "


def test_out_of_memory_in_a_triton_kernel_is_raised_not_hidden(monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": _fake_kernels(forward=out_of_memory)})
    with pytest.raises(torch.OutOfMemoryError):
        dwconv.depthwise_conv2d_triton(torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3))
    assert dwconv.triton_failure() is None


# ----------------------------------------------------------------------------------------------------------------------
# Triton kernels under the interpreter
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed, so the Triton kernels cannot be checked")
def test_triton_kernels_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"]
    assert report["triton_failure"] is None, "the kernels failed and the checks ran on the nn.Conv2d fallback"
    assert report["cases"] >= 15


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed, so the Triton kernels cannot be checked")
def test_torch_compile_runs_the_triton_kernels_as_opaque_operators_with_eager_numbers():
    """Under torch.compile (Ultralytics' ``compile=True``) the 9x9 convolutions still take the Triton path.

    torch.export, which traces the same way, gets a standard convolution instead.
    """
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__, "compile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["triton_failure"] is None
    depthwise_layers = 4
    for run in report["runs"]:  # two input sizes: the second compiles with dynamic shapes
        # One graph each way, every 9x9 convolution our operator, none left to aten's convolution.
        assert run["graphs"] == {"forward": 1, "backward": 1}, run
        assert run["forward_ops"] == {"ultralytics_convmixer.depthwise_conv2d.default": depthwise_layers}, run
        assert run["backward_ops"] == {"ultralytics_convmixer.depthwise_conv2d_backward.default": depthwise_layers}
        assert run["kernel_calls"] == {"forward": depthwise_layers, "backward": depthwise_layers}, run
        assert run["output_error"] < 1e-5 and run["gradient_errors"] == {}, run
    assert report["frozen_input_grad_error"] < 1e-5  # frozen weights: the operator's two empty gradients
    assert report["export_ops"] == ["aten.conv2d.default"]


def _compile_main() -> None:
    """Compile a 9x9 ConvMixerBackbone under the interpreter; print a JSON report of its graphs as the last line."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    from ultralytics_convmixer.modules import ConvMixerBackbone

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
    from ultralytics_convmixer import dwconv_triton

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


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def _check_case(n, c, h, w, k, dtype, channels_last, bias=True, grads="xwb", seed=0):
    """Compare depthwise_conv2d_triton (value and gradients) with float64 F.conv2d; return {name: rel. error}."""
    gen = torch.Generator().manual_seed(seed)
    x, wt = torch.randn(n, c, h, w, generator=gen).to(dtype), torch.randn(c, 1, k, k, generator=gen).to(dtype)
    b = torch.randn(c, generator=gen).to(dtype) if bias else None
    g = torch.randn(n, c, h, w, generator=gen).to(dtype)
    ref_in = [t.double().requires_grad_() if t is not None else None for t in (x, wt, b)]
    y_ref = dwconv.reference_conv(*ref_in)
    y_ref.backward(g.double())
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ours = [x.requires_grad_("x" in grads), wt.requires_grad_("w" in grads)]
    ours.append(b.requires_grad_("b" in grads) if b is not None else None)
    y = dwconv.depthwise_conv2d_triton(*ours)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert y.dtype == dtype and y.is_contiguous(memory_format=layout)
    y.backward(g)
    errs = {"y": _rel_err(y, y_ref)}
    for name, t, r in zip("xwb", ours, ref_in):
        if t is not None and name in grads:
            assert t.grad.dtype == dtype and t.grad.shape == t.shape
            errs[name] = _rel_err(t.grad, r.grad)
    return errs, (ours[1].grad.clone() if "w" in grads else None)


def _interpreter_main() -> None:
    """Run the interpreter checks (``TRITON_INTERPRET=1`` must be set) and print a JSON report as the last line."""
    assert os.environ.get("TRITON_INTERPRET") == "1", "set TRITON_INTERPRET=1"
    from ultralytics_convmixer import dwconv_triton

    # Few weight-gradient programs, so that each loops over several pixels and the last one is ragged.
    dwconv_triton.WGRAD_PROGRAMS = 5
    failures, report, wgrads = [], [], {}
    for case in _interpreter_cases():
        dwconv_triton.FORCED_CONFIGS.clear()
        dwconv_triton.FORCED_CONFIGS.update(case.pop("forced", {}))
        errs, gw = _check_case(*case.pop("shape"), **case)
        report.append({**{k: str(v) for k, v in case.items()}, **errs})
        if max(errs.values()) > _TOL[case["dtype"]]:
            failures.append(report[-1])
        wgrads[(case["k"], case["channels_last"], case["dtype"])] = gw
    # Determinism: the same call, and the same call with another (autotunable) NHWC weight-gradient config, give
    # bit-identical weight gradients.
    dwconv_triton.FORCED_CONFIGS.clear()
    for forced in ({}, {"wgrad_nhwc": {"BLOCK_C": 16, "UNROLL": 3}}):
        dwconv_triton.FORCED_CONFIGS.update(forced)
        _, gw = _check_case(1, 5, 9, 13, 9, torch.float32, True)
        if not torch.equal(gw, wgrads[(9, True, torch.float32)]):
            failures.append({"determinism": f"weight gradient differs between identical calls with {forced}"})
    failures += _autotuned_failures()
    for row in report:
        print(json.dumps(row))
    print(json.dumps({"cases": len(report), "failures": failures, "triton_failure": dwconv.triton_failure()}))


_TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def _interpreter_cases() -> list:
    """The cases of ``_interpreter_main``: ``_check_case`` arguments, plus ``forced`` configs."""
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
    from ultralytics_convmixer import dwconv_triton

    failures = []
    dwconv_triton.FORCED_CONFIGS.clear()
    benched = []
    for name in ("fwd_nchw", "fwd_nhwc", "wgrad_nhwc"):
        dwconv_triton.KERNELS[name]._do_bench = lambda fn, quantiles: (fn(), benched.append(1), [1.0, 1.0, 1.0])[-1]
    dwconv_triton.AUTOTUNE_IN_INTERPRETER = True
    for cl in (False, True):
        benched.clear()
        errs, _ = _check_case(1, 24, 5, 7, 3, torch.float32, cl)
        if max(errs.values()) > _TOL[torch.float32] or len(benched) < 5:
            failures.append({"autotuned": cl, **errs, "configs_benchmarked": len(benched)})
    return failures


if __name__ == "__main__":
    _compile_main() if sys.argv[1:] == ["compile"] else _interpreter_main()

"""Tests of DepthwiseConv2d: the exact nn.Conv2d fallback, the dispatcher, export, and a failing Triton kernel.

The kernels themselves are checked under Triton's interpreter in ``test_dwconv_kernels.py``.
"""

import copy
import importlib.util
import io
import pickle
import types
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from ultralytics_convmixer.nn import dwconv, dwconv_selfcheck, dwconv_tiling
from ultralytics_convmixer.nn.dwconv import DepthwiseConv2d, fast_path_reason

from conftest import run_python

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None
TORCH_RELEASE = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])


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
    code = (
        "import sys, ultralytics_convmixer.nn.dwconv as d; d.DepthwiseConv2d(4)(__import__('torch').zeros(1, 4, 9, 9))"
    )
    code += "; assert 'triton' not in sys.modules, 'triton imported'"
    code += "; assert 'ultralytics_convmixer.nn.dwconv_triton' not in sys.modules, 'kernels imported'"
    run_python(code, check=True)


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
    assert (
        min(block for _, block in dwconv_tiling.FWD_NCHW_CONFIGS) == 256
        and dwconv_tiling.wgrad_nchw_block(13, 2**30) == 32
    )
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
    from ultralytics_convmixer.nn.modules import ConvMixerBackbone

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
    if TORCH_RELEASE >= (2, 12):
        assert rec.reasons == [fast_path_reason(x, rec.dw)] == ["input is on cpu, not CUDA"]
    else:  # torch.compile looks like torch.export before 2.12 (pytorch/pytorch#176347): nn.Conv2d, said so
        assert len(rec.reasons) == 1 and ("torch.export" in rec.reasons[0] or "torch < 2.7" in rec.reasons[0])


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
# A Triton kernel that runs but computes wrong values is caught by the fast path's self-check
# ----------------------------------------------------------------------------------------------------------------------


def _exact_weight_grad(x, grad_y, k, nhwc, with_bias):
    """What ``dwconv_triton.weight_grad`` computes, in float64 and rounded: another summation order than PyTorch's."""
    weight = torch.zeros(x.shape[1], 1, k, k, dtype=torch.float64)
    _, gw, gb = dwconv.reference_grads(grad_y.double(), x.double(), weight, with_bias, (False, True, with_bias))
    return gw.float(), gb.float() if gb is not None else None


@pytest.fixture(autouse=True)
def _no_verdicts_from_other_tests():
    dwconv_selfcheck.forget_cases()
    yield
    dwconv_selfcheck.forget_cases()


def test_each_new_case_is_checked_once_forward_and_backward(monkeypatch):
    kernels = _fake_kernels(weight_grad=_exact_weight_grad)
    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": kernels})
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 6, 9, 11), torch.randn(6, 1, 9, 9), torch.randn(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # right values: no warning
        _grads_of(dwconv.depthwise_conv2d_triton, x, w, b)
        _grads_of(dwconv.depthwise_conv2d_triton, x[:1], w, b)  # another shape: another case
    first, second = dwconv_selfcheck.checked_cases()
    assert (first["device"], first["dtype"], first["layout"], first["shape"], first["k"]) == (
        "cpu", "float32", "contiguous", (2, 6, 9, 11), 9
    )  # fmt: skip
    assert second["shape"] == (1, 6, 9, 11) and first["failed"] is second["failed"] is None
    assert first["forward_error"] < 1e-6 and set(first["backward_errors"]) == {"grad_x", "grad_w", "grad_b"}


def test_a_gradient_that_cancels_to_near_zero_is_no_false_alarm(monkeypatch):
    # Behind a BatchNorm the bias gradient sums terms that cancel: rounding in another order is large next to the
    # near-zero sum, small next to the sum of the terms' magnitudes, which the check measures against.
    kernels = _fake_kernels(weight_grad=_exact_weight_grad)
    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": kernels})
    torch.manual_seed(0)
    x, w, b = torch.randn(4, 8, 16, 16), torch.randn(8, 1, 9, 9), torch.zeros(8, requires_grad=True)
    y = dwconv.depthwise_conv2d_triton(x, w, b)
    (y - y.mean(dim=(0, 2, 3), keepdim=True)).square().sum().backward()  # d/dbias of a centred output: ~0
    (case,) = dwconv_selfcheck.checked_cases()
    assert case["failed"] is None and b.grad.abs().max() < 1e-3


def test_a_wrong_kernel_output_warns_once_returns_pytorchs_and_leaves_the_case_to_conv2d(monkeypatch):
    kernels = _fake_kernels(forward=lambda *args: _fake_forward(*args) * 1.05)
    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": kernels})
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 9, 9)
    with pytest.warns(RuntimeWarning, match=r"self-check failed on cpu float32 contiguous 1x4x8x8, kernel 9 \(forward"):
        y = dwconv.depthwise_conv2d_triton(x, w)
    torch.testing.assert_close(y, dwconv.reference_conv(x, w))
    monkeypatch.setattr(kernels, "forward", _not_reached)  # the case is not given to the kernels again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(dwconv.depthwise_conv2d_triton(x, w), dwconv.reference_conv(x, w))
    assert dwconv.triton_failure() is None  # only this case: the others still run on Triton


def test_nocheck_skips_the_self_check(monkeypatch):
    monkeypatch.setenv(dwconv.ENV_FAST_DWCONV, "all,nocheck")
    kernels = _fake_kernels(forward=lambda *args: _fake_forward(*args) * 1.05)
    monkeypatch.setattr(dwconv, "_triton_state", {"available": True, "kernels": kernels})
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 9, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = dwconv.depthwise_conv2d_triton(x, w)
    torch.testing.assert_close(y, dwconv.reference_conv(x, w) * 1.05)  # the kernels' values, as asked
    assert dwconv_selfcheck.checked_cases() == []
    assert fast_path_reason(FakeCudaTensor((2, 8, 20, 20)), DepthwiseConv2d(8, 3)) is None  # "all" still read

"""The Triton depthwise kernels, checked under Triton's interpreter on the CPU, and run by torch.compile.

Each check runs ``dwconv_interpreter_checks.py`` in a child process with ``TRITON_INTERPRET=1``, so the variable does
not leak into other tests; run that script directly to see the errors.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from conftest import run

HAS_TRITON = importlib.util.find_spec("triton") is not None
CHECKS = Path(__file__).with_name("dwconv_interpreter_checks.py")


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed, so the Triton kernels cannot be checked")
def test_triton_kernels_under_interpreter():
    proc = run([sys.executable, CHECKS], env={"TRITON_INTERPRET": "1"}, timeout=300, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"]
    assert report["triton_failure"] is None, "the kernels failed and the checks ran on the nn.Conv2d fallback"
    assert report["cases"] >= 15


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed, so the Triton kernels cannot be checked")
def test_torch_compile_runs_the_triton_kernels_as_opaque_operators_with_eager_numbers():
    """Under torch.compile (Ultralytics' ``compile=True``) the 9x9 convolutions still take the Triton path.

    torch.export, which traces the same way, gets a standard convolution instead.
    """
    proc = run([sys.executable, CHECKS, "compile"], env={"TRITON_INTERPRET": "1"}, timeout=600, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["triton_failure"] is None
    depthwise_layers = 4
    for case in report["runs"]:  # two input sizes: the second compiles with dynamic shapes
        # One graph each way, every 9x9 convolution our operator, none left to aten's convolution.
        assert case["graphs"] == {"forward": 1, "backward": 1}, case
        assert case["forward_ops"] == {"ultralytics_convmixer.depthwise_conv2d.default": depthwise_layers}, case
        assert case["backward_ops"] == {"ultralytics_convmixer.depthwise_conv2d_backward.default": depthwise_layers}
        assert case["kernel_calls"] == {"forward": depthwise_layers, "backward": depthwise_layers}, case
        assert case["output_error"] < 1e-5 and case["gradient_errors"] == {}, case
    assert report["frozen_input_grad_error"] < 1e-5  # frozen weights: the operator's two empty gradients
    assert report["export_ops"] == ["aten.conv2d.default"]

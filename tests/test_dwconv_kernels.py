"""The Triton depthwise kernels, checked under Triton's interpreter on the CPU, and run by torch.compile.

Each check runs ``dwconv_interpreter_checks.py`` in a child process with ``TRITON_INTERPRET=1``, so the variable does
not leak into other tests; run that script directly to see the errors.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import run

HAS_TRITON = importlib.util.find_spec("triton") is not None


def _triton_release() -> tuple:
    from importlib.metadata import version

    return tuple(int(x) for x in version("triton").split(".")[:2]) if HAS_TRITON else (0, 0)


# Triton's CPU interpreter runs these checks from 3.4 (torch 2.8): before, its autotuner needs a GPU driver and its
# interpreter miscomputes with NumPy 2.
pytestmark = pytest.mark.skipif(
    _triton_release() < (3, 4), reason="the kernels are checked under the interpreter of Triton 3.4 or newer"
)
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


@pytest.fixture(scope="module")
def broken_kernels():
    """What ``dwconv_interpreter_checks.py selfcheck`` saw with a kernel 5% off: per broken entry point, a report."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed, so the Triton kernels cannot be checked")
    proc = run([sys.executable, CHECKS, "selfcheck"], env={"TRITON_INTERPRET": "1"}, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("broken, what", [("forward", "forward"), ("weight_grad", "grad_w")])
def test_a_kernel_that_computes_wrong_values_is_caught_by_its_self_check_and_training_goes_on_right(
    broken_kernels, broken, what
):
    report = broken_kernels[broken]
    assert report["fast_path_before"] is None  # the 9x9 convolution took the Triton kernels
    (warning,) = report["warnings"]  # once, for the one case the block has
    assert "self-check failed on cpu float32 contiguous 2x20x11x13, kernel 9" in warning
    assert re.search(rf"\({what}: relative error \d\.\d\de-0[12] > 1e-04\)", warning), warning
    (case,) = report["cases"]
    assert case["failed"].startswith(f"{what}: relative error") and case["shape"] == [2, 20, 11, 13]
    assert "self-check failed for this case" in report["fast_path_after"]  # nn.Conv2d from then on
    assert report["parameter_error"] < 1e-6  # both steps trained as nn.Conv2d trains

"""Export settings for the plugin's models where Ultralytics' defaults lose accuracy on them.

ONNX INT8: Ultralytics quantizes with ONNX Runtime's static quantization, which sets each activation's range to its
min and max over the calibration images. For the quick-start ConvMixer that lost 0.004 mAP50-95 where stock lost
nothing; ranges at the 99.999th percentile (ONNX Runtime's ``CalibrationMethod.Percentile``), which leave the rarest
values clipped and give the rest finer steps, lost nothing (``docs/deploy.md``, "INT8"). Stock models are exported
exactly as Ultralytics exports them.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

from torch import nn

from ..nn.modules import ConvMixerBackbone, ConvMixerBlock


def is_convmixer_model(model: Any) -> bool:
    """Whether ``model`` holds a plugin ConvMixer layer (a ``ConvMixerBackbone`` or a ``ConvMixerBlock`` in a YAML)."""
    plugin_layers = (ConvMixerBackbone, ConvMixerBlock)
    return isinstance(model, nn.Module) and any(isinstance(m, plugin_layers) for m in model.modules())


@contextlib.contextmanager
def percentile_onnx_calibration() -> Iterator[None]:
    """Inside the block, ONNX Runtime's ``quantize_static`` calibrates activation ranges by percentile, not min/max."""
    try:
        import onnxruntime.quantization as ortq
    except ImportError:  # no ONNX Runtime: Ultralytics' own message says so when the export needs it
        yield
        return
    original = ortq.quantize_static

    @functools.wraps(original)
    def quantize_static(*args, **kwargs):
        try:
            return original(*args, **{**kwargs, "calibrate_method": ortq.CalibrationMethod.Percentile})
        except ValueError as e:  # an activation with too narrow a range for a histogram (an untrained layer)
            from ultralytics.utils import LOGGER

            LOGGER.warning(f"ultralytics-convmixer: percentile INT8 calibration failed ({e}); using min/max")
            reader = args[2] if len(args) > 2 else kwargs.get("calibration_data_reader")
            if hasattr(reader, "rewind"):  # the failed pass read every calibration image
                reader.rewind()
            return original(*args, **kwargs)

    ortq.quantize_static = quantize_static
    try:
        yield
    finally:
        ortq.quantize_static = original


def exporter_call(original: Callable) -> Callable:
    """``Exporter.__call__`` that exports plugin models to ONNX with percentile INT8 calibration (see the module)."""

    @functools.wraps(original)
    def call(self, model=None, *args, **kwargs):
        if str(getattr(self.args, "format", "")).lower() == "onnx" and is_convmixer_model(model):
            with percentile_onnx_calibration():
                return original(self, model, *args, **kwargs)
        return original(self, model, *args, **kwargs)

    call._convmixer = True
    return call

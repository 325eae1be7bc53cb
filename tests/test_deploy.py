"""Deployment: benchmarks/deploy.py on untrained models at a tiny size (exports match PyTorch, latency has a ratio,
failures report), and the INT8 calibration the plugin chooses for its own models."""

import json
import logging
import sys
from pathlib import Path

import pytest

from conftest import real_dataset, run, ultralytics_log

DEPLOY = Path(__file__).resolve().parents[1] / "benchmarks" / "deploy.py"


def test_deploy_exports_both_models_checks_them_and_reports_what_cannot_export(tmp_path, tmp_path_factory):
    data, out = real_dataset(tmp_path_factory, "coco8"), tmp_path / "deploy.json"
    # hailo needs Hailo's compiler, which no package registry has: it must be reported, not stop the run
    args = ["--untrained", "--formats", "torchscript", "onnx", "hailo", "--imgsz", "64", "--data", data,
            "--runs", "3", "--warmup", "1", "--repeats", "2", "--check-images", "2", "--workdir", tmp_path / "work",
            "--json", out]  # fmt: skip
    result = run([sys.executable, DEPLOY, *args], env={"YOLO_AUTOINSTALL": "false"}, timeout=600, check=True)
    rows = {(r["format"], r["variant"]): r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == [("pytorch", "fp32"), ("torchscript", "fp32"), ("torchscript", "fp16"), ("onnx", "fp32"),
                          ("onnx", "fp32 dynamic"), ("onnx", "fp16"), ("onnx", "int8"), ("hailo", "int8")]  # fmt: skip
    for key in (("torchscript", "fp32"), ("onnx", "fp32"), ("onnx", "fp32 dynamic")):
        for name, model in rows[key]["models"].items():
            assert model["exported"] and not model.get("errors"), (key, name, model)
            assert model["err_over_tolerance"] <= 1, (key, name, model)  # what tests/checks.py accepts
            assert model["map50_95"] is not None and abs(model["map_change"]) < 0.05, (key, name, model)
        latency = rows[key]["latency"]
        assert latency["stock_ms"] > 0 and latency["convmixer_ms"] > 0 and latency["ratio"] > 0, key
        assert len(latency["repeat_ms"]["convmixer"]) == 2
    for model in rows[("onnx", "int8")]["models"].values():  # calibrated on coco8's val images; runs
        assert model["exported"] and model["max_abs_err"] >= 0
    for model in rows[("torchscript", "fp16")]["models"].values():  # Ultralytics' own refusal, recorded
        assert not model["exported"] and "GPU" in model["errors"]["export"]
    for model in rows[("hailo", "int8")]["models"].values():
        assert not model["exported"] and "Hailo" in model["errors"]["export"]
    assert rows[("hailo", "int8")]["latency"] is None
    tables = result.stdout.split("# Summary")[-1]
    assert "## onnx" in tables and "| fp32 dynamic | yes |" in tables and "| int8 | no: ImportError: Hailo" in tables


def test_onnx_int8_calibrates_plugin_models_by_percentile_and_stock_models_as_ultralytics_does(
    tmp_path_factory, tmp_path, monkeypatch
):
    ortq = pytest.importorskip("onnxruntime.quantization")
    from ultralytics import YOLO

    data, calls, original = real_dataset(tmp_path_factory, "coco8"), [], ortq.quantize_static
    monkeypatch.chdir(tmp_path)  # a YAML model exports into the working directory

    def spy(model_input, model_output, *args, **kwargs):
        calls.append((Path(model_input).stem, kwargs.get("calibrate_method", ortq.CalibrationMethod.MinMax)))
        return original(model_input, model_output, *args, **kwargs)

    monkeypatch.setattr(ortq, "quantize_static", spy)
    with ultralytics_log(logging.WARNING) as warnings:
        for name in ("yolov8n", "yolov8n-convmixer"):
            exported = YOLO(f"{name}.yaml").export(format="onnx", int8=True, data=str(data), imgsz=64, batch=1)
            assert Path(exported).is_file() and "int8" in Path(exported).name, exported
    if not calls:
        pytest.skip("this Ultralytics release does not quantize ONNX exports with ONNX Runtime")
    assert calls[0] == ("yolov8n", ortq.CalibrationMethod.MinMax) and calls[1][0] == "yolov8n-convmixer", calls
    assert calls[1][1] == ortq.CalibrationMethod.Percentile, calls
    if len(calls) == 3:  # untrained layers can leave an activation too narrow for a histogram: min/max then, said so
        assert calls[2] == ("yolov8n-convmixer", ortq.CalibrationMethod.MinMax)
        assert any("percentile INT8 calibration failed" in w for w in warnings), warnings
    assert ortq.quantize_static is spy  # put back after the export

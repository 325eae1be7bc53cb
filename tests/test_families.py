"""YOLO11 and YOLO26 necks and heads on the ConvMixer backbone: train, load fresh, predict, resume and export.

On CPU at tiny image sizes, on the real datasets beside the checkout (and generated shapes sets where there are none);
the child processes never import the plugin, so they prove that the start-up hook registers it there too.
"""

import copy

import numpy as np
import pytest
import torch
from ultralytics import YOLO

from ultralytics_convmixer.integration.resources import FAMILY_TASKS, TASK_SUFFIXES

from checks import assert_export_matches, assert_same_predictions, predict_in_fresh_process, with_running_statistics
from conftest import (
    TRAIN_ONE_EPOCH,
    kill_and_resume,
    last_epoch_metrics,
    real_dataset,
    run_python,
    tiny_classify_data,
)

pytestmark = pytest.mark.slow

# The real dataset of each task and the metric columns its results.csv must hold.
REAL_DATA = {
    "detect": ("coco8", {"metrics/mAP50-95(B)", "train/box_loss"}),
    "segment": ("coco8-seg", {"metrics/mAP50-95(M)", "train/seg_loss"}),
    "pose": ("coco8-pose", {"metrics/mAP50-95(P)", "train/pose_loss"}),
    "obb": ("dota8", {"metrics/mAP50-95(B)", "train/box_loss"}),
}
NEW_FAMILIES = ("yolo11", "yolo26")


@pytest.mark.parametrize("family", NEW_FAMILIES)
@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb", "classify"])
def test_each_task_trains_one_epoch_and_its_checkpoint_loads_and_predicts_in_a_fresh_process(
    tmp_path_factory, tmp_path, family, task
):
    model = f"{family}n-convmixer{TASK_SUFFIXES[task]}.yaml"
    if task == "classify":
        data, columns = tiny_classify_data(tmp_path), {"metrics/accuracy_top1", "train/loss"}
        image = next((data.parent / "shapes-classify" / "val").rglob("*.jpg"))
    else:
        name, columns = REAL_DATA[task]
        data = real_dataset(tmp_path_factory, name)
        image = next((data.parent / "images" / "val").glob("*.jpg"))
    imgsz = 128 if task == "obb" else 64  # dota8's 1024 px aerial crops need a little more resolution
    YOLO(model).train(data=str(data), project=str(tmp_path), name="run", **{**TRAIN_ONE_EPOCH, "imgsz": imgsz})
    row = last_epoch_metrics(tmp_path / "run")
    assert columns <= set(row) and row["epoch"] == 1 and all(np.isfinite(row[c]) for c in columns)
    best = tmp_path / "run" / "weights" / "best.pt"
    fresh = predict_in_fresh_process(best, image)
    assert (fresh["task"], fresh["backbone"]) == (task, "ConvMixerBackbone")
    assert_same_predictions(fresh, best, image)


GENERATED_DATA_METRICS = {
    "semantic": {"metrics/mIoU", "metrics/pixel_acc"},
    "depth": {"metrics/delta1", "metrics/abs_rel", "metrics/rmse"},
}


@pytest.mark.parametrize("task, columns", GENERATED_DATA_METRICS.items())
def test_yolo26_semantic_and_depth_train_on_their_shapes_sets_and_load_and_predict_fresh(tmp_path, task, columns):
    import yaml

    from ultralytics_convmixer.integration.resources import dataset_yaml

    data = yaml.safe_load(dataset_yaml(f"shapes-{task}.yaml").read_text())
    data["path"] = str(tmp_path / f"shapes-{task}")  # generated there on first use by the YAML's download hook
    data["generator"].update(n_train=8, n_val=4, imgsz=64)
    data_file = tmp_path / f"shapes-{task}.yaml"
    data_file.write_text(yaml.safe_dump(data, sort_keys=False))
    YOLO(f"yolo26n-convmixer{TASK_SUFFIXES[task]}.yaml").train(data=str(data_file), project=str(tmp_path), name="run",
                                                               **TRAIN_ONE_EPOCH)  # fmt: skip
    row = last_epoch_metrics(tmp_path / "run")
    assert columns <= set(row) and row["epoch"] == 1 and all(np.isfinite(row[c]) for c in columns)
    image = next((tmp_path / f"shapes-{task}" / "images" / "val").glob("*.jpg"))
    best = tmp_path / "run" / "weights" / "best.pt"
    fresh = predict_in_fresh_process(best, image)
    head = {"semantic": "SemanticSegment", "depth": "Depth"}[task]
    assert (fresh["task"], fresh["backbone"], fresh["head"]) == (task, "ConvMixerBackbone", head)
    assert_same_predictions(fresh, best, image)


def test_yolo26_checkpoint_keeps_both_heads_and_predicts_nms_free_in_a_fresh_process(coco8, tmp_path):
    YOLO("yolo26n-convmixer.yaml").train(data=str(coco8), project=str(tmp_path), name="e2e", **TRAIN_ONE_EPOCH)
    image = next((coco8.parent / "images" / "val").glob("*.jpg"))
    code = f"""
        from ultralytics import YOLO
        model = YOLO({str(tmp_path / "e2e" / "weights" / "best.pt")!r})
        head = model.model.model[-1]
        print("HEAD", type(head).__name__, head.reg_max, head.one2one_cv2 is not None)
        result = model.predict({str(image)!r}, imgsz=64, nms=False, conf=0.0, device="cpu", verbose=False)[0]
        print("NMS-FREE", model.predictor.model.end2end, len(result.boxes))
        """
    result = run_python(code, check=True)
    assert "HEAD Detect 1 True" in result.stdout  # reg_max 1 from the YAML's top level, the one-to-one head kept
    # Ultralytics' nms=False runs the one-to-one head and keeps its top max_det boxes without NMS: at 64 px that is
    # every one of its 8 * 8 + 4 * 4 + 2 * 2 anchors
    assert "NMS-FREE True 84" in result.stdout


def test_yolo_cli_resumes_a_killed_yolo26_run(coco8, tmp_path):
    kill_and_resume("yolo26n-convmixer.yaml", coco8, tmp_path, epochs=2)


@pytest.mark.parametrize(
    "name", [f"{f}n-convmixer{TASK_SUFFIXES[t]}.yaml" for f in NEW_FAMILIES for t in FAMILY_TASKS[f]]
)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_every_new_yaml_exports_and_the_export_computes_what_pytorch_does(fmt, name):
    """YOLO26's end-to-end heads export their top-k detections; the reference is the head in the same export mode."""
    torch.manual_seed(0)
    model = YOLO(name)
    with_running_statistics(model.model)
    exported = model.export(format=fmt, imgsz=64, device="cpu")
    reference = copy.deepcopy(model.model).float().eval()  # unfused: the folded BatchNorms must compute what BN does
    reference.model[-1].export, reference.model[-1].format = True, fmt
    if fmt == "onnx":
        import onnx

        ops = {node.op_type for node in onnx.load(exported).graph.node}
        assert "Conv" in ops and "BatchNormalization" not in ops and not any(op.startswith("ConvMixer") for op in ops)
    assert_export_matches(exported, reference, torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    "task, error",
    [("semantic", "Please supply a segment dataset, not a detect dataset"), ("depth", "missing depth map")],
)
def test_semantic_and_depth_models_on_detect_data_fail_before_any_epoch_naming_what_is_missing(coco8, tmp_path, task,
                                                                                               error):  # fmt: skip
    model = YOLO(f"yolo26n-convmixer{TASK_SUFFIXES[task]}.yaml")
    with pytest.raises((ValueError, RuntimeError), match=error):
        model.train(data=str(coco8), project=str(tmp_path), name="run", **TRAIN_ONE_EPOCH)
    assert not (tmp_path / "run" / "results.csv").exists() and not (tmp_path / "run" / "weights" / "last.pt").exists()

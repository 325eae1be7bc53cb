"""A pretrained start at every scale: a classify model's backbone is its family's detect backbone, `pretrained=`
carries it by value, and a checkpoint that fits no backbone tensor says so."""

from pathlib import Path

import pytest
import torch
import ultralytics
from ultralytics import YOLO
from ultralytics.nn.tasks import parse_model, yaml_model_load

from ultralytics_convmixer.integration.planner import Planner, _release
from ultralytics_convmixer.integration.resources import FAMILY_TASKS, SCALES, TASK_SUFFIXES, model_yaml

from conftest import TRAIN_ONE_EPOCH, real_dataset, tiny_classify_data, ultralytics_log

BACKBONE_TASKS = ("detect", "segment", "pose", "obb")


def layer0_tensors(name: str) -> dict:
    """Names and shapes of the tensors of layer 0 (the ConvMixerBackbone) of a packaged YAML at its scale.

    Built by the planner, which builds the plugin rows ``parse_model`` puts into the model (native rows are not built).
    """
    plan = Planner(yaml_model_load(name), 3, parse_model)
    return {k: tuple(v.shape) for k, v in plan.built[0].state_dict().items()}


@pytest.mark.parametrize("family", FAMILY_TASKS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_classify_model_has_the_detect_segment_pose_and_obb_backbone(family, scale):
    if family == "yolo26" and _release(ultralytics.__version__) < _release("8.4.0"):
        pytest.skip("YOLO26 needs Ultralytics 8.4.0")
    classify = layer0_tensors(f"{family}{scale}-convmixer-cls.yaml")
    assert len(classify) > 50
    for task in BACKBONE_TASKS:
        assert layer0_tensors(f"{family}{scale}-convmixer{TASK_SUFFIXES[task]}.yaml") == classify, task


@pytest.mark.slow
@pytest.mark.parametrize("task, dataset", [("detect", "coco8"), ("segment", "coco8-seg")])
def test_pretrained_carries_every_backbone_tensor_of_a_classify_training_by_value(tmp_path_factory, tmp_path, task,
                                                                                  dataset):  # fmt: skip
    YOLO("yolov8n-convmixer-cls.yaml").train(data=str(tiny_classify_data(tmp_path)), project=str(tmp_path),
                                             name="cls", **TRAIN_ONE_EPOCH)  # fmt: skip
    pretrained = tmp_path / "cls" / "weights" / "best.pt"
    classify_backbone = YOLO(str(pretrained)).model.model[0].state_dict()
    started = {}
    model = YOLO(f"yolov8n-convmixer{TASK_SUFFIXES[task]}.yaml")
    model.add_callback(  # copies: the training updates the parameters in place
        "on_pretrain_routine_end",
        lambda t: started.update({k: v.clone() for k, v in t.model.model[0].state_dict().items()}),
    )
    with ultralytics_log() as log:
        model.train(data=str(real_dataset(tmp_path_factory, dataset)), pretrained=str(pretrained),
                    project=str(tmp_path), name=task, **TRAIN_ONE_EPOCH)  # fmt: skip
    assert started.keys() == classify_backbone.keys()
    for key, value in classify_backbone.items():  # the training starts from the classify weights, not near them
        assert torch.equal(started[key].float(), value.float()), key
    assert not [m for m in log if "ConvMixerBackbone" in m and "pretrained" in m]  # no warning: all of it carried


def loaded_with_warnings(target: str, source, pt_path: str = "source.pt") -> list:
    """Ultralytics' warnings while ``target``'s model loads ``source``'s weights (a model, as ``pretrained=`` does)."""
    import logging

    source.pt_path = pt_path  # as Ultralytics' load_checkpoint names a checkpoint's model
    with ultralytics_log(logging.WARNING) as warnings:
        YOLO(target).model.load(source, verbose=False)
    return [w for w in warnings if "ConvMixerBackbone (layer 0)" in w]


def test_weights_of_the_same_model_give_the_whole_backbone_and_no_warning():
    assert loaded_with_warnings("yolov8n-convmixer.yaml", YOLO("yolov8n-convmixer-seg.yaml").model) == []


def test_weights_of_another_scale_are_named_and_said_to_miss_the_backbone():
    (warning,) = loaded_with_warnings("yolov8n-convmixer.yaml", YOLO("yolov8s-convmixer.yaml").model, "s/best.pt")
    assert "s/best.pt: none of the 144 tensors of this model's ConvMixerBackbone (layer 0) are in it" in warning
    assert "yolov8s-convmixer.yaml at scale 's', a hierarchical ConvMixerBackbone of 256 channels x 5 blocks" in warning
    assert "this model is yolov8n-convmixer.yaml at scale 'n'" in warning and "another family or scale" in warning


def test_weights_of_another_family_at_the_same_scale_are_said_to_fit_only_part_of_the_backbone():
    (warning,) = loaded_with_warnings("yolov8n-convmixer.yaml", YOLO("yolo11n-convmixer.yaml").model)
    assert "source.pt: only " in warning and "partly from random weights" in warning
    assert "128 channels x 6 blocks" in warning and "128 channels x 5 blocks" in warning  # yolo11's P3 and ours


def test_weights_of_a_stock_model_or_an_isotropic_trunk_are_said_to_be_another_design():
    (stock,) = loaded_with_warnings("yolov8n-convmixer.yaml", YOLO("yolov8n.yaml").model)
    assert "it is yolov8n.yaml at scale 'n', whose layer 0 is a Conv;" in stock and "another backbone design" in stock
    isotropic = Path("yolov8n-convmixer-iso.yaml")  # the packaged YAML with the paper's isotropic trunk as backbone
    isotropic.write_text(model_yaml("yolov8n-convmixer.yaml").read_text().replace("3, hierarchical,", "3, isotropic8,"))
    (trunk,) = loaded_with_warnings("yolov8n-convmixer.yaml", YOLO(str(isotropic)).model)
    assert "another backbone design (isotropic8, not hierarchical)" in trunk

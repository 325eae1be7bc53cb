"""Bad input gets an error naming its file and culprit: wrong plugin rows (layer, module, argument, before any
tensor) and classify data YAMLs that Ultralytics would misread."""

import itertools
import logging

import pytest
import torch
from ultralytics.nn.tasks import ClassificationModel, DetectionModel

from conftest import ultralytics_log

HEAD = """
head:
  - [[1, 2, 3], 1, Detect, [nc]]
"""


def backbone(row: str, index_channels=(256, 512, 1024)) -> str:
    p3, p4, p5 = index_channels
    return f"""
nc: 2
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - {row}
  - [0, 1, Index, [{p3}, 0]]
  - [0, 1, Index, [{p4}, 1]]
  - [0, 1, Index, [{p5}, 2]]
"""


GOOD_BACKBONE = "[-1, 1, ConvMixerBackbone, [[256, 512, 1024], [1, 1, 1], 7, hierarchical]]"
CASES = {
    "even kernel": (backbone(GOOD_BACKBONE.replace(" 7,", " 8,")) + HEAD, 0, "ConvMixerBackbone", "k must be an odd"),
    "non-positive channels": (
        backbone("[-1, 1, ConvMixerBackbone, [[256, 0, 1024], [1, 1, 1], 7]]") + HEAD,
        0,
        "ConvMixerBackbone",
        r"channels\[1\] must be an integer >= 1",
    ),
    "unknown design": (backbone(GOOD_BACKBONE.replace("hierarchical", "pyramid")) + HEAD, 0, "ConvMixerBackbone",
                       "design must be one of"),
    "unknown activation": (backbone(GOOD_BACKBONE.replace("hierarchical", "hierarchical, gleu")) + HEAD, 0,
                           "ConvMixerBackbone", "act must be one of"),
    "shortcut not a bool": (backbone(GOOD_BACKBONE.replace("hierarchical", "hierarchical, gelu, yes please")) + HEAD,
                            0, "ConvMixerBackbone", "shortcut must be true or false, got 'yes please'"),
    "unknown order": (backbone(GOOD_BACKBONE.replace("hierarchical", "hierarchical, gelu, true, bn-first")) + HEAD,
                      0, "ConvMixerBackbone",
                      "order must be one of .'conv-act-bn', 'conv-bn-act', 'conv-bn-add-act'., got 'bn-first'"),
    "too many args": (backbone(GOOD_BACKBONE.replace("hierarchical", "hierarchical, relu, true, conv-bn-act, 8, 9"))
                           + HEAD, 0, "ConvMixerBackbone", r"takes at most 8 arguments \['channels', 'depths'"),
    "trunk width on a hierarchical backbone": (
        backbone(GOOD_BACKBONE.replace("hierarchical", "hierarchical, gelu, true, conv-bn-act, 64")) + HEAD, 0,
        "ConvMixerBackbone", "dim is the width of an isotropic trunk; the hierarchical design has none"),
    "repeats on the backbone": (backbone(GOOD_BACKBONE.replace("-1, 1,", "-1, 2,")) + HEAD, 0, "ConvMixerBackbone",
                                r"repeats \(n\) must be 1"),
    "Index channels that match no scaling of the level": (
        backbone(GOOD_BACKBONE, (256, 300, 1024)) + HEAD, 2, "Index",
        r"selects P4 .* which has 128 channels at scale 'n', but the row says 300; write 512, that level's"),
    "Index level out of range": (
        backbone(GOOD_BACKBONE).replace("[1024, 2]", "[1024, 3]") + HEAD, 3, "Index", "index must be 0..2"),
}  # fmt: skip

STAGE_YAML = """
nc: 2
backbone:
  - [-1, 1, PatchEmbed, [32, 4]]
  - [-1, 1, Conv, [64, 3, 2]]
  - {row}
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, Conv, [64, 3, 2]]
head:
  - [[2, 3, 4], 1, Detect, [nc]]
"""
STAGE_CASES = {
    "list from for a single-input module": ("[[-1, 0], 1, ConvMixerStage, [64, 7]]", "from must be a single layer"),
    "wrong argument type": ("[-1, 1, ConvMixerStage, [64, nine]]", "k must be an odd integer >= 3.*'nine'"),
    "float channels": ("[-1, 1, ConvMixerStage, [64.5, 7]]", "c2 must be an integer >= 1, got 64.5"),
    "negative repeats": ("[-1, -1, ConvMixerStage, [64, 7]]", r"repeats \(n\) must be an integer >= 1"),
    "missing channels": ("[-1, 1, PatchEmbed, []]", "missing argument c2"),
    "block given channels": ("[-1, 1, ConvMixerBlock, [64, 7, gelu, true, conv-bn-act]]",
                             r"takes at most 4 arguments \['k', 'act', 'shortcut', 'order'\]"),
    "misspelled module": ("[-1, 1, ConvMixerStag, [64, 7]]", "unknown module 'ConvMixerStag' .did you mean Con"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_backbone_rows_name_file_layer_module_and_argument(tmp_path, case):
    text, layer, module, message = CASES[case]
    path = tmp_path / "bad-model.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad-model\.yaml: layer {layer} \({module}\): {message}"):
        DetectionModel(str(path), verbose=False)


@pytest.mark.parametrize("case", STAGE_CASES)
def test_bad_stage_rows_name_file_layer_module_and_argument(tmp_path, case):
    row, message = STAGE_CASES[case]
    path = tmp_path / "bad-stage.yaml"
    path.write_text(STAGE_YAML.format(row=row))
    module = row.split(",")[2].strip() if not row.startswith("[[") else "ConvMixerStage"
    prefix = rf"bad-stage\.yaml: layer 2 \({module}\): " if "unknown module" not in message else r"layer 2: "
    with pytest.raises(ValueError, match=prefix + message):
        DetectionModel(str(path), verbose=False)


def test_a_native_row_fed_the_backbone_list_is_told_to_use_index(tmp_path):
    path = tmp_path / "bad-list.yaml"
    path.write_text(backbone(GOOD_BACKBONE) + "\nhead:\n  - [0, 1, Classify, [nc]]\n")
    with pytest.raises(ValueError, match=r"layer 4 \(Classify\): takes the list output .* with an Index row"):
        ClassificationModel(str(path), verbose=False)


NATIVE_THEN_STAGE = """
nc: {nc}
scales:
  n: [0.33, 0.25, 1024]
backbone:
{rows}
head:
  - [-1, 1, Classify, [nc]]
"""


def class_scores(model, x: torch.Tensor) -> torch.Tensor:
    """A classification model's scores (Ultralytics 8.4 returns them with the logits in eval mode)."""
    out = model(x)
    return out[0] if isinstance(out, (list, tuple)) else out


@pytest.mark.smoke  # 8.3 leaves a row whose channels equal nc unscaled, 8.4 scales it: the plugin follows either
def test_a_stage_after_a_row_with_nc_channels_reads_the_channels_that_row_really_has(tmp_path):
    path = tmp_path / "yolov8n-nc-row.yaml"
    rows = "  - [-1, 1, Conv, [64, 3, 2]]\n  - [-1, 1, ConvMixerStage, [128, 3]]"
    path.write_text(NATIVE_THEN_STAGE.format(nc=64, rows=rows))
    model = ClassificationModel(str(path), verbose=False).eval()
    conv, stage = model.model[0], model.model[1]
    assert stage.transition.conv.in_channels == conv.conv.out_channels
    assert class_scores(model, torch.zeros(1, 3, 32, 32)).shape == (1, 64)


def test_a_stage_after_resnet_layers_gets_their_expanded_channels(tmp_path):
    path = tmp_path / "resnet-then-stage.yaml"
    rows = "  - [-1, 1, ResNetLayer, [3, 16, 1, True, 1]]\n  - [-1, 1, ResNetLayer, [16, 16, 2, False, 1]]\n"
    rows += "  - [-1, 1, ConvMixerStage, [64, 3]]"  # the second ResNetLayer gives 16 * 4 channels
    path.write_text(NATIVE_THEN_STAGE.format(nc=2, rows=rows).replace("scales:\n  n: [0.33, 0.25, 1024]\n", ""))
    model = ClassificationModel(str(path), verbose=False).eval()
    assert isinstance(model.model[2].transition, torch.nn.Identity)  # 64 in, 64 out: no channel transition
    assert class_scores(model, torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_a_plugin_row_after_a_layer_whose_channels_it_cannot_follow_says_so(tmp_path):
    path = tmp_path / "cblinear-then-stage.yaml"
    rows = "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, CBLinear, [[16, 32]]]\n  - [-1, 1, ConvMixerStage, [64, 3]]"
    path.write_text(NATIVE_THEN_STAGE.format(nc=2, rows=rows))
    with pytest.raises(ValueError, match=r"layer 2 \(ConvMixerStage\): cannot tell the channels of its input"):
        ClassificationModel(str(path), verbose=False)


def test_a_scale_letter_the_yaml_has_no_scale_for_names_the_file_and_its_scales(tmp_path):
    path = tmp_path / "yolov8x-small.yaml"  # x picks scale x, which this YAML lacks
    path.write_text(backbone(GOOD_BACKBONE) + HEAD)
    with pytest.raises(ValueError, match=r"yolov8x-small\.yaml: scale 'x' .* is not one of its scales \['n'\]"):
        DetectionModel(str(path), verbose=False)


def test_a_classify_data_yaml_naming_split_folders_ultralytics_would_not_read_says_so(tmp_path):
    import cv2
    import numpy as np
    from ultralytics.data.utils import check_cls_dataset

    for split in ("training", "validation", "valid"):  # class folders, so no error would mean classes made of splits
        (tmp_path / "mycls" / split / "a").mkdir(parents=True)
    data = tmp_path / "mycls.yaml"
    data.write_text(f"path: {tmp_path / 'mycls'}\ntrain: training\nval: validation\nnames: [a]\n")
    with pytest.raises(ValueError, match=r"mycls\.yaml: 'train: training' is not supported .* set 'train: train'"):
        check_cls_dataset(str(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mycls", "mycls.yaml"]  # no split copy was made
    (tmp_path / "mycls" / "training").rename(tmp_path / "mycls" / "train")  # as asked: now it is read as written
    data.write_text(f"path: {tmp_path / 'mycls'}\ntrain: train/\nval: validation\ntest:\nnames: [a]\n")
    for split in ("train", "validation"):
        cv2.imwrite(str(tmp_path / "mycls" / split / "a" / "x.jpg"), np.zeros((8, 8, 3), np.uint8))
    dataset = check_cls_dataset(str(data))
    assert dataset["names"] == {0: "a"} and dataset["val"] == tmp_path / "mycls" / "validation"


def test_a_classify_data_yaml_whose_names_are_not_its_class_folders_is_warned_about(tmp_path):
    import cv2
    import numpy as np
    from ultralytics.data.utils import check_cls_dataset

    for split, name in itertools.product(("train", "val"), ("cat", "dog")):
        (tmp_path / "pets" / split / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "pets" / split / name / "x.jpg"), np.zeros((8, 8, 3), np.uint8))
    data = tmp_path / "pets.yaml"
    with ultralytics_log(logging.WARNING) as warnings:
        for names in ("[cat, dog]", "{0: cat, 1: dog}", "[dog, cat]"):
            data.write_text(f"path: {tmp_path / 'pets'}\ntrain: train\nval: val\nnames: {names}\n")
            assert check_cls_dataset(str(data))["names"] == {0: "cat", 1: "dog"}  # the folders decide
    (warning,) = [w for w in warnings if "class folders" in w]  # only for the names in another order
    assert f"{data}: its names {{0: 'dog', 1: 'cat'}} are not the class folders {{0: 'cat', 1: 'dog'}}" in warning

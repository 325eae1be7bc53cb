"""Every packaged YAML at every scale: builds, runs, reports GFLOPs, fuses, and fits the stock YOLOv8 budget."""

from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops

from ultralytics_convmixer.modules import ConvMixerBackbone
from ultralytics_convmixer.resources import SCALES, TASK_SUFFIXES, model_yamls

from conftest import ultralytics_log

MODELS = [(f"yolov8{s}-convmixer{suffix}.yaml", task, s) for task, suffix in TASK_SUFFIXES.items() for s in SCALES]


def first_tensor(out):
    """Eval outputs are a tensor or (tensor, extras) depending on the head; return the predictions tensor."""
    while isinstance(out, (list, tuple)):
        out = out[0]
    return out


def test_one_packaged_yaml_per_task():
    expected = sorted(f"yolov8-convmixer{suffix}.yaml" for suffix in TASK_SUFFIXES.values())
    assert sorted(p.name for p in model_yamls()) == expected


@pytest.mark.smoke
@pytest.mark.parametrize("name, task, scale", MODELS)
def test_builds_and_runs_forward_at_small_large_and_non_square_sizes(name, task, scale):
    model = YOLO(name)
    assert model.task == task
    net = model.model.eval()
    assert isinstance(net.model[0], ConvMixerBackbone)
    assert net.yaml["scale"] == scale
    with torch.no_grad():
        for h, w in [(32, 32), (64, 64), (256, 256), (96, 160)]:
            out = first_tensor(net(torch.zeros(1, 3, h, w)))
            if task == "classify":
                assert out.shape == (1, net.yaml["nc"])
            else:  # (batch, box + class (+ mask/keypoint/angle) channels, anchors at strides 8, 16, 32)
                assert out.shape[0] == 1 and out.shape[2] == sum((h // s) * (w // s) for s in (8, 16, 32))
    if task != "classify":
        assert net.stride.tolist() == [8.0, 16.0, 32.0]


@pytest.mark.smoke  # also on 8.3, whose fuse stops once fewer than 10 BatchNorms are left
@pytest.mark.parametrize("name, task, scale", [m for m in MODELS if m[2] == "n"])
def test_gflops_are_nonzero_and_fuse_folds_every_batchnorm_keeping_outputs(name, task, scale):
    net = YOLO(name).model
    net.train()
    with torch.no_grad():  # a few training-mode passes give the BatchNorms statistics that are not the identity
        for _ in range(2):
            net(torch.rand(2, 3, 64, 96))
    net.eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = first_tensor(net(x))
        assert get_flops(net, 224 if task == "classify" else 640) > 0
        net.fuse(verbose=False)
        after = first_tensor(net(x))
    # Ultralytics' fuse folds its own layers; the plugin's wrapper folds the backbone's (conv -> BN -> act order).
    assert not [n for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_layer_table_shows_plugin_module_names_and_real_arguments():
    from ultralytics.nn.tasks import DetectionModel

    with ultralytics_log() as lines:
        DetectionModel("yolov8s-convmixer.yaml", verbose=True)
    row0 = next(line for line in lines if line.startswith("  0 "))
    assert "ultralytics_convmixer.modules.ConvMixerBackbone" in row0
    # scaled by s: width 0.5, depth 0.33
    assert "[3, [256, 384, 512], [5, 3, 2], 3, 'hierarchical', 'silu', True, 'conv-bn-act']" in row0
    assert not any("conv.Index" in line and line.startswith("  0 ") for line in lines)


def test_embed_pools_the_backbone_levels_named_by_index_rows_and_defaults_to_the_last_neck_layer():
    import numpy as np

    model = YOLO("yolov8n-convmixer.yaml")
    net = model.model.eval()
    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)  # BGR, at imgsz: no letterbox
    levels = model.embed(image, imgsz=96, embed=[1, 2, 3], verbose=False)[0]  # the Index rows: P3, P4, P5
    assert levels.shape == (sum(spec.channels for spec in net.model[0].output_shape().values()),)
    # the same numbers as pooling the backbone's own outputs for the RGB input Ultralytics feeds it
    x = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        pooled = torch.cat([feature.mean((2, 3)) for feature in net.model[0](x)], 1)[0]
    torch.testing.assert_close(levels, pooled, rtol=1e-4, atol=1e-5)
    default = model.embed(image, imgsz=96, verbose=False)[0]  # Ultralytics' default: the layer before the head
    assert default.shape == (net.model[-2].cv2.conv.out_channels,)


STOCK = {"detect": "yolov8{}.yaml", "segment": "yolov8{}-seg.yaml", "pose": "yolov8{}-pose.yaml",
         "obb": "yolov8{}-obb.yaml", "classify": "yolov8{}-cls.yaml"}  # fmt: skip


# The P4-heavy layout of docs/speed.md is held to the packaged models' budget too: it is compared at equal budget.
P4_HEAVY = Path(__file__).resolve().parents[1] / "benchmarks" / "ablations" / "yolov8{}-convmixer-p4heavy.yaml"


@pytest.mark.parametrize("name, task, scale", MODELS + [(str(P4_HEAVY).format(s), "detect", s) for s in SCALES])
def test_budget_gflops_within_10_percent_and_params_not_above_stock(name, task, scale):
    imgsz = 224 if task == "classify" else 640
    ours, stock = YOLO(name).model, YOLO(STOCK[task].format(scale)).model
    gflops, stock_gflops = get_flops(ours, imgsz), get_flops(stock, imgsz)
    params, stock_params = (sum(p.numel() for p in m.parameters()) for m in (ours, stock))
    assert 0.9 <= gflops / stock_gflops <= 1.1, f"{name}: {gflops:.2f} GFLOPs vs stock {stock_gflops:.2f}"
    assert params <= stock_params, f"{name}: {params} params vs stock {stock_params}"

"""Every packaged YAML at every scale: builds, runs, reports GFLOPs, fuses, and fits its stock family's budget."""

from pathlib import Path

import pytest
import torch
import ultralytics
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops

from ultralytics_convmixer.integration.planner import ULTRALYTICS_SINCE, PlanError, _release
from ultralytics_convmixer.integration.resources import FAMILY_TASKS, SCALES, TASK_SUFFIXES, model_yamls
from ultralytics_convmixer.nn.modules import ConvMixerBackbone

from conftest import ultralytics_log

FAMILY_MODELS = [(family, task) for family, tasks in FAMILY_TASKS.items() for task in tasks]
# The first Ultralytics release with each family and task the oldest supported one lacks (planner.ULTRALYTICS_SINCE);
# YOLO26's classify model is YOLO11's, built from modules 8.3 has.
NEEDS = {("yolo26", t): ULTRALYTICS_SINCE["end2end"][0] for t in FAMILY_TASKS["yolo26"] if t != "classify"}
NEEDS.update({("yolo26", "semantic"): ULTRALYTICS_SINCE["SemanticSegment"][0]})
NEEDS.update({("yolo26", "depth"): ULTRALYTICS_SINCE["Depth"][0]})


def model_params(family: str, task: str, scales: str = SCALES):
    """pytest params ``(name, task, scale)``, skipped where the installed Ultralytics lacks the family or task."""
    since = NEEDS.get((family, task))
    marks = [pytest.mark.skipif(since and _release(ultralytics.__version__) < _release(since),
                                reason=f"{family} {task} needs Ultralytics {since}")]  # fmt: skip
    name = f"{family}{{}}-convmixer{TASK_SUFFIXES[task]}.yaml"
    return [pytest.param(name.format(s), task, s, marks=marks, id=name.format(s)) for s in scales]


MODELS = [param for family, task in FAMILY_MODELS for param in model_params(family, task)]


def first_tensor(out):
    """Eval outputs are a tensor or (tensor, extras) depending on the head; return the predictions tensor."""
    while isinstance(out, (list, tuple)):
        out = out[0]
    return out


def test_one_packaged_yaml_per_family_and_task():
    expected = sorted(f"{family}-convmixer{TASK_SUFFIXES[task]}.yaml" for family, task in FAMILY_MODELS)
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
            elif task == "semantic":  # class logits at stride 8
                assert out.shape == (1, net.yaml["nc"], h // 8, w // 8)
            elif task == "depth":  # one depth map at stride 4
                assert out.shape == (1, 1, h // 4, w // 4)
            else:  # (batch, box + class (+ mask/keypoint/angle) channels, anchors at strides 8, 16, 32)
                assert out.shape[0] == 1 and out.shape[2] == sum((h // s) * (w // s) for s in (8, 16, 32))
    if task not in {"classify", "semantic", "depth"}:
        assert net.stride.tolist() == [8.0, 16.0, 32.0]


@pytest.mark.smoke  # also on 8.3, whose fuse stops once fewer than 10 BatchNorms are left
@pytest.mark.parametrize("name, task, scale", [p for f, t in FAMILY_MODELS for p in model_params(f, t, "n")])
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
    assert "ultralytics_convmixer.nn.modules.ConvMixerBackbone" in row0
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


# The P4-heavy layout of docs/speed.md is held to the packaged models' budget too: it is compared at equal budget.
P4_HEAVY = Path(__file__).resolve().parents[1] / "benchmarks" / "ablations" / "yolov8{}-convmixer-p4heavy.yaml"


@pytest.mark.parametrize("name, task, scale", MODELS + [(str(P4_HEAVY).format(s), "detect", s) for s in SCALES])
def test_budget_gflops_within_10_percent_and_params_not_above_stock(name, task, scale):
    imgsz = 224 if task == "classify" else 640
    stem = Path(name).name
    family = stem[: stem.index("-convmixer") - 1]  # yolo26n-convmixer-seg.yaml -> yolo26, the stock model's family
    ours, stock = YOLO(name).model, YOLO(f"{family}{scale}{TASK_SUFFIXES[task]}.yaml").model
    gflops, stock_gflops = get_flops(ours, imgsz), get_flops(stock, imgsz)
    params, stock_params = (sum(p.numel() for p in m.parameters()) for m in (ours, stock))
    # A classify model's backbone is its family's detect backbone (so that `pretrained=` carries it whole); stock
    # YOLOv8-cls is wider than YOLOv8 detect from s up, so those classify models stay below stock (docs/budget.md).
    lowest = 0.6 if (task, family) == ("classify", "yolov8") else 0.9
    assert lowest <= gflops / stock_gflops <= 1.1, f"{name}: {gflops:.2f} GFLOPs vs stock {stock_gflops:.2f}"
    assert params <= stock_params, f"{name}: {params} params vs stock {stock_params}"


@pytest.mark.smoke
@pytest.mark.parametrize("family, task", [(f, t) for (f, t) in NEEDS])
def test_a_yaml_of_a_newer_family_or_task_fails_naming_the_ultralytics_release_it_needs(family, task, monkeypatch):
    since = NEEDS[(family, task)]
    if _release(ultralytics.__version__) >= _release(since):  # as on the oldest supported release
        monkeypatch.setattr(ultralytics, "__version__", "8.3.253")
    name = f"{family}n-convmixer{TASK_SUFFIXES[task]}.yaml"
    with pytest.raises(PlanError, match=rf"{name}: .* needs Ultralytics {since} or newer .*this is Ultralytics 8\.3"):
        YOLO(name)


@pytest.mark.skipif(_release(ultralytics.__version__) < _release("8.4.0"), reason="YOLO26 needs Ultralytics 8.4.0")
def test_heads_match_stock_whichever_family_was_built_before():
    # YOLO26 sets parse_model's process-wide `legacy` flag from the modules of the YAML it parses: a ConvMixer YAML must
    # give each head exactly what its stock model gets, in either order.
    def head(name):
        net = YOLO(name).model
        return type(net.model[-1]).__name__, sorted((k, tuple(v.shape)) for k, v in net.model[-1].state_dict().items())

    for first, then in [("yolo26n", "yolov8n"), ("yolov8n", "yolo26n"), ("yolo26n", "yolo11n")]:
        YOLO(f"{first}-convmixer.yaml")
        ours = head(f"{then}-convmixer.yaml")
        YOLO(f"{first}.yaml")
        assert ours == head(f"{then}.yaml"), f"{then} head after {first}"

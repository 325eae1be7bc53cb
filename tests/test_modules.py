"""The ConvMixer modules: the paper's block and its variants, BN folding, shapes, channels, strides, argument checks."""

import copy

import pytest
import torch
from torch import nn

from ultralytics_convmixer.nn.dwconv import DepthwiseConv2d
from ultralytics_convmixer.nn.modules import (
    ConvMixerBackbone,
    ConvMixerBlock,
    ConvMixerStage,
    FeatureSpec,
    PatchEmbed,
    fold_batchnorm,
)

from checks import with_running_statistics


def test_paper_block_residual_wraps_only_the_depthwise_conv_in_conv_act_bn_order():
    torch.manual_seed(0)
    block = with_running_statistics(ConvMixerBlock(16, k=5, shortcut=False))
    x = torch.randn(2, 16, 11, 13)
    mixed = x + block.dw.bn(torch.nn.functional.gelu(block.dw.conv(x)))  # residual around depthwise -> GELU -> BN only
    expected = block.pw.bn(torch.nn.functional.gelu(block.pw.conv(mixed)))  # pointwise -> GELU -> BN, no residual
    assert torch.allclose(block(x), expected, atol=1e-6)
    assert block.dw.conv.groups == 16 and block.dw.conv.kernel_size == (5, 5)
    assert block.pw.conv.kernel_size == (1, 1)


def test_default_block_adds_a_residual_around_the_pointwise_half_too():
    torch.manual_seed(0)
    block = with_running_statistics(ConvMixerBlock(16, k=5))
    x = torch.randn(2, 16, 11, 13)
    mixed = x + block.dw.bn(torch.nn.functional.gelu(block.dw.conv(x)))
    expected = mixed + block.pw.bn(torch.nn.functional.gelu(block.pw.conv(mixed)))
    assert block.shortcut is True
    assert torch.allclose(block(x), expected, atol=1e-6)


@pytest.mark.parametrize("shortcut", [True, False])
def test_stage_and_backbone_pass_shortcut_to_every_block(shortcut):
    stage = ConvMixerStage(8, 16, n=2, k=3, shortcut=shortcut)
    backbone = ConvMixerBackbone(3, (8, 16, 24), (1, 2, 1), k=3, shortcut=shortcut)
    blocks = [m for m in [*stage.modules(), *backbone.modules()] if isinstance(m, ConvMixerBlock)]
    assert len(blocks) == 6 and all(b.shortcut is shortcut for b in blocks)


def test_conv_bn_act_order_puts_each_batchnorm_between_its_conv_and_activation():
    torch.manual_seed(0)
    block = with_running_statistics(ConvMixerBlock(16, k=5, act="silu", order="conv-bn-act"))
    x = torch.randn(2, 16, 11, 13)
    mixed = x + torch.nn.functional.silu(block.dw.bn(block.dw.conv(x)))
    expected = mixed + torch.nn.functional.silu(block.pw.bn(block.pw.conv(mixed)))
    assert torch.allclose(block(x), expected, atol=1e-6)
    embed = with_running_statistics(PatchEmbed(3, 8, p=2, act="silu", order="conv-bn-act"))
    image = torch.randn(1, 3, 8, 8)
    assert torch.allclose(embed(image), torch.nn.functional.silu(embed.bn(embed.conv(image))), atol=1e-6)
    stage = with_running_statistics(ConvMixerStage(8, 16, n=1, k=3, order="conv-bn-act"))
    t, features = stage.transition, torch.randn(2, 8, 5, 5)
    assert torch.allclose(t(features), torch.nn.functional.gelu(t.bn(t.conv(features))), atol=1e-6)
    assert stage.blocks[0].dw.order == stage.blocks[0].pw.order == "conv-bn-act"


@pytest.mark.parametrize("shortcut", [True, False])
def test_conv_bn_add_act_order_adds_each_residual_before_the_activation(shortcut):
    torch.manual_seed(0)
    block = with_running_statistics(ConvMixerBlock(16, k=5, act="relu", shortcut=shortcut, order="conv-bn-add-act"))
    x = torch.randn(2, 16, 11, 13)
    relu = torch.nn.functional.relu
    mixed = relu(x + block.dw.bn(block.dw.conv(x)))  # as ResNet: act(x + BN(conv(x)))
    pointwise = block.pw.bn(block.pw.conv(mixed))
    expected = relu(mixed + pointwise) if shortcut else relu(pointwise)
    assert torch.allclose(block(x), expected, atol=1e-6)
    # no residual in the embedding: conv -> BN -> act
    embed = with_running_statistics(PatchEmbed(3, 8, p=2, act="relu", order="conv-bn-add-act"))
    image = torch.randn(1, 3, 8, 8)
    assert torch.allclose(embed(image), relu(embed.bn(embed.conv(image))), atol=1e-6)
    stage = with_running_statistics(ConvMixerStage(8, 16, n=1, k=3, act="relu", order="conv-bn-add-act"))
    t, features = stage.transition, torch.randn(2, 8, 5, 5)
    assert torch.allclose(t(features), torch.relu(t.bn(t.conv(features))), atol=1e-6)  # no residual: conv -> BN -> act


@pytest.mark.parametrize("order", ["conv-bn-act", "conv-bn-add-act"])
@pytest.mark.parametrize("design", ["hierarchical", "isotropic16", "isotropic8"])
def test_fold_batchnorm_removes_every_batchnorm_of_a_conv_bn_act_backbone_and_keeps_its_outputs(design, order):
    backbone = ConvMixerBackbone(3, (16, 24, 40), (1, 2, 1), k=5, design=design, act="silu", order=order)
    backbone = with_running_statistics(backbone)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    depthwise = [m for m in backbone.modules() if isinstance(m, DepthwiseConv2d)]
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = backbone(x)
        assert fold_batchnorm(backbone) == batchnorms > 0
        folded = backbone(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert [m for m in backbone.modules() if isinstance(m, DepthwiseConv2d)] == depthwise  # same objects, fast path
    assert not any(p.requires_grad for p in backbone.parameters())  # frozen, as Ultralytics' fuse leaves its layers
    for got, want in zip(folded, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_fold_batchnorm_leaves_the_paper_order_alone_since_its_batchnorm_follows_the_activation():
    backbone = with_running_statistics(ConvMixerBackbone(3, (16, 24, 40), (1, 1, 1), k=3))
    stage = with_running_statistics(ConvMixerStage(8, 16, n=1, k=3))
    before = copy.deepcopy(backbone.state_dict())
    assert fold_batchnorm(backbone) == 0 and fold_batchnorm(stage) == 0
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_block_activation_is_configurable_and_gelu_by_default():
    assert isinstance(ConvMixerBlock(8).dw.act, nn.GELU)
    assert isinstance(ConvMixerBlock(8, act="silu").pw.act, nn.SiLU)


def test_patch_embed_is_a_strided_patch_conv_then_act_then_bn():
    embed = PatchEmbed(3, 32, p=4)
    assert embed.conv.kernel_size == (4, 4) and embed.conv.stride == (4, 4)
    assert list(embed._modules) == ["conv", "act", "bn"]
    assert embed(torch.zeros(1, 3, 64, 96)).shape == (1, 32, 16, 24)


def test_stage_adds_a_channel_transition_only_when_channels_change():
    assert isinstance(ConvMixerStage(32, 32, n=2).transition, nn.Identity)
    stage = ConvMixerStage(16, 48, n=3, k=3)
    assert len(stage.blocks) == 3
    assert stage(torch.zeros(2, 16, 9, 7)).shape == (2, 48, 9, 7)


@pytest.mark.parametrize("design", ["hierarchical", "isotropic16", "isotropic8", "isotropic"])
def test_backbone_returns_p3_p4_p5_with_the_channels_and_strides_it_reports(design):
    backbone = ConvMixerBackbone(3, channels=(16, 24, 40), depths=(1, 2, 1), k=3, design=design)
    spec = backbone.output_shape()
    assert spec == {"P3": FeatureSpec(16, 8), "P4": FeatureSpec(24, 16), "P5": FeatureSpec(40, 32)}
    features = backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in features] == [(16, 8, 12), (24, 4, 6), (40, 2, 3)]


def test_backbone_first_parameter_is_the_stem_conv_reading_image_channels():
    # Ultralytics' GFLOPs counter builds its probe input from the model's first parameter.
    first = next(ConvMixerBackbone(3, (16, 24, 40), (1, 1, 1), k=3).parameters())
    assert first.ndim == 4 and first.shape[1] == 3


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ConvMixerBlock(8, k=4), "k must be an odd integer"),
        (lambda: ConvMixerBlock(8, k=1), "k must be an odd integer"),
        (lambda: ConvMixerBlock(0), "c1 must be an integer >= 1"),
        (lambda: PatchEmbed(3, -8), "c2 must be an integer >= 1"),
        (lambda: PatchEmbed(3, 8, p=2.5), "p must be an integer >= 1"),
        (lambda: ConvMixerStage(8, 8, n=0), "n must be an integer >= 1"),
        (lambda: ConvMixerBlock(8, act="gleu"), "act must be one of"),
        (lambda: ConvMixerBackbone(3, channels=(8, 16)), "channels must be a list of 3 integers"),
        (lambda: ConvMixerBackbone(3, depths=(1, -1, 1)), r"depths\[1\] must be an integer >= 0"),
        (lambda: ConvMixerBackbone(3, design="pyramid"), "design must be one of"),
        (lambda: ConvMixerBlock(8, shortcut="no"), "shortcut must be true or false, got 'no'"),
        (
            lambda: ConvMixerStage(8, 8, order="bn-first"),
            r"order must be one of \['conv-act-bn', 'conv-bn-act', 'conv-bn-add-act'\]",
        ),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()

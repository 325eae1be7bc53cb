"""ConvMixer modules for Ultralytics YOLO ("Patches Are All You Need?", Trockman & Kolter, 2022).

Plain PyTorch, no Ultralytics import: the whole model is visible here. Channel arguments follow Ultralytics'
``(c1, c2, ...)`` convention; in a model YAML ``c1`` is filled in from the graph and ``c2`` is scaled by ``scales``
(``integration/planner.py``), so a row reads like its native counterpart, e.g. ``[-1, 3, ConvMixerStage, [256, 7]]``.

Each constructor checks its arguments (``options``) and raises ``ValueError`` naming the argument at fault; the YAML
planner adds the file, layer index and module name.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import torch
from torch import nn

from .dwconv import DepthwiseConv2d
from .options import (
    ISOTROPIC_STRIDES,
    PAPER_ORDER,
    Activation,
    Design,
    Order,
    check_activation,
    check_bool,
    check_design,
    check_int,
    check_ints,
    check_kernel,
    check_order,
)

# The activation modules by name (``options.ACTIVATIONS``; a test checks that the two agree).
ACTIVATION_MODULES = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU, "hardswish": nn.Hardswish}


def activation(act: Activation) -> nn.Module:
    """Build an activation module from its name (``gelu``, ``silu``, ``relu`` or ``hardswish``, any case)."""
    return ACTIVATION_MODULES[check_activation(act)]()


def _init_conv(conv: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialize a plugin convolution as ConvNeXt does: truncated normal weights (std 0.02), zero bias.

    PyTorch's default (uniform, bound 1/sqrt(fan_in)) starts depthwise weights (fan-in k*k) much larger than dense
    ones; behind a BatchNorm only a weight's direction matters, and Adam moves every weight by about ``lr`` per step, so
    small initial weights let the blocks learn faster (docs/design.md, "Initialization").
    """
    nn.init.trunc_normal_(conv.weight, std=std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class FixedEpsBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that keeps PyTorch's ``eps`` (1e-5), the one the paper's and timm's ConvMixer weights use.

    Ultralytics sets every ``nn.BatchNorm2d`` of a model it builds to ``eps=1e-3`` (exact type only), which would change
    what imported BatchNorm statistics compute. Momentum is Ultralytics' 0.03, as for its own layers.
    """

    def __init__(self, c: int, eps: float = 1e-5):
        super().__init__(c, eps=eps, momentum=0.03)


class FeatureSpec(NamedTuple):
    """Channels and stride of one output level of a multi-scale backbone (as detectron2's ``ShapeSpec``)."""

    channels: int
    stride: int


class ConvNormAct(nn.Module):
    """A convolution with its BatchNorm and activation, in the order ``order`` names; every plugin layer is one.

    With a ``residual`` passed to ``forward``:

    - ``conv-act-bn`` (the paper's): ``residual + BN(act(conv(x)))``
    - ``conv-bn-act`` (YOLOv8's ``Conv``): ``residual + act(BN(conv(x)))``; the BatchNorm folds into the convolution
      (:func:`fold_batchnorm`)
    - ``conv-bn-add-act`` (ResNet's): ``act(residual + BN(conv(x)))``; without a residual it is ``conv-bn-act``

    Args:
        conv (nn.Module): The convolution (``nn.Conv2d``, ``DepthwiseConv2d`` or ``nn.ConvTranspose2d``).
        act (str): Activation name.
        order (str): ``conv-act-bn``, ``conv-bn-act`` or ``conv-bn-add-act``.
        norm (type): BatchNorm class, called with the output channels.
    """

    def __init__(self, conv: nn.Module, act: Activation, order: Order, norm: type = nn.BatchNorm2d):
        super().__init__()
        self.conv, self.act, self.bn = conv, activation(act), norm(conv.out_channels)
        self.order = order

    @property
    def order(self) -> Order:
        """Where the BatchNorm sits and where a residual is added (``options.Order``); settable."""
        if not self.bn_first:
            return PAPER_ORDER
        return "conv-bn-add-act" if self.add_before_act else "conv-bn-act"

    @order.setter
    def order(self, order: Order) -> None:
        order = check_order(order)
        self.bn_first, self.add_before_act = order != PAPER_ORDER, order == "conv-bn-add-act"

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Convolve, normalize and activate in the layer's order, adding ``residual`` (if given) where it says."""
        y = self.conv(x)
        if not self.bn_first:  # the paper's conv -> act -> BN
            y = self.bn(self.act(y))
        elif self.add_before_act and residual is not None:  # ResNet's conv -> BN -> add -> act
            return self.act(residual + self.bn(y))
        else:  # YOLOv8's conv -> BN -> act
            y = self.act(self.bn(y))
        return y if residual is None else residual + y

    def __setstate__(self, state: dict) -> None:
        """Unpickle, also a layer pickled with its order as a string attribute (checkpoints of 0.1.0)."""
        order = state.pop("order", None)
        super().__setstate__(state)
        if order is not None:
            self.order = order


def _pointwise(c1: int, c2: int, act: Activation, order: Order, norm: type = nn.BatchNorm2d) -> ConvNormAct:
    """Build a 1 x 1 convolution (with bias) from ``c1`` to ``c2`` channels, with its BatchNorm and activation."""
    return ConvNormAct(_init_conv(nn.Conv2d(c1, c2, 1)), act, order, norm)


class ConvMixerBlock(nn.Module):
    """ConvMixer block: a depthwise convolution mixes space, a pointwise convolution mixes channels.

    The paper's block (equations 2 and 3), ``ConvMixerBlock(c1, k, act, shortcut=False, order="conv-act-bn")``::

        x = x + BN(act(DepthwiseConv_k(x)))
        x = BN(act(PointwiseConv(x)))

    ``shortcut=True`` (the default) also adds ``x +`` to the second line: in a plain stack BatchNorm multiplies the
    gradient at every block, and the detector barely learns in YOLO's short schedules (docs/design.md, "Pointwise
    shortcut"). ``order`` places each BatchNorm and residual as :class:`ConvNormAct` says: ``conv-bn-act`` is
    ``act(BN(conv(x)))``, which folds for inference; ``conv-bn-add-act`` is ``act(x + BN(conv(x)))``.

    Args:
        c1 (int): Input and output channels.
        k (int): Odd depthwise kernel size (the paper uses 9).
        act (str): Activation name, ``gelu`` by default as in the paper.
        shortcut (bool): Add a residual around the pointwise half as well.
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act``.
        norm (type): BatchNorm class (:class:`FixedEpsBatchNorm2d` in an imported trunk).
    """

    def __init__(
        self,
        c1: int,
        k: int = 9,
        act: Activation = "gelu",
        shortcut: bool = True,
        order: Order = PAPER_ORDER,
        norm: type = nn.BatchNorm2d,
    ):
        super().__init__()
        c1, k = check_int("c1", c1), check_kernel("k", k)
        self.dw = ConvNormAct(_init_conv(DepthwiseConv2d(c1, k)), act, order, norm)  # mixes space
        self.pw = _pointwise(c1, c1, act, order, norm)  # mixes channels
        self.shortcut, self.c2 = check_bool("shortcut", shortcut), c1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix space (with the residual), then channels (with the residual if ``shortcut``)."""
        x = self.dw(x, residual=x)
        return self.pw(x, residual=x if self.shortcut else None)


class PatchEmbed(ConvNormAct):
    """Patch embedding: a p x p convolution with stride p, with its activation and BatchNorm in ``order``.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        p (int): Patch size, which is also the stride.
        act (str): Activation name.
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act`` (here the same as
            ``conv-bn-act``: an embedding has no residual).
        norm (type): BatchNorm class.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        p: int = 8,
        act: Activation = "gelu",
        order: Order = PAPER_ORDER,
        norm: type = nn.BatchNorm2d,
    ):
        c1, c2, p = check_int("c1", c1), check_int("c2", c2), check_int("p", p)
        super().__init__(_init_conv(nn.Conv2d(c1, c2, p, stride=p)), act, order, norm)
        self.c2 = c2


class ConvMixerStage(nn.Module):
    """Optional pointwise channel transition (c1 -> c2, act, BN) followed by n ConvMixer blocks; replaces a C2f row.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of ConvMixer blocks (scaled by the model's depth multiple in a YAML).
        k (int): Odd depthwise kernel size.
        act (str): Activation name.
        shortcut (bool): Residual around each block's pointwise half too (see ``ConvMixerBlock``).
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act``, for the transition
            and every block (see ``ConvMixerBlock``).
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        k: int = 9,
        act: Activation = "gelu",
        shortcut: bool = True,
        order: Order = PAPER_ORDER,
    ):
        super().__init__()
        c1, c2, n, order = check_int("c1", c1), check_int("c2", c2), check_int("n", n), check_order(order)
        self.transition = _pointwise(c1, c2, act, order) if c1 != c2 else nn.Identity()
        self.blocks = nn.Sequential(*(ConvMixerBlock(c2, k, act, shortcut, order) for _ in range(n)))
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Change channels if needed, then mix."""
        return self.blocks(self.transition(x))


class _Resample(nn.Sequential):
    """Change resolution by ``scale`` (2x up, 1x, 2x or 4x down), then a pointwise conv with act and BN to ``c2``."""

    def __init__(self, c1: int, c2: int, scale: float, act: Activation, order: Order = PAPER_ORDER):
        if scale == 2.0:
            layers = [ConvNormAct(_init_conv(nn.ConvTranspose2d(c1, c1, 2, stride=2)), act, order)]
        else:
            layers = [] if scale == 1.0 else [nn.MaxPool2d(round(1 / scale))]
        super().__init__(*layers, _pointwise(c1, c2, act, order))


class ConvMixerBackbone(nn.Module):
    """Multi-scale ConvMixer backbone: takes the image, returns ``[P3, P4, P5]`` (strides 8, 16, 32) as a list.

    Select the levels downstream with Ultralytics ``Index`` rows. ``output_shape()`` reports channels and stride per
    level, so nothing downstream has to guess.

    Designs:
        - ``hierarchical``: a p=4 patch stem, then one ConvMixer stage per level with a 2x2 stride-2 patch-merging
          conv between levels (a ConvMixer take on the usual CNN pyramid).
        - ``isotropic16`` / ``isotropic8``: the paper's design, one patch embedding (p=16 or p=8) and a trunk of
          ConvMixer blocks at a single resolution and width ``dim``, then a simple feature pyramid as in ViTDet
          (deconv up, max-pool down, pointwise projections). The trunk's BatchNorms keep PyTorch's eps
          (:class:`FixedEpsBatchNorm2d`), so weights imported from timm compute what they computed there
          (``ultralytics_convmixer.pretrained``). A level with 0 channels is not built, and its output is None.

    Args:
        c1 (int): Input (image) channels.
        channels (Sequence[int]): Output channels of P3, P4, P5.
        depths (Sequence[int] | int): ConvMixer blocks per level; an isotropic trunk has their sum, or the one integer.
        k (int): Odd depthwise kernel size.
        design (str): ``hierarchical``, ``isotropic16`` (alias ``isotropic``) or ``isotropic8``.
        act (str): Activation name.
        shortcut (bool): Residual around each block's pointwise half too (see ``ConvMixerBlock``).
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act``, for every layer
            (see ``ConvMixerBlock``).
        dim (int | None): Width of an isotropic trunk; None takes ``channels[1]`` (isotropic16) or ``channels[0]``
            (isotropic8). In a YAML, ``dim`` and a single-integer ``depths`` are taken as written at every scale.
    """

    strides = (8, 16, 32)

    def __init__(
        self,
        c1: int,
        channels: Sequence[int] = (64, 128, 256),
        depths: Union[Sequence[int], int] = (2, 2, 2),
        k: int = 9,
        design: Design = "hierarchical",
        act: Activation = "gelu",
        shortcut: bool = True,
        order: Order = PAPER_ORDER,
        dim: Optional[int] = None,
    ):
        super().__init__()
        c1, k, shortcut = check_int("c1", c1), check_kernel("k", k), check_bool("shortcut", shortcut)
        order, design, act = check_order(order), check_design(design), check_activation(act)
        block = dict(k=k, act=act, shortcut=shortcut, order=order)
        if design == "hierarchical":
            if dim is not None:
                raise ValueError(f"dim is the width of an isotropic trunk; the hierarchical design has none, got {dim}")
            channels, depths = check_ints("channels", channels, 3), check_ints("depths", depths, 3, minimum=0)
            self._build_hierarchical(c1, channels, depths, block)
        else:
            channels = check_ints("channels", channels, 3, minimum=0)
            if not any(channels):
                raise ValueError(f"channels must build at least one level, got {channels}")
            if isinstance(depths, int) and not isinstance(depths, bool):
                depth = check_int("depths", depths, minimum=0)
            else:
                depth = sum(check_ints("depths", depths, 3, minimum=0))
            self._build_isotropic(c1, channels, depth, dim, design, block)
        self.design, self.out_channels = design, channels

    def _build_hierarchical(self, c1: int, channels: List[int], depths: List[int], block: dict) -> None:
        act, order = block["act"], block["order"]
        # The stem conv is the model's first parameter: Ultralytics' GFLOPs counter reads the input channels off it.
        self.stem = PatchEmbed(c1, max(channels[0] // 2, 8), p=4, act=act, order=order)
        widths = [self.stem.c2, *channels]
        self.levels = nn.ModuleList(
            nn.Sequential(
                PatchEmbed(widths[i], widths[i + 1], p=2, act=act, order=order),
                *(ConvMixerBlock(widths[i + 1], **block) for _ in range(depths[i])),
            )
            for i in range(3)
        )

    def _build_isotropic(
        self, c1: int, channels: List[int], depth: int, dim: Optional[int], design: Design, block: dict
    ) -> None:
        self.trunk_stride = ISOTROPIC_STRIDES[design]
        default_dim = channels[self.strides.index(self.trunk_stride)]
        self.dim = check_int("dim", default_dim if dim is None else dim)
        norm = FixedEpsBatchNorm2d
        self.stem = PatchEmbed(c1, self.dim, p=self.trunk_stride, act=block["act"], order=block["order"], norm=norm)
        self.trunk = nn.Sequential(*(ConvMixerBlock(self.dim, **block, norm=norm) for _ in range(depth)))
        self.pyramid = nn.ModuleList(
            _Resample(self.dim, c, self.trunk_stride / s, block["act"], block["order"]) if c else nn.Identity()
            for c, s in zip(channels, self.strides)
        )

    def output_shape(self) -> Dict[str, FeatureSpec]:
        """Channels and stride of each output level, keyed ``P3``, ``P4``, ``P5`` (levels not built are left out)."""
        levels = zip(self.out_channels, self.strides)
        return {f"P{i + 3}": FeatureSpec(c, s) for i, (c, s) in enumerate(levels) if c}

    def forward(self, x: torch.Tensor) -> List[Optional[torch.Tensor]]:
        """Return the feature maps ``[P3, P4, P5]`` (None for a level not built)."""
        x = self.stem(x)
        if self.design == "hierarchical":
            outputs = []
            for level in self.levels:
                x = level(x)
                outputs.append(x)
            return outputs
        x = self.trunk(x)
        return [project(x) if c else None for c, project in zip(self.out_channels, self.pyramid)]


def _fold(conv: nn.Module, norm: nn.BatchNorm2d) -> None:
    """Fold ``norm`` (running statistics, eval semantics) into ``conv``'s weight and bias in place; freeze them."""
    conv.weight, conv.bias = torch.nn.utils.fusion.fuse_conv_bn_weights(
        conv.weight,
        conv.bias,
        norm.running_mean,
        norm.running_var,
        norm.eps,
        norm.weight,
        norm.bias,
        transpose=isinstance(conv, nn.ConvTranspose2d),
    )
    conv.requires_grad_(False)  # as Ultralytics' fuse_conv_and_bn: a folded model is for inference


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a convolution in the plugin's layers into that convolution.

    For inference only (the folded model computes what the unfused one computes in eval mode). Layers in the paper's
    ``conv-act-bn`` order have nothing to fold; Ultralytics' own layers are left to its ``fuse()``. The convolutions
    stay the same objects (a ``DepthwiseConv2d`` keeps its fast path); each folded BatchNorm becomes an ``Identity``.

    Args:
        model (nn.Module): Any module; plugin layers inside it are folded.

    Returns:
        (int): The number of BatchNorm layers folded.
    """
    folded = 0
    for m in model.modules():
        foldable = isinstance(m, ConvNormAct) and m.bn_first and isinstance(m.bn, nn.BatchNorm2d)
        if foldable and isinstance(m.conv, (nn.Conv2d, nn.ConvTranspose2d)):
            _fold(m.conv, m.bn)
            m.bn = nn.Identity()
            folded += 1
    return folded

"""ConvMixer modules for Ultralytics YOLO ("Patches Are All You Need?", Trockman & Kolter, 2022).

Plain PyTorch, no Ultralytics import: the whole model is visible here. Channel arguments follow Ultralytics'
``(c1, c2, ...)`` convention; in a model YAML ``c1`` is filled in from the graph and ``c2`` is scaled by ``scales``
(see ``integration.py``), so a row reads like its native counterpart, e.g. ``[-1, 3, ConvMixerStage, [256, 7]]``.

Each constructor validates its arguments and raises ``ValueError`` naming the argument at fault; the YAML parser adds
the file, layer index and module name.
"""

from typing import Dict, List, NamedTuple, Sequence

import torch
from torch import nn

from .dwconv import DepthwiseConv2d

ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU, "hardswish": nn.Hardswish}
# Where BatchNorm sits: the paper's conv -> act -> BN, or conv -> BN -> act as in YOLOv8's Conv, which lets BN fold
# into the convolution for inference (``fold_batchnorm``, run by Ultralytics' ``fuse()``, and ONNX Runtime).
# ``conv-bn-add-act`` is conv -> BN -> act too, but a block adds its residual before the activation, as ResNet does:
# ONNX Runtime then fuses each half of the block (conv, residual add, ReLU) into one CPU kernel. Layers without a
# residual (patch embeddings, transitions) read it as ``conv-bn-act``.
ORDERS = ("conv-act-bn", "conv-bn-act", "conv-bn-add-act")
PAPER_ORDER = "conv-act-bn"
ADD_BEFORE_ACT = "conv-bn-add-act"
DESIGNS = ("hierarchical", "isotropic16", "isotropic8")
DESIGN_ALIASES = {"isotropic": "isotropic16"}


def _check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_kernel(name: str, k) -> int:
    """Return ``k`` if it is an odd kernel size >= 3 (odd so that "same" padding keeps the feature-map size)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 3 (padding k // 2 keeps the size), got {k!r}")
    return k


def _check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (YAML ``true``/``false``), else raise a ValueError naming the argument."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _check_ints(name: str, values, length: int, minimum: int = 1) -> List[int]:
    """Return ``values`` as a list if it holds ``length`` integers >= ``minimum``."""
    if not isinstance(values, (list, tuple)) or len(values) != length:
        raise ValueError(f"{name} must be a list of {length} integers (P3, P4, P5), got {values!r}")
    return [_check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values)]


def _check_order(order) -> str:
    """Return ``order`` if it is one of ``ORDERS``."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
    return order


def _init_conv(conv: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialize a plugin convolution as ConvNeXt does: truncated normal weights (std 0.02), zero bias.

    PyTorch's default (uniform, bound 1/sqrt(fan_in)) starts depthwise weights (fan-in k*k) much larger than dense
    ones; behind a BatchNorm only a weight's direction matters, and Adam moves every weight by about ``lr`` per step, so
    small initial weights let the blocks learn faster (README, "How the kernel size was chosen").
    """
    nn.init.trunc_normal_(conv.weight, std=std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _with_norm_act(layer: nn.Module, c: int, act: str, order: str) -> List[nn.Module]:
    """Return ``layer`` (with ``c`` output channels) followed by its BatchNorm and activation in ``order``."""
    norm = nn.BatchNorm2d(c)
    return [layer, activation(act), norm] if order == PAPER_ORDER else [layer, norm, activation(act)]


def _pointwise(c1: int, c2: int, act: str, order: str) -> List[nn.Module]:
    """Return the layers of a pointwise conv c1 -> c2 with its activation and BatchNorm in ``order``."""
    return _with_norm_act(_init_conv(nn.Conv2d(c1, c2, 1)), c2, act, order)


def activation(act: str) -> nn.Module:
    """Build an activation module from its name (``gelu``, ``silu``, ``relu`` or ``hardswish``)."""
    if not isinstance(act, str) or act.lower() not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    return ACTIVATIONS[act.lower()]()


class FeatureSpec(NamedTuple):
    """Channels and stride of one output level of a multi-scale backbone (as detectron2's ``ShapeSpec``)."""

    channels: int
    stride: int


class ConvMixerBlock(nn.Module):
    """ConvMixer block: residual depthwise conv -> act -> BN, then pointwise conv -> act -> BN (residual by default).

    The paper has no residual around the pointwise half; ``shortcut=False`` reproduces it exactly. In a plain stack
    BatchNorm multiplies the gradient at every block: with 30 such blocks (yolov8n-sized) the stem gets >200x the
    relative gradient of the backbone's end at initialization (stock YOLOv8n: 7x), eval-mode BN statistics lag the
    weights, and the detector barely learns in YOLO's short schedules. ``shortcut=True`` (default) adds the residual.
    See README, "Why the pointwise shortcut and wider levels". ``order="conv-bn-act"`` puts each BatchNorm before
    its activation, as YOLOv8's ``Conv`` does, so that it folds into the convolution for inference;
    ``order="conv-bn-add-act"`` also adds each residual before the activation (``act(x + bn(conv(x)))``, as ResNet).

    Args:
        c1 (int): Input and output channels.
        k (int): Odd depthwise kernel size (the paper uses 9).
        act (str): Activation name, ``gelu`` by default as in the paper.
        shortcut (bool): Add a residual around the pointwise half as well.
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act``.
    """

    order = PAPER_ORDER  # class default: blocks pickled before ``order`` existed keep the order they were trained with
    shortcut = False  # and those pickled before ``shortcut`` existed had the paper's block

    def __init__(self, c1: int, k: int = 9, act: str = "gelu", shortcut: bool = True, order: str = PAPER_ORDER):
        super().__init__()
        c1, k = _check_int("c1", c1), _check_kernel("k", k)
        self.dw = _init_conv(DepthwiseConv2d(c1, k))
        self.act1, self.bn1 = activation(act), nn.BatchNorm2d(c1)
        self.pw = _init_conv(nn.Conv2d(c1, c1, 1))
        self.act2, self.bn2 = activation(act), nn.BatchNorm2d(c1)
        self.shortcut, self.c2 = _check_bool("shortcut", shortcut), c1
        self.order = _check_order(order)

    def mix_space(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise conv with its BatchNorm and activation in ``order``: the residual branch of the first half.

        Not used by ``conv-bn-add-act``, whose ``forward`` adds the residual before the activation.
        """
        y = self.dw(x)
        return self.bn1(self.act1(y)) if self.order == PAPER_ORDER else self.act1(self.bn1(y))

    def mix_channels(self, x: torch.Tensor) -> torch.Tensor:
        """Pointwise conv with its BatchNorm and activation in ``order``: the second half (a residual branch too).

        Not used by ``conv-bn-add-act``, as ``mix_space``.
        """
        y = self.pw(x)
        return self.bn2(self.act2(y)) if self.order == PAPER_ORDER else self.act2(self.bn2(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix space (depthwise, with residual), then channels (pointwise, residual if ``shortcut``)."""
        if self.order == ADD_BEFORE_ACT:
            x = self.act1(x + self.bn1(self.dw(x)))
            y = self.bn2(self.pw(x))
            return self.act2(x + y if self.shortcut else y)
        x = x + self.mix_space(x)
        y = self.mix_channels(x)
        return x + y if self.shortcut else y


class PatchEmbed(nn.Module):
    """Patch embedding: p x p convolution with stride p -> act -> BN (or -> BN -> act).

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        p (int): Patch size, which is also the stride.
        act (str): Activation name.
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act`` (here the same as
            ``conv-bn-act``: an embedding has no residual).
    """

    order = PAPER_ORDER  # class default for embeddings pickled before ``order`` existed

    def __init__(self, c1: int, c2: int, p: int = 8, act: str = "gelu", order: str = PAPER_ORDER):
        super().__init__()
        c1, c2, p = _check_int("c1", c1), _check_int("c2", c2), _check_int("p", p)
        self.conv = _init_conv(nn.Conv2d(c1, c2, p, stride=p))
        self.act, self.bn = activation(act), nn.BatchNorm2d(c2)
        self.c2, self.order = c2, _check_order(order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cut the input into non-overlapping p x p patches and embed each one."""
        x = self.conv(x)
        return self.bn(self.act(x)) if self.order == PAPER_ORDER else self.act(self.bn(x))


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
        act: str = "gelu",
        shortcut: bool = True,
        order: str = PAPER_ORDER,
    ):
        super().__init__()
        c1, c2, n, order = _check_int("c1", c1), _check_int("c2", c2), _check_int("n", n), _check_order(order)
        self.transition = nn.Sequential(*_pointwise(c1, c2, act, order)) if c1 != c2 else nn.Identity()
        self.blocks = nn.Sequential(*(ConvMixerBlock(c2, k, act, shortcut, order) for _ in range(n)))
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Change channels if needed, then mix."""
        return self.blocks(self.transition(x))


class _Resample(nn.Sequential):
    """Change resolution by ``scale`` (2x up, 1x, 2x or 4x down), then a pointwise conv with act and BN to ``c2``."""

    def __init__(self, c1: int, c2: int, scale: float, act: str, order: str = PAPER_ORDER):
        if scale == 2.0:
            layers = _with_norm_act(_init_conv(nn.ConvTranspose2d(c1, c1, 2, stride=2)), c1, act, order)
        else:
            layers = [] if scale == 1.0 else [nn.MaxPool2d(round(1 / scale))]
        super().__init__(*layers, *_pointwise(c1, c2, act, order))


class ConvMixerBackbone(nn.Module):
    """Multi-scale ConvMixer backbone: takes the image, returns ``[P3, P4, P5]`` (strides 8, 16, 32) as a list.

    Select the levels downstream with Ultralytics ``Index`` rows. ``output_shape()`` reports channels and stride per
    level, so nothing downstream has to guess.

    Designs:
        - ``hierarchical``: a p=4 patch stem, then one ConvMixer stage per level with a 2x2 stride-2 patch-merging
          conv between levels (a ConvMixer take on the usual CNN pyramid).
        - ``isotropic16`` / ``isotropic8``: the paper's design, one patch embedding (p=16 or p=8) and a trunk of
          ``sum(depths)`` blocks at a single resolution and width (``channels[1]`` at stride 16, ``channels[0]`` at
          stride 8), then a simple feature pyramid as in ViTDet (deconv up, max-pool down, pointwise projections).

    Args:
        c1 (int): Input (image) channels.
        channels (Sequence[int]): Output channels of P3, P4, P5.
        depths (Sequence[int]): ConvMixer blocks per level; an isotropic trunk has their sum.
        k (int): Odd depthwise kernel size.
        design (str): ``hierarchical``, ``isotropic16`` (alias ``isotropic``) or ``isotropic8``.
        act (str): Activation name.
        shortcut (bool): Residual around each block's pointwise half too (see ``ConvMixerBlock``).
        order (str): ``conv-act-bn`` (the paper's, default), ``conv-bn-act`` or ``conv-bn-add-act``, for every layer
            (see ``ConvMixerBlock``).
    """

    strides = (8, 16, 32)

    def __init__(
        self,
        c1: int,
        channels: Sequence[int] = (64, 128, 256),
        depths: Sequence[int] = (2, 2, 2),
        k: int = 9,
        design: str = "hierarchical",
        act: str = "gelu",
        shortcut: bool = True,
        order: str = PAPER_ORDER,
    ):
        super().__init__()
        c1, k, shortcut = _check_int("c1", c1), _check_kernel("k", k), _check_bool("shortcut", shortcut)
        order = _check_order(order)
        channels, depths = _check_ints("channels", channels, 3), _check_ints("depths", depths, 3, minimum=0)
        design = DESIGN_ALIASES.get(design, design) if isinstance(design, str) else design
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {list(DESIGNS)} (or 'isotropic'), got {design!r}")
        activation(act)  # validate before building anything
        self.design, self.out_channels = design, channels
        if design == "hierarchical":
            # The stem conv is the model's first parameter: Ultralytics' GFLOPs counter reads the input channels off it.
            self.stem = PatchEmbed(c1, max(channels[0] // 2, 8), p=4, act=act, order=order)
            widths = [self.stem.c2, *channels]
            self.levels = nn.ModuleList(
                nn.Sequential(
                    PatchEmbed(widths[i], widths[i + 1], p=2, act=act, order=order),
                    *(ConvMixerBlock(widths[i + 1], k, act, shortcut, order) for _ in range(depths[i])),
                )
                for i in range(3)
            )
        else:
            trunk_stride, dim = (16, channels[1]) if design == "isotropic16" else (8, channels[0])
            self.stem = PatchEmbed(c1, dim, p=trunk_stride, act=act, order=order)
            self.trunk = nn.Sequential(*(ConvMixerBlock(dim, k, act, shortcut, order) for _ in range(sum(depths))))
            self.pyramid = nn.ModuleList(
                _Resample(dim, c, trunk_stride / s, act, order) for c, s in zip(channels, self.strides)
            )

    def output_shape(self) -> Dict[str, FeatureSpec]:
        """Channels and stride of each output level, keyed ``P3``, ``P4``, ``P5``."""
        return {f"P{i + 3}": FeatureSpec(c, s) for i, (c, s) in enumerate(zip(self.out_channels, self.strides))}

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return the feature maps ``[P3, P4, P5]``."""
        x = self.stem(x)
        if self.design == "hierarchical":
            outputs = []
            for level in self.levels:
                x = level(x)
                outputs.append(x)
            return outputs
        x = self.trunk(x)
        return [project(x) for project in self.pyramid]


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
    """Fold every BatchNorm that directly follows a convolution in the plugin's modules into that convolution.

    For inference only (the folded model computes what the unfused one computes in eval mode). Modules in the paper's
    ``conv-act-bn`` order have nothing to fold; Ultralytics' own layers are left to its ``fuse()``. The convolutions
    stay the same objects (a ``DepthwiseConv2d`` keeps its fast path); each folded BatchNorm becomes an ``Identity``.

    Args:
        model (nn.Module): Any module; plugin modules inside it are folded.

    Returns:
        (int): The number of BatchNorm layers folded.
    """
    pairs = []  # (parent, conv name, BN name)
    for m in model.modules():
        if isinstance(m, ConvMixerBlock) and m.order != PAPER_ORDER:
            pairs += [(m, "dw", "bn1"), (m, "pw", "bn2")]
        elif isinstance(m, PatchEmbed) and m.order != PAPER_ORDER:
            pairs.append((m, "conv", "bn"))
        elif isinstance(m, ConvMixerStage) and isinstance(m.transition, nn.Sequential):
            pairs += [(m.transition, str(i), str(i + 1)) for i in range(len(m.transition) - 1)]
        elif isinstance(m, _Resample):
            pairs += [(m, str(i), str(i + 1)) for i in range(len(m) - 1)]
    folded = 0
    for parent, conv_name, norm_name in pairs:
        conv, norm = getattr(parent, conv_name), getattr(parent, norm_name)
        if type(norm) is nn.BatchNorm2d and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
            _fold(conv, norm)
            setattr(parent, norm_name, nn.Identity())
            folded += 1
    return folded

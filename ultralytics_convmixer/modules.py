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
    """ConvMixer block: residual depthwise conv -> act -> BN, then pointwise conv -> act -> BN.

    The paper has no residual around the pointwise half; ``shortcut=False`` reproduces it exactly. In a plain stack
    BatchNorm multiplies the gradient at every block: with 30 such blocks (yolov8n-sized) the stem gets 270x the
    relative gradient of the backbone's end at initialization (stock YOLOv8n: 7x), eval-mode BN statistics lag the
    weights, and the detector barely learns in YOLO's short schedules. ``shortcut=True`` (default) adds the residual.
    See README, "Why the pointwise shortcut and wider levels".

    Args:
        c1 (int): Input and output channels.
        k (int): Odd depthwise kernel size (the paper uses 9).
        act (str): Activation name, ``gelu`` by default as in the paper.
        shortcut (bool): Add a residual around the pointwise half as well.
    """

    def __init__(self, c1: int, k: int = 9, act: str = "gelu", shortcut: bool = True):
        super().__init__()
        c1, k = _check_int("c1", c1), _check_kernel("k", k)
        self.dw = DepthwiseConv2d(c1, k)
        self.act1, self.bn1 = activation(act), nn.BatchNorm2d(c1)
        self.pw = nn.Conv2d(c1, c1, 1)
        self.act2, self.bn2 = activation(act), nn.BatchNorm2d(c1)
        self.shortcut, self.c2 = _check_bool("shortcut", shortcut), c1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix space (depthwise, with residual), then channels (pointwise, residual if ``shortcut``)."""
        x = x + self.bn1(self.act1(self.dw(x)))
        y = self.bn2(self.act2(self.pw(x)))
        return x + y if self.shortcut else y


class PatchEmbed(nn.Module):
    """Patch embedding: p x p convolution with stride p -> act -> BN.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        p (int): Patch size, which is also the stride.
        act (str): Activation name.
    """

    def __init__(self, c1: int, c2: int, p: int = 8, act: str = "gelu"):
        super().__init__()
        c1, c2, p = _check_int("c1", c1), _check_int("c2", c2), _check_int("p", p)
        self.conv = nn.Conv2d(c1, c2, p, stride=p)
        self.act, self.bn = activation(act), nn.BatchNorm2d(c2)
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cut the input into non-overlapping p x p patches and embed each one."""
        return self.bn(self.act(self.conv(x)))


class ConvMixerStage(nn.Module):
    """Optional pointwise channel transition (c1 -> c2, act, BN) followed by n ConvMixer blocks; replaces a C2f row.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of ConvMixer blocks (scaled by the model's depth multiple in a YAML).
        k (int): Odd depthwise kernel size.
        act (str): Activation name.
        shortcut (bool): Residual around each block's pointwise half too (see ``ConvMixerBlock``).
    """

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 9, act: str = "gelu", shortcut: bool = True):
        super().__init__()
        c1, c2, n = _check_int("c1", c1), _check_int("c2", c2), _check_int("n", n)
        self.transition = (
            nn.Sequential(nn.Conv2d(c1, c2, 1), activation(act), nn.BatchNorm2d(c2)) if c1 != c2 else nn.Identity()
        )
        self.blocks = nn.Sequential(*(ConvMixerBlock(c2, k, act, shortcut) for _ in range(n)))
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Change channels if needed, then mix."""
        return self.blocks(self.transition(x))


class _Resample(nn.Sequential):
    """Change resolution by ``scale`` (2x up, 1x, 2x or 4x down), then pointwise conv -> act -> BN to ``c2``."""

    def __init__(self, c1: int, c2: int, scale: float, act: str):
        resample = {2.0: [nn.ConvTranspose2d(c1, c1, 2, stride=2), activation(act), nn.BatchNorm2d(c1)], 1.0: []}
        layers = resample.get(scale, [nn.MaxPool2d(round(1 / scale))])
        super().__init__(*layers, nn.Conv2d(c1, c2, 1), activation(act), nn.BatchNorm2d(c2))


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
    ):
        super().__init__()
        c1, k, shortcut = _check_int("c1", c1), _check_kernel("k", k), _check_bool("shortcut", shortcut)
        channels, depths = _check_ints("channels", channels, 3), _check_ints("depths", depths, 3, minimum=0)
        design = DESIGN_ALIASES.get(design, design)
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {list(DESIGNS)} (or 'isotropic'), got {design!r}")
        activation(act)  # validate before building anything
        self.design, self.out_channels = design, channels
        if design == "hierarchical":
            # The stem conv is the model's first parameter: Ultralytics' GFLOPs counter reads the input channels off it.
            self.stem = PatchEmbed(c1, max(channels[0] // 2, 8), p=4, act=act)
            widths = [self.stem.c2, *channels]
            self.levels = nn.ModuleList(
                nn.Sequential(
                    PatchEmbed(widths[i], widths[i + 1], p=2, act=act),
                    *(ConvMixerBlock(widths[i + 1], k, act, shortcut) for _ in range(depths[i])),
                )
                for i in range(3)
            )
        else:
            trunk_stride, dim = (16, channels[1]) if design == "isotropic16" else (8, channels[0])
            self.stem = PatchEmbed(c1, dim, p=trunk_stride, act=act)
            self.trunk = nn.Sequential(*(ConvMixerBlock(dim, k, act, shortcut) for _ in range(sum(depths))))
            self.pyramid = nn.ModuleList(
                _Resample(dim, c, trunk_stride / s, act) for c, s in zip(channels, self.strides)
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

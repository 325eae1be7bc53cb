"""Train one architecture variant of the ConvMixer models (the ablations of docs/design.md).

Variants are model YAMLs (packaged or under ``benchmarks/ablations/``) plus switches applied to every
``ConvMixerBlock`` and ``PatchEmbed`` of the model while this script runs:

- ``--init-std S``: initialize their convolutions from a truncated normal with std ``S``; ``0`` restores PyTorch's
  default (uniform, bound 1/sqrt(fan_in)). Unset: the plugin's own (std 0.02, as ConvNeXt). Behind a BatchNorm only a
  weight's direction matters, and Adam moves every weight by about ``lr`` per step, so smaller weights learn faster;
  depthwise weights (fan-in k*k) start larger than YOLOv8's dense 3x3 weights (fan-in 9*c) under PyTorch's default.
- ``--order O``: ``conv-bn-act``, ``conv-bn-add-act`` or the paper's ``conv-act-bn`` in blocks and patch embeddings,
  whatever the YAML says (the packaged YAMLs say ``conv-bn-act``).
- ``--drop-path R``: stochastic depth while training: each residual branch of each block is dropped for a whole
  sample with probability ``R`` (and the kept ones scaled by ``1 / (1 - R)``), a regularizer for the train/val gap.

Checkpoints keep ``--order`` (each block's ``order`` attribute), so a run's ``best.pt`` evaluates as it was trained in
any process; the init and drop path only matter while training. (Checkpoints from before ``order`` existed evaluate in
the paper's order; those trained with the old ``--order conv-bn-act`` class patch need ``apply_variant`` again.)
The script also registers ``ConvMixerC2f`` (YOLOv8's C2f with ConvMixer blocks as its bottlenecks) for the
``yolov8-c2f-*`` ablation YAMLs. Any ``key=value`` argument is passed to Ultralytics' ``train``.

    python benchmarks/ablate.py benchmarks/ablations/yolov8n-stages-wide.yaml
    python benchmarks/ablate.py yolov8n-convmixer.yaml --init-std 0 --order conv-act-bn epochs=30
"""

import argparse
import os
from typing import Optional

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch
import yaml
from torch import nn

from ultralytics_convmixer.integration import planner
from ultralytics_convmixer.nn import modules as cm
from ultralytics_convmixer.nn.options import ORDERS

SCREENING_ARGS = dict(
    data="shapes-detect.yaml", epochs=30, imgsz=160, fraction=0.25, batch=16, workers=1, device="cpu", seed=0
)


class ConvMixerC2f(nn.Module):
    """YOLOv8's C2f with ConvMixer blocks as its bottlenecks: split, n blocks on one half, concat all, fuse.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of ConvMixer blocks, each c2 // 2 wide.
        k (int): Odd depthwise kernel size.
        act (str): Activation name.
        shortcut (bool): Residual around each block's pointwise half too.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 7, act: str = "silu", shortcut: bool = True):
        from ultralytics.nn.modules import Conv  # here: importing it earlier would load the parser before registration

        super().__init__()
        self.c, self.c2 = c2 // 2, c2
        self.cv1 = Conv(c1, 2 * self.c, 1, act=cm.activation(act))
        self.cv2 = Conv((2 + n) * self.c, c2, 1, act=cm.activation(act))
        self.m = nn.ModuleList(cm.ConvMixerBlock(self.c, k, act, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split the input in two halves, run the blocks on the second, fuse every intermediate output."""
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(block(y[-1]) for block in self.m)
        return self.cv2(torch.cat(y, 1))


DROP_PATH = 0.0  # set by apply_variant


def _drop_path(y: torch.Tensor, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``DROP_PATH`` while training, rescaling the rest."""
    if not training or DROP_PATH == 0:
        return y
    keep = y.new_empty(y.shape[0], 1, 1, 1).bernoulli_(1 - DROP_PATH)
    return y * keep / (1 - DROP_PATH)


def _with_drop_path(layer: cm.ConvNormAct, x: torch.Tensor, residual: Optional[torch.Tensor], training: bool):
    """``layer(x, residual)`` with this variant's drop path on the residual branch."""
    if residual is None:
        return layer(x)
    if layer.add_before_act:
        return layer.act(residual + _drop_path(layer.bn(layer.conv(x)), training))
    return residual + _drop_path(layer(x), training)


def _block_forward(self, x: torch.Tensor) -> torch.Tensor:
    """``ConvMixerBlock.forward`` with the drop path of this variant on each residual branch."""
    x = _with_drop_path(self.dw, x, x, self.training)
    return _with_drop_path(self.pw, x, x if self.shortcut else None, self.training)


def register_ablation_modules() -> None:
    """Make ``ConvMixerC2f`` a plugin row; call before Ultralytics' model parser is imported."""
    planner.PLUGIN_MODULES["ConvMixerC2f"] = ConvMixerC2f
    planner.YAML_ARGS["ConvMixerC2f"] = ["c2", "k", "act", "shortcut"]


def apply_variant(init_std: Optional[float] = None, order: Optional[str] = None, drop_path: float = 0.0) -> None:
    """Patch the plugin's block and stem classes for this process, before building the model (None: as packaged)."""
    global DROP_PATH
    DROP_PATH = drop_path
    for cls in (cm.ConvMixerBlock, cm.PatchEmbed):
        original = cls.__init__

        def init(self, *args, _original=original, **kwargs):
            _original(self, *args, **kwargs)
            for layer in (m for m in self.modules() if isinstance(m, cm.ConvNormAct)) if order is not None else ():
                layer.order = order
            for conv in (m for m in self.modules() if isinstance(m, nn.Conv2d)) if init_std is not None else ():
                if init_std == 0:
                    conv.reset_parameters()
                else:
                    cm._init_conv(conv, init_std)

        cls.__init__ = init
    if drop_path > 0:
        cm.ConvMixerBlock.forward = _block_forward


def main() -> None:
    """Parse the command line, register the ablation module, patch the blocks and train."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model YAML, e.g. yolov8n-convmixer.yaml or benchmarks/ablations/yolov8n-...")
    parser.add_argument("--init-std", type=float, help="truncated-normal init std (0: PyTorch's default init)")
    parser.add_argument("--order", choices=ORDERS, help="BN/activation order in blocks and patch embeddings")
    parser.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate of each block branch")
    parser.add_argument("train_args", nargs="*", help="Ultralytics train arguments as key=value")
    args = parser.parse_intermixed_args()  # options may follow the key=value arguments, as in the docstring
    register_ablation_modules()
    apply_variant(args.init_std, args.order, args.drop_path)
    from ultralytics import YOLO

    overrides = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.train_args)}  # "30" -> 30
    YOLO(args.model).train(**{**SCREENING_ARGS, **overrides})


if __name__ == "__main__":
    main()

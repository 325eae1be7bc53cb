"""How much gradient reaches the stem at initialization: ConvMixer YAMLs, with and without the pointwise shortcut.

For each model, one forward/backward pass on a random batch in training mode (loss: mean square of the head outputs,
the same for every model) and the relative gradient ||grad|| / ||weight|| of the first convolution (the stem) and of
the backbone's last convolution (SPPF's output conv in YOLOv8 layouts), and their ratio. A plain stack of BatchNorm'd
blocks multiplies the gradient at every block, so its stem gets far larger relative updates than the rest of the
network; residual stacks do not.

``--init pytorch`` re-initializes the plugin's convolutions with PyTorch's default (uniform, bound 1/sqrt(fan_in)),
instead of the plugin's ConvNeXt-style truncated normal (std 0.02). The ratio is the SGD view of a layer's
speed; under Adam (Ultralytics' choice for short schedules) a step moves each weight by about ``lr``, so the relative
update is ``lr / rms(w)`` instead, which is what the small init evens out between the plugin's and YOLOv8's layers.

    python benchmarks/init_gradients.py                                  # stock yolov8n vs yolov8n-convmixer
    python benchmarks/init_gradients.py yolov8s.yaml yolov8s-convmixer.yaml my.yaml --imgsz 320 --init pytorch
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch
from torch import nn

import ultralytics_convmixer  # noqa: F401 - registers the plugin modules
from ultralytics_convmixer.nn.modules import ConvMixerBlock

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table  # noqa: E402


def relative_gradients(cfg: str, shortcut: bool | None, imgsz: int, batch: int, init: str = "plugin", seed: int = 0):
    """Build ``cfg`` (``shortcut`` overrides every ConvMixer block's when not None) and return its gradient ratios."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel(cfg, verbose=False).train()
    if init == "pytorch":
        plugin_modules = [m for m in model.modules() if type(m).__module__ == ConvMixerBlock.__module__]
        convs = {id(c): c for m in plugin_modules for c in m.modules() if isinstance(c, nn.Conv2d)}  # in model order
        for conv in convs.values():
            conv.reset_parameters()
    blocks = [m for m in model.modules() if isinstance(m, ConvMixerBlock)]
    if shortcut is not None:
        for block in blocks:
            block.shortcut = shortcut
    out = model(torch.randn(batch, 3, imgsz, imgsz))
    outputs = out.values() if isinstance(out, dict) else out
    sum(t.float().pow(2).mean() for t in outputs if torch.is_tensor(t)).backward()
    convs = [m for m in model.model[: len(model.yaml["backbone"])].modules() if isinstance(m, nn.Conv2d)]
    rel = [float(c.weight.grad.norm() / c.weight.detach().norm()) for c in (convs[0], convs[-1])]
    return dict(model=cfg, shortcut="-" if not blocks else str(blocks[0].shortcut).lower(), blocks=len(blocks),
                stem=rel[0], backbone_end=rel[1], stem_over_end=rel[0] / rel[1])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["yolov8n.yaml", "yolov8n-convmixer.yaml"])
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--init", choices=["plugin", "pytorch"], default="plugin", help="plugin convolutions' init")
    args = parser.parse_args()
    rows = []
    for cfg in args.models:
        rows.append(relative_gradients(cfg, None, args.imgsz, args.batch, args.init))
        if rows[-1]["blocks"]:  # the same model with the paper's block (no pointwise shortcut)
            rows.append(relative_gradients(cfg, False, args.imgsz, args.batch, args.init))
    print(markdown_table(rows, number_format="{:.3g}"))


if __name__ == "__main__":
    main()

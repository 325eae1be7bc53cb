"""PyTorch CPU latency at batch 1: stock yolov8n and yolov8n-convmixer, as is and without the plugin's per-call work.

Where eager PyTorch spends ConvMixer's time that is ours to fix: the depthwise layers' fast-path decision on every
call, and the call of a BatchNorm folded to ``Identity``. Variants without each (patched in only for their own forward),
both models in channels-last layout, and both traced as TorchScript, as the exporter traces them. All are built in one
process and timed taking turns run by run (median of ``--runs``), ``--repeats`` times with the order reversed every
other repeat; printed: each variant's median over repeats (range) and its ratio to stock::

    python benchmarks/eager_latency.py STOCK.pt CONVMIXER.pt --imgsz 160 --runs 100 --repeats 5
"""

import argparse
import statistics
import sys
from functools import partial

import torch
from torch import nn
from ultralytics import YOLO

from ultralytics_convmixer.compare.timing import interleaved_medians
from ultralytics_convmixer.nn import dwconv, modules


def fused(path: str, channels_last: bool = False) -> nn.Module:
    """The checkpoint's model as Ultralytics predicts with it: BatchNorms folded, eval mode, float."""
    m = YOLO(path).model.fuse().eval().float()
    return m.to(memory_format=torch.channels_last) if channels_last else m


def plain_dw_forward(self, x):
    """DepthwiseConv2d without the per-call fast-path decision (what nn.Conv2d.forward does)."""
    return self._conv_forward(x, self.weight, self.bias)


def lean_forward(self, x, residual=None):
    """ConvNormAct for a folded conv-bn-act layer: no Identity call for the folded BatchNorm."""
    y = self.act(self.conv(x))
    return y if residual is None else residual + y


class Patched(nn.Module):
    """Run ``model`` with class-level patches applied only during its forward."""

    def __init__(self, model, dw=False, lean=False):
        super().__init__()
        self.model, self.dw, self.lean = model, dw, lean

    def forward(self, x):
        saved = dwconv.DepthwiseConv2d.forward, modules.ConvNormAct.forward
        try:
            if self.dw:
                dwconv.DepthwiseConv2d.forward = plain_dw_forward
            if self.lean:
                modules.ConvNormAct.forward = lean_forward
            return self.model(x)
        finally:
            dwconv.DepthwiseConv2d.forward, modules.ConvNormAct.forward = saved


def traced(model: nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    """``model`` traced as the TorchScript exporter traces it."""
    import copy

    model = copy.deepcopy(model)
    model.model[-1].export, model.model[-1].format = True, "torchscript"  # as Ultralytics' exporter: one output
    with torch.inference_mode(False), torch.no_grad():
        return torch.jit.trace(model, x, strict=False, check_trace=False)


def main() -> None:
    """Build the variants, time them taking turns, print medians and ratios to stock."""
    p = argparse.ArgumentParser()
    p.add_argument("weights", nargs=2)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", nargs="*")
    a = p.parse_args()
    x = torch.rand(1, 3, a.imgsz, a.imgsz)
    xl = x.to(memory_format=torch.channels_last)
    stock, cm = fused(a.weights[0]), fused(a.weights[1])
    variants = {
        "stock": (stock, x),
        "convmixer": (cm, x),
        "convmixer, no dw fast-path check": (Patched(cm, dw=True), x),
        "convmixer, no Identity BN call": (Patched(cm, lean=True), x),
        "convmixer, both": (Patched(cm, dw=True, lean=True), x),
        "stock channels_last": (fused(a.weights[0], True), xl),
        "convmixer channels_last": (fused(a.weights[1], True), xl),
        "stock traced": (traced(stock, x), x),
        "convmixer traced": (traced(cm, x), x),
    }
    if a.only:
        variants = {k: v for k, v in variants.items() if k in a.only or k == "stock"}
    names, per = list(variants), {n: [] for n in variants}
    with torch.inference_mode():
        for rep in range(a.repeats):
            order = names[:: -1 if rep % 2 else 1]
            steps = [{"b1": (partial(variants[n][0], variants[n][1]), lambda: None)} for n in order]
            for n, medians in zip(order, interleaved_medians(steps, a.runs, warmup=10)):
                per[n].append(medians["b1"])
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, imgsz {a.imgsz}, runs {a.runs}, "
        f"repeats {a.repeats}"
    )
    for n in names:
        ratios = [v / s for v, s in zip(per[n], per["stock"])]
        print(
            f"  {n:36s} {statistics.median(per[n]):7.2f} ms ({min(per[n]):.2f}-{max(per[n]):.2f})  "
            f"/ stock {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

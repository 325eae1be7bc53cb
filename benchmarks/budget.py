"""Params and GFLOPs of every packaged ConvMixer YAML against stock YOLOv8 of the same task and scale.

Measured with the installed Ultralytics' own counters (``get_flops``: 640 px, classify 224 px), in one process.

    python benchmarks/budget.py                      # the README table
    python benchmarks/budget.py --designs            # backbone designs compared at the default budget
    python benchmarks/budget.py --json budget.json   # also write the numbers
"""

import argparse
import copy
import json
import os

os.environ.setdefault("YOLO_OFFLINE", "1")

from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils.torch_utils import get_flops

TASKS = {"detect": ("", ""), "segment": ("-seg", "-seg"), "pose": ("-pose", "-pose"), "obb": ("-obb", "-obb"),
         "classify": ("-cls", "-cls")}  # fmt: skip
# Alternatives to the packaged hierarchical backbone, each at depths that land near the stock budget.
DESIGNS = {
    "hierarchical [512,768,1024] x [14,9,6] (default)": None,
    "hierarchical [256,512,1024] x [46,30,15] (deep, narrow)": ([256, 512, 1024], [46, 30, 15], 7, "hierarchical"),
    "isotropic16 [6,30,6], trunk 768": ([256, 768, 1024], [6, 30, 6], 7, "isotropic16"),
    "isotropic16 [4,16,4], trunk 768": ([256, 768, 1024], [4, 16, 4], 7, "isotropic16"),
    "isotropic8 [2,6,4], trunk 256": ([256, 512, 1024], [2, 6, 4], 7, "isotropic8"),
    # benchmarks/ablations/yolov8-convmixer-p4heavy.yaml: faster on CPU ONNX Runtime at m and l (README, "Speed")
    "hierarchical [256,640,1024] x [24,54,0] (P4-heavy)": ([256, 640, 1024], [24, 54, 0], 3, "hierarchical"),
}


def measure(cfg, task: str) -> tuple:
    """Return (params in millions, GFLOPs) of a model name or YAML dict."""
    model = YOLO(cfg, task=task).model if isinstance(cfg, str) else _from_dict(cfg, task)
    return sum(p.numel() for p in model.parameters()) / 1e6, get_flops(model, 224 if task == "classify" else 640)


def _from_dict(d: dict, task: str):
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel

    return (ClassificationModel if task == "classify" else DetectionModel)(copy.deepcopy(d), verbose=False)


def budget_table(scales: str) -> list:
    rows = []
    for task, (ours, stock) in TASKS.items():
        for s in scales:
            p, g = measure(f"yolov8{s}-convmixer{ours}.yaml", task)
            sp, sg = measure(f"yolov8{s}{stock}.yaml", task)
            rows.append(dict(model=f"yolov8{s}-convmixer{ours}", params_m=p, gflops=g, stock_params_m=sp,
                             stock_gflops=sg, params_ratio=p / sp, gflops_ratio=g / sg))  # fmt: skip
    return rows


def design_table(scales: str) -> list:
    base, rows = yaml_model_load("yolov8-convmixer.yaml"), []
    stock = {s: measure(f"yolov8{s}.yaml", "detect") for s in scales}
    for name, args in DESIGNS.items():
        d = copy.deepcopy(base)
        if args:
            d["backbone"][0][3] = list(args)
            for i, c in enumerate(args[0]):  # Index rows name the unscaled level channels
                d["backbone"][1 + i][3][0] = c
        for s in scales:
            d["scale"] = s
            p, g = measure(d, "detect")
            rows.append(dict(design=name, scale=s, params_ratio=p / stock[s][0], gflops_ratio=g / stock[s][1]))
    return rows


def markdown(rows: list) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="nsmlx")
    parser.add_argument("--designs", action="store_true", help="compare backbone designs instead")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    rows = design_table(args.scales) if args.designs else budget_table(args.scales)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)

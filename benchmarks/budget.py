"""Params and GFLOPs of every packaged ConvMixer YAML against stock YOLO of the same family, task and scale.

Measured with the installed Ultralytics' own counters (``get_flops``: 640 px, classify 224 px), in one process.

    python benchmarks/budget.py --write docs/budget.md   # the budget tables of the docs (builds ~170 models on CPU)
    python benchmarks/budget.py --scales n               # print the tables of one scale
    python benchmarks/budget.py --designs                # backbone designs compared at the default budget
    python benchmarks/budget.py --json budget.json       # also write the numbers
"""

import argparse
import copy
import os
import shlex
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch
import ultralytics
from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils.torch_utils import get_flops

from ultralytics_convmixer.integration.resources import FAMILY_TASKS, TASK_SUFFIXES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Family(NamedTuple):
    """A model family: its name, tasks and the YAML names of stock and ConvMixer models (``{scale}``, ``{suffix}``)."""

    name: str
    tasks: tuple
    stock: str
    ours: str


FAMILIES = [
    Family(title, FAMILY_TASKS[key], f"{key}{{scale}}{{suffix}}.yaml", f"{key}{{scale}}-convmixer{{suffix}}.yaml")
    for key, title in (("yolov8", "YOLOv8"), ("yolo11", "YOLO11"), ("yolo26", "YOLO26"))
]

COLUMNS = [
    "model",
    "task",
    ("params (M)", "params_m"),
    ("stock params (M)", "stock_params_m"),
    ("params ratio", "params_ratio"),
    ("GFLOPs", "gflops"),
    ("stock GFLOPs", "stock_gflops"),
    ("GFLOPs ratio", "gflops_ratio"),
]

# Alternatives to the packaged hierarchical backbone, each at depths that land near the stock budget.
DESIGNS = {
    "hierarchical [512,768,1024] x [14,9,6] (default)": None,
    "hierarchical [256,512,1024] x [46,30,15] (deep, narrow)": ([256, 512, 1024], [46, 30, 15], 7, "hierarchical"),
    "isotropic16 [6,30,6], trunk 768": ([256, 768, 1024], [6, 30, 6], 7, "isotropic16"),
    "isotropic16 [4,16,4], trunk 768": ([256, 768, 1024], [4, 16, 4], 7, "isotropic16"),
    "isotropic8 [2,6,4], trunk 256": ([256, 512, 1024], [2, 6, 4], 7, "isotropic8"),
    # benchmarks/ablations/yolov8-convmixer-p4heavy.yaml: faster on CPU ONNX Runtime at m and l (docs/speed.md)
    "hierarchical [256,640,1024] x [24,54,0] (P4-heavy)": ([256, 640, 1024], [24, 54, 0], 3, "hierarchical"),
}


def measure(cfg, task: str) -> tuple:
    """Return (params in millions, GFLOPs) of a model name or YAML dict."""
    model = YOLO(cfg, task=task).model if isinstance(cfg, str) else _from_dict(cfg, task)
    return sum(p.numel() for p in model.parameters()) / 1e6, get_flops(model, 224 if task == "classify" else 640)


def _from_dict(d: dict, task: str):
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel

    return (ClassificationModel if task == "classify" else DetectionModel)(copy.deepcopy(d), verbose=False)


def budget_table(scales: str, family: Family = FAMILIES[0]) -> list:
    """One row per task and scale of ``family``: the ConvMixer model's params and GFLOPs, stock's, and the ratios."""
    rows = []
    for task in family.tasks:
        suffix = TASK_SUFFIXES[task]
        for s in scales:
            p, g = measure(family.ours.format(scale=s, suffix=suffix), task)
            sp, sg = measure(family.stock.format(scale=s, suffix=suffix), task)
            rows.append(dict(model=Path(family.ours.format(scale=s, suffix=suffix)).stem, task=task, params_m=p,
                             gflops=g, stock_params_m=sp, stock_gflops=sg, params_ratio=p / sp,
                             gflops_ratio=g / sg))  # fmt: skip
    return rows


def design_table(scales: str) -> list:
    """One row per backbone design of ``DESIGNS`` and scale: params and GFLOPs ratios to stock YOLOv8 detect."""
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


def document(sections: Sequence[tuple], argv: Sequence[str]) -> str:
    """The Markdown file ``--write`` writes: a generated-by header, then each ``(title, table)`` section."""
    script = Path(__file__).resolve()
    script = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    command = shlex.join(["python", str(script), *argv])
    lines = [
        "# Params and GFLOPs budget",
        "",
        f"Generated by `{command}` with Ultralytics {ultralytics.__version__} and torch {torch.__version__}; do not "
        "edit by hand.",
        "",
        "Params in millions; GFLOPs from Ultralytics' `get_flops` at 640 px (classify: 224 px); ratios are ConvMixer "
        "over stock.",
        "",
        "Every classify model's layer 0 is its family's detect, segment, pose and OBB backbone, row and scales alike, "
        "so that `pretrained=` carries a classify pretraining into those models whole. Where stock's classify model is "
        "wider than its detect backbone (YOLOv8-cls keeps 1024 channels at m, l and x, where YOLOv8 detect stops at "
        "768 and 512), the ConvMixer classify model is below stock's budget: the transfer wins over the budget there.",
    ]
    for title, table in sections:
        lines += ["", f"## {title}", "", table]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    """Measure, print the tables and write the files the options ask for."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="nsmlx")
    parser.add_argument("--designs", action="store_true", help="compare backbone designs instead")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--write", type=Path, help="write the tables as a Markdown file, e.g. docs/budget.md")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.designs:
        rows = design_table(args.scales)
        sections = [("Backbone designs (YOLOv8 detect)", markdown_table(rows))]
    else:
        per_family = [(family.name, budget_table(args.scales, family)) for family in FAMILIES]
        rows = [row for _, family_rows in per_family for row in family_rows]
        sections = [(name, markdown_table(family_rows, COLUMNS)) for name, family_rows in per_family]
    for title, table in sections:
        print(f"{title}\n\n{table}\n")
    if args.json:
        write_json(args.json, rows)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(document(sections, argv))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()

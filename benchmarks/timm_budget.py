"""Params and GFLOPs of the paper's three timm ConvMixers imported for every task, beside the nearest stock YOLOv8.

Each model is ``import_timm`` of ``timm.create_model(name, pretrained=False)`` (the architecture, no download), with
the neck and head of the stock scale it picks (nearest in GFLOPs); counted by Ultralytics' own counters at 640 px
(classify 224 px) in one process.

    python benchmarks/timm_budget.py                        # print the table
    python benchmarks/timm_budget.py --json timm_budget.json
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import timm
from ultralytics.utils.torch_utils import get_flops

from ultralytics_convmixer.integration.checkpoints import build_model
from ultralytics_convmixer.integration.resources import TASK_SUFFIXES
from ultralytics_convmixer.pretrained.timm_import import IMPORT_TASKS, import_timm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, write_json  # noqa: E402

PAPER_MODELS = ("convmixer_768_32", "convmixer_1024_20_ks9_p14", "convmixer_1536_20")


def row(name: str, task: str) -> dict:
    """Params and GFLOPs of ``name`` imported for ``task``, and of the stock YOLOv8 model of the scale it picked."""
    imgsz = 224 if task == "classify" else 640
    result = import_timm(timm.create_model(name, pretrained=False), task=task)
    stock_name = f"yolov8{result.scale}{TASK_SUFFIXES[task]}.yaml"
    stock = build_model(stock_name, task)
    params = sum(p.numel() for p in result.model.parameters()) / 1e6
    stock_params = sum(p.numel() for p in stock.parameters()) / 1e6
    gflops, stock_gflops = get_flops(result.model, imgsz), get_flops(stock, imgsz)
    return {
        "timm model": name,
        "task": task,
        "trunk": result.config.describe(),
        "params_m": params,
        "gflops": gflops,
        "nearest stock": stock_name.removesuffix(".yaml"),
        "stock_params_m": stock_params,
        "stock_gflops": stock_gflops,
        "gflops_ratio": gflops / stock_gflops,
    }


def main() -> None:
    """Build every model, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=PAPER_MODELS, help="timm ConvMixer names")
    parser.add_argument("--tasks", nargs="+", default=IMPORT_TASKS, choices=IMPORT_TASKS)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        for task in args.tasks:
            rows.append(row(name, task))
            print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
            if args.json:
                write_json(args.json, rows)
    columns = ["timm model", "task", "params_m", "gflops", "nearest stock", "stock_params_m", "stock_gflops",
               ("gflops_ratio", "gflops_ratio", "{:.2f}x")]  # fmt: skip
    print(markdown_table(rows, columns))


if __name__ == "__main__":
    main()

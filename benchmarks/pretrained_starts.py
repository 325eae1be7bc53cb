"""Measure the two pretrained starts against training from scratch and stock YOLOv8n, on the shapes sets, offline.

The routes, each in its own process, timed (wall-clock and CPU minutes):

1. ``classify``: ``yolo classify train model=yolov8n-convmixer-cls.yaml data=shapes-classify.yaml``; its backbone is
   the detector's, so ``pretrained=`` (here ``YOLO(yaml).load(best.pt)``, the same transfer) starts a detector from it.
2. ``distill``: ``ultralytics-convmixer distill TEACHER --student yolov8n-convmixer.yaml --images shapes-detect.yaml``,
   the teacher a timm ConvMixer pretrained on shapes-classify (``benchmarks/pretrain_shapes.py``), the images the
   detect set's training images without their labels.

Then one ``ultralytics-convmixer compare`` per recipe with stock yolov8n, yolov8n-convmixer from scratch and the two
starts, and the per-epoch mAP50-95 of every run read off its results.csv::

    python benchmarks/pretrained_starts.py --teacher runs/pretrain/convmixer.pth --out runs/starts
    python benchmarks/pretrained_starts.py --teacher ... --out ... --task segment      # one start on another task

Writes ``<out>/starts.json`` (after every step) and prints Markdown tables. Rerunning skips what is done.
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import load_state, markdown_table, write_json  # noqa: E402

RECIPES = {  # the fine-tune of docs/pretrained.md (timm start) and the README's quick start
    "quarter": ["--data", "shapes-detect.yaml", "epochs=10", "imgsz=160", "fraction=0.25", "batch=16"],
    "easy": ["--data", "shapes-easy.yaml", "epochs=10", "imgsz=160", "batch=16"],
}
TASK_DATA = {"detect": "shapes-detect.yaml", "segment": "shapes-segment.yaml", "pose": "shapes-pose.yaml"}
SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose"}


def timed(cmd: list, log: Path) -> dict:
    """Run ``cmd`` with its output in ``log``; return its wall-clock and CPU minutes (all its processes)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    with open(log, "w") as f:
        subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_min": (time.time() - start) / 60, "cpu_min": cpu / 60}


def python(code: str) -> list:
    return [sys.executable, "-c", code]


def classify(args, out: Path) -> dict:
    """Pretrain the classify model on shapes-classify; return its cost and best top-1."""
    run = out / "classify"
    code = (
        "from ultralytics import YOLO\n"
        f"YOLO('yolov8n-convmixer-cls.yaml').train(data={args.cls_data!r}, epochs={args.cls_epochs}, "
        f"imgsz={args.cls_imgsz}, batch={args.batch}, workers=2, device='cpu', seed=0, project={str(out)!r}, "
        "name='classify', exist_ok=True, plots=False)"
    )
    cost = timed(python(code), out / "classify.log")
    top1 = float(list(_csv(run / "results.csv"))[-1]["metrics/accuracy_top1"])
    return {**cost, "weights": str(run / "weights" / "best.pt"), "top1": top1}


def distill(args, out: Path) -> dict:
    """Distill the teacher into yolov8n-convmixer on the detect set's training images; return its cost."""
    cmd = [sys.executable, "-m", "ultralytics_convmixer.cli", "distill", args.teacher, "--student",
           "yolov8n-convmixer.yaml", "--images", "shapes-detect.yaml", "--out", out / "distilled.pt", "--epochs",
           args.distill_epochs, "--imgsz", args.distill_imgsz, "--batch", args.batch, "--device", "cpu", "--force",
           "--levels", args.levels, "--loss", args.loss, "--teacher-imgsz", args.teacher_imgsz, "workers=2",
           f"project={out}", "name=distill", "exist_ok=True", "plots=False", *args.distill_args]  # fmt: skip
    cost = timed(cmd, out / "distill.log")
    cosine = max(float(r["metrics/cosine"]) for r in _csv(out / "distill" / "results.csv"))
    return {**cost, "weights": str(out / "distilled.pt"), "cosine": cosine}


def start(model_yaml: str, weights: str, path: Path) -> str:
    """Write ``model_yaml`` with ``weights`` loaded (what ``pretrained=weights`` gives a training) as ``path``."""
    code = f"from ultralytics import YOLO\nm = YOLO({model_yaml!r}); m.load({weights!r}); m.save({str(path)!r})"
    subprocess.run(python(code), check=True, capture_output=True)
    return str(path)


def compare(models: list, recipe: list, out: Path) -> dict:
    """Run ``compare`` on ``models``; return each model's final metrics and per-epoch mAP50-95."""
    cmd = [sys.executable, "-m", "ultralytics_convmixer.cli", "compare", *models, *recipe, "--out", out, "workers=2",
           "device=cpu", "seed=0"]  # fmt: skip
    timed(cmd, out.with_suffix(".log"))
    result = {}
    for row in _csv(out / "compare.csv"):
        run = out / "runs" / row["model"]
        rows = list(_csv(run / "results.csv"))
        # the task's own metric: masks for segment, keypoints for pose, boxes for detect
        key = next(f"metrics/mAP50-95({k})" for k in "MPB" if f"metrics/mAP50-95({k})" in rows[0])
        curve = [r[key] for r in rows]
        result[row["model"]] = {**row, "map50_95_per_epoch": [float(x) for x in curve]}
    return result


def _csv(path: Path):
    import csv

    with open(path, encoding="utf-8") as f:
        yield from ({k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f))


def teacher_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first paragraph, with the shapes teacher and the output folder (``out``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="timm ConvMixer checkpoint (benchmarks/pretrain_shapes.py)")
    p.add_argument("--out", type=Path, default=Path(out))
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = teacher_parser(__doc__, "runs/starts")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--task", default="detect", choices=list(TASK_DATA), help="the fine-tune's task")
    p.add_argument("--cls-data", default="shapes-classify.yaml", help="classify data: a YAML or a folder")
    p.add_argument("--cls-epochs", type=int, default=20)
    p.add_argument("--cls-imgsz", type=int, default=160)
    p.add_argument("--distill-epochs", type=int, default=10)
    p.add_argument("--distill-imgsz", type=int, default=160)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--levels", default="P3,P4,P5")
    p.add_argument("--loss", default="cosine")
    p.add_argument("--teacher-imgsz", type=int, default=0)
    p.add_argument("--distill-args", nargs="*", default=[], help="more key=value arguments for distill")
    p.add_argument("--stages", nargs="+", default=["classify", "distill", "compare"], help="the steps to run")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out, state_file, state = load_state(args.out, "starts.json")
    for name, step in (("classify", classify), ("distill", distill)):
        if name not in state and name in args.stages:
            state[name] = step(args, out)
            write_json(state_file, state)
    if "compare" not in args.stages:
        return
    suffix = SUFFIX[args.task]
    models = [f"yolov8n{suffix}.yaml", f"yolov8n-convmixer{suffix}.yaml"]
    models.append(start(f"yolov8n-convmixer{suffix}.yaml", state["classify"]["weights"], out / f"from-cls{suffix}.pt"))
    models.append(start(f"yolov8n-convmixer{suffix}.yaml", state["distill"]["weights"], out / f"distilled{suffix}.pt"))
    for recipe in args.recipes if args.task == "detect" else ["quarter"]:
        key = f"compare-{recipe}{suffix}"
        data = RECIPES[recipe] if args.task == "detect" else ["--data", TASK_DATA[args.task], *RECIPES[recipe][2:]]
        if key not in state:
            state[key] = compare(models, data, out / key)
            write_json(state_file, state)
        print(f"\n{key}\n")
        rows = [{"model": m, **{f"epoch {i + 1}": v for i, v in enumerate(r["map50_95_per_epoch"])}}
                for m, r in state[key].items()]  # fmt: skip
        print(markdown_table(rows))
    costs = [{"route": k, **{m: state[k][m] for m in ("wall_min", "cpu_min")}} for k in ("classify", "distill")]
    print("\n" + markdown_table(costs, number_format="{:.1f}"))


if __name__ == "__main__":
    main()

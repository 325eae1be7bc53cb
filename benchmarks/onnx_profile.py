"""Where ONNX Runtime spends its CPU time in a packaged ConvMixer detect model and in stock YOLOv8 of the same scale.

Both models are exported as ``yolo export`` does (fixed size, batch 1), opened with ONNX Runtime's per-node profiler
(spinning off, as in ``compare``), run in turns, and each node's kernel time is summed by operator type and by part of
the model (backbone: the YAML's ``backbone`` rows; neck and head: the rest). Wall times are noisy on a shared machine;
the kernel-time split says which part and which operators make a difference, which the wall time cannot.

    python benchmarks/onnx_profile.py --scale m --imgsz 640 --runs 6
"""

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

from ultralytics import YOLO

from ultralytics_convmixer.compare import export_onnx, interleaved_medians, onnx_session, onnx_step


def kernel_times(profile: list, backbone_rows: int, runs: int) -> dict:
    """Sum an ONNX Runtime profile's node kernel times (ms per run) by operator type and by part of the model."""
    by_op, by_part = collections.Counter(), collections.Counter()
    for event in profile:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        ms = event["dur"] / 1000 / runs
        layer = event["name"].split("/")[1] if event["name"].count("/") > 1 else ""  # "/model.12/cv1/conv/Conv..."
        index = int(layer.split(".")[1]) if layer.startswith("model.") else None
        part = "other" if index is None else "backbone" if index < backbone_rows else "neck+head"
        by_op[event["args"]["op_name"]] += ms
        by_part[part] += ms
    return {"total": sum(by_part.values()), "parts": dict(by_part), "ops": dict(by_op)}


def profile(names: list, imgsz: int, runs: int, warmup: int) -> list:
    """Return per model ``{"model", "wall_ms", "total", "parts", "ops"}`` (kernel times in ms per run)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [YOLO(name) for name in names]
        paths = [export_onnx(m, Path(tmp) / Path(n).with_suffix(".onnx").name, imgsz, dynamic=False)
                 for m, n in zip(models, names)]  # fmt: skip
        sessions = [onnx_session(p, profile_prefix=str(p.with_suffix(""))) for p in paths]
        steps = [{"onnx": (onnx_step(s, imgsz, 1), lambda: None)} for s in sessions]
        walls = interleaved_medians(steps, runs, warmup)
        for name, model, session, wall in zip(names, models, sessions, walls):
            events = json.loads(Path(session.end_profiling()).read_text())
            row = kernel_times(events, len(model.model.yaml["backbone"]), runs + warmup)
            rows.append({"model": name, "wall_ms": wall["onnx"], **row})
    return rows


def markdown(rows: list, top: int = 6) -> str:
    """One table: wall time, kernel time in total, per part and for the slowest operator types, with ratios."""
    stock, ours = rows
    ops = sorted(
        set(stock["ops"]) | set(ours["ops"]), key=lambda op: -max(stock["ops"].get(op, 0), ours["ops"].get(op, 0))
    )
    keys = [("wall (median)", "wall_ms", None), ("kernels: total", "total", None)]
    keys += [(f"kernels: {part}", "parts", part) for part in ("backbone", "neck+head", "other")]
    keys += [(f"op: {op}", "ops", op) for op in ops[:top]]
    lines = [f"| ms per run | {stock['model']} | {ours['model']} | ratio |", "|---|---:|---:|---:|"]
    for label, key, sub in keys:
        a, b = ((r[key] if sub is None else r[key].get(sub, 0.0)) for r in rows)
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f}x |" if a else f"| {label} | {a:.1f} | {b:.1f} | - |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="n")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    rows = profile(
        [f"yolov8{args.scale}.yaml", f"yolov8{args.scale}-convmixer.yaml"], args.imgsz, args.runs, args.warmup
    )
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))

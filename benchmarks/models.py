"""Whole-model speed of the packaged ConvMixer detect models against stock YOLOv8 of the same scale, in one process.

Per scale and model: a training step (forward, Ultralytics' detection loss, backward, SGD step; fp16 autocast on
CUDA, as Ultralytics' AMP), inference at batch 1 and at ``--batch`` (fused, eval; fp16 on CUDA, fp32 on CPU), peak
memory of the training step after warm-up (CUDA only), and ONNX Runtime CPU latency at batch 1 with ``--onnx``. Every
number is the median of ``--runs`` timed runs after warm-up, and each ConvMixer number is printed as a ratio to stock.
On CUDA the settings are Ultralytics' defaults: training as its trainer runs it (``deterministic=True``: deterministic
cuDNN algorithms, no cuDNN benchmark mode; channels_last), inference as its predictor runs a ``.pt`` model (NCHW).

    python benchmarks/models.py --device cpu --imgsz 160 --batch 4 --scales n            # CI-sized, a minute
    python benchmarks/models.py --device 0 --imgsz 640 --batch 32 --scales nslmx --out $OUT/models.json  # H100
    python benchmarks/models.py --device cpu --imgsz 640 --onnx --scales ns --skip-train --repeats 8  # CPU ONNX

``--variants`` adds other ConvMixer detect YAMLs (named ``yolov8-NAME.yaml``, as packaged ones; the scale letter is
inserted per scale) to the same process, each with its own ratios to stock:

    python benchmarks/models.py --device cpu --imgsz 640 --onnx --scales ml --skip-train --repeats 4 \
        --variants benchmarks/ablations/yolov8-convmixer-p4heavy.yaml
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace
from ultralytics.utils.torch_utils import init_seeds

from ultralytics_convmixer.compare.timing import export_onnx, interleaved_medians, median_ms, onnx_session, onnx_step

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import write_json  # noqa: E402


def timed(step, args, device: torch.device, warmup: Optional[int] = None) -> float:
    """Median milliseconds of ``step`` (CUDA synchronised) after ``warmup`` calls (default ``--warmup``)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return median_ms(step, args.runs, args.warmup if warmup is None else warmup, sync)


def fake_batch(batch: int, imgsz: int, device: torch.device, objects: int = 8) -> dict:
    """Random images with ``objects`` random boxes each, in the layout Ultralytics' detection loss expects."""
    g = torch.Generator().manual_seed(0)
    n = batch * objects
    xy, wh = torch.rand(n, 2, generator=g) * 0.8 + 0.1, torch.rand(n, 2, generator=g) * 0.2 + 0.02
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(objects).float().to(device),
        "cls": torch.randint(0, 80, (n, 1), generator=g).float().to(device),
        "bboxes": torch.cat([xy, wh], 1).to(device),
    }


def train_step_ms(name: str, args, device: torch.device) -> tuple:
    """Median training-step time (ms) and peak CUDA memory (MB, None on CPU)."""
    model = DetectionModel(name, verbose=False).to(device).train()
    model.args = IterableSimpleNamespace(**DEFAULT_CFG_DICT)  # loss gains (box, cls, dfl), as the trainer sets them
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # as Ultralytics' trainer does on CUDA
    batch = fake_batch(args.batch, args.imgsz, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss, _ = model.loss(batch)
        scaler.scale(loss.sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):  # first calls pick algorithms and may autotune: not the steady state's memory
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    ms = timed(step, args, device, warmup=0)  # warmed up above
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return ms, peak


def inference_ms(name: str, batch: int, args, device: torch.device) -> float:
    model = DetectionModel(name, verbose=False).fuse(verbose=False).eval().to(device)
    x = torch.rand(batch, 3, args.imgsz, args.imgsz, device=device)
    if device.type == "cuda":  # fp16 (half=True) and NCHW, as Ultralytics' AutoBackend runs a .pt model on CUDA
        model, x = model.half(), x.half()
    with torch.inference_mode():
        return timed(lambda: model(x), args, device)


def onnx_ms(names: list, args) -> tuple:
    """ONNX Runtime CPU latency at batch 1 of Ultralytics ONNX exports (opset and graph as `yolo export`).

    The models' sessions take turns run by run, so drift of the CPU's speed (turbo, other load) hits all of them
    alike. A session's speed also changes from one opening to the next by more than the models differ (2 cores, s
    at 640 px: blocks of 20 runs in one process gave the ratio 0.96x, 1.07x and 0.99x), so the comparison is made
    ``args.repeats`` times, each with fresh sessions and the order of turns reversed every other time.

    Returns:
        (tuple[list[float], list[list[float]]]): Per model, the median over repeats of each repeat's median of
            ``args.runs`` runs (after ``args.warmup`` untimed ones); and per model, each repeat's ratio to the first.
    """
    from ultralytics import YOLO

    per_repeat = []  # per repeat, per model (in ``names`` order): median ms
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            export_onnx(YOLO(name), Path(tmp) / Path(name).with_suffix(".onnx").name, args.imgsz, dynamic=False)
            for name in names
        ]
        for repeat in range(max(1, args.repeats)):
            order = list(range(len(paths)))[:: -1 if repeat % 2 else 1]
            sessions = [onnx_session(paths[i]) for i in order]  # CPU; idle sessions do not spin (see onnx_session)
            steps = [{"onnx": (onnx_step(session, args.imgsz, 1), lambda: None)} for session in sessions]
            medians = dict(zip(order, (r["onnx"] for r in interleaved_medians(steps, args.runs, args.warmup))))
            per_repeat.append([medians[i] for i in range(len(paths))])
            del sessions, steps  # free one repeat's sessions before the next opens its own
    ms = [statistics.median(run[i] for run in per_repeat) for i in range(len(names))]
    return ms, [[run[i] / run[0] for run in per_repeat] for i in range(len(names))]


def scaled_name(yaml_path: str, scale: str) -> str:
    """Name ``dir/yolov8-NAME.yaml`` at a scale: ``dir/yolov8{scale}-NAME.yaml``, as Ultralytics resolves scales."""
    path = Path(yaml_path)
    if not path.name.startswith("yolov8-"):
        raise ValueError(f"--variants: {yaml_path} must be named yolov8-NAME.yaml (a scale letter picks the scale)")
    return str(path.with_name(path.name.replace("yolov8-", f"yolov8{scale}-", 1)))


def measure(name: str, args, device: torch.device) -> dict:
    row = {"model": name}
    if not args.skip_train:
        row["train_step_ms"], row["train_peak_mb"] = train_step_ms(name, args, device)
    row["infer_b1_ms"] = inference_ms(name, 1, args, device)
    row[f"infer_b{args.batch}_ms"] = inference_ms(name, args.batch, args, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or a CUDA index such as 0")
    parser.add_argument("--scales", default="n")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4, help="training and large-batch inference batch size")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--onnx", action="store_true", help="also ONNX Runtime CPU latency at batch 1")
    parser.add_argument("--repeats", type=int, default=1, help="ONNX comparisons, each with fresh sessions")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--variants", nargs="*", default=[], help="other ConvMixer YAMLs, named yolov8-NAME.yaml")
    parser.add_argument("--out", help="write the rows as JSON to this file")
    args = parser.parse_args()
    device = torch.device(f"cuda:{args.device}" if args.device.isdigit() else args.device)
    init_seeds(0, deterministic=True)  # as Ultralytics' trainer with its default deterministic=True
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    meta.update(imgsz=args.imgsz, batch=args.batch, runs=args.runs, repeats=args.repeats)
    meta.update(cudnn_benchmark=torch.backends.cudnn.benchmark, cudnn_deterministic=torch.backends.cudnn.deterministic)
    meta["date"] = time.strftime("%Y-%m-%d")
    rows = []
    for s in args.scales:
        names = [f"yolov8{s}.yaml", f"yolov8{s}-convmixer.yaml", *(scaled_name(v, s) for v in args.variants)]
        stock, *others = (measure(name, args, device) for name in names)
        if args.onnx:
            ms, repeat_ratios = onnx_ms(names, args)
            stock["onnx_cpu_b1_ms"] = ms[0]
            for row, m, r in zip(others, ms[1:], repeat_ratios[1:]):
                row["onnx_cpu_b1_ms"], row["onnx_cpu_b1_repeat_ratios"] = m, r
        rows.append(stock)
        for ours in others:
            ratios = {f"{k}_ratio": ours[k] / stock[k] for k in stock if k != "model" and ours[k] and stock[k]}
            rows.append({**ours, **ratios})
            label = Path(ours["model"]).stem
            for key, ratio in ratios.items():
                stock_value, value = stock[key[:-6]], ours[key[:-6]]
                print(f"{label}: {key[:-6]:>16} stock {stock_value:9.2f}  convmixer {value:9.2f}  {ratio:.2f}x")
            if args.onnx and args.repeats > 1:
                r = ours["onnx_cpu_b1_repeat_ratios"]
                spread = f"median {statistics.median(r):.2f}x, {min(r):.2f}x-{max(r):.2f}x"
                print(f"{label}: {'onnx_cpu_b1_ms':>16} ratio in {len(r)} repeats: {spread}")
        if args.out:  # after every scale: a run stopped by a time limit keeps the scales it finished
            write_json(args.out, {"meta": meta, "rows": rows})
    print(json.dumps(meta))


if __name__ == "__main__":
    main()

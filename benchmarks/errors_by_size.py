"""Where a detector's errors are, by object size: found, classified and localized, per size bucket.

mAP folds finding an object, naming its class and fitting its box into one number. This splits them, per bucket of
object size (square root of the box area, as a fraction of the image side), for each detector on the same validation
images, so that two backbones can be compared where they differ:

- ``found``: fraction of labelled objects that some prediction (any class, confidence >= ``--conf``) overlaps with
  IoU >= 0.5;
- ``class_ok``: of the found objects, the fraction where the most confident of the predictions overlapping them with
  IoU >= 0.5 has the right class (NMS is per class, so boxes of other classes may sit on the same object);
- ``mean_iou``: mean over all labelled objects of the best IoU of any prediction (0 where there is none).

Each object is judged on its own against all predictions (no one-to-one assignment as in mAP): this is a diagnostic,
not a metric to report instead of mAP.

    python benchmarks/errors_by_size.py runs/compare/runs/yolov8n/weights/best.pt \
        runs/compare/runs/yolov8n-convmixer/weights/best.pt --data shapes-detect.yaml --imgsz 320
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np

import ultralytics_convmixer  # noqa: F401 - registers the plugin modules

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, write_json  # noqa: E402

SIZE_EDGES = (0.0, 0.05, 0.1, 0.2, 1.0)  # bucket edges: object side / image side
IOU_FOUND = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), both ``x0 y0 x1 y1``; returns (N, M)."""
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = lambda z: (z[:, 2:] - z[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-12)


def image_stats(
    gt_xyxy: np.ndarray, gt_cls: np.ndarray, pred_xyxy: np.ndarray, pred_cls: np.ndarray, pred_conf: np.ndarray
) -> list[dict]:
    """Match each labelled object (normalized ``xyxy``) against the predictions; one dict per object."""
    iou = box_iou(gt_xyxy, pred_xyxy) if len(pred_xyxy) else np.zeros((len(gt_xyxy), 0))
    sides = np.sqrt((gt_xyxy[:, 2:] - gt_xyxy[:, :2]).prod(-1))
    stats = []
    for i in range(len(gt_xyxy)):
        overlapping = np.flatnonzero(iou[i] >= IOU_FOUND)
        top = overlapping[pred_conf[overlapping].argmax()] if len(overlapping) else -1
        stats.append(dict(side=float(sides[i]), iou=float(iou[i].max(initial=0.0)), found=bool(top >= 0),
                          class_ok=bool(top >= 0 and pred_cls[top] == gt_cls[i])))  # fmt: skip
    return stats


def summarize(stats: list[dict], edges: tuple = SIZE_EDGES) -> list[dict]:
    """Aggregate per-object stats into one row per size bucket ``[edges[i], edges[i+1])`` (the last one closed)."""
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        objs = [s for s in stats if lo <= s["side"] < hi or (last and s["side"] == hi)]
        found = [s for s in objs if s["found"]]
        rows.append(dict(size=f"{lo:g}-{hi:g}", objects=len(objs),
                         found=len(found) / len(objs) if objs else float("nan"),
                         class_ok=sum(s["class_ok"] for s in found) / len(found) if found else float("nan"),
                         mean_iou=float(np.mean([s["iou"] for s in objs])) if objs else float("nan")))  # fmt: skip
    return rows


def val_images(data: str, limit: int) -> list[Path]:
    """The first ``limit`` validation images of a detect data YAML (generated or checked as Ultralytics does)."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    val = check_det_dataset(data)["val"]
    folders = val if isinstance(val, list) else [val]
    files = sorted(p for f in folders for p in Path(f).rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    if not files:
        raise FileNotFoundError(f"{data}: no validation images under {folders}")
    return files[:limit]


def read_labels(image: Path) -> tuple[np.ndarray, np.ndarray]:
    """Classes and normalized ``xyxy`` boxes of an image's YOLO label file (empty when the file is missing)."""
    from ultralytics.data.utils import img2label_paths

    label = Path(img2label_paths([str(image)])[0])
    rows = np.loadtxt(label, ndmin=2) if label.exists() and label.stat().st_size else np.zeros((0, 5))
    xy, wh = rows[:, 1:3], rows[:, 3:5]
    return rows[:, 0].astype(int), np.concatenate([xy - wh / 2, xy + wh / 2], 1)


def evaluate(weights: str, images: list[Path], imgsz: int, conf: float, device: str) -> list[dict]:
    """Per-object stats of one detector on ``images``."""
    from ultralytics import YOLO

    model, stats = YOLO(weights), []
    for image in images:
        result = model.predict(str(image), imgsz=imgsz, conf=conf, device=device, verbose=False)[0]
        gt_cls, gt_xyxy = read_labels(image)
        boxes = result.boxes.cpu().numpy()
        stats += image_stats(gt_xyxy, gt_cls, boxes.xyxyn, boxes.cls, boxes.conf)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", help="trained detect checkpoints (.pt) to compare")
    parser.add_argument("--data", default="shapes-detect.yaml")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--conf", type=float, default=0.05)
    parser.add_argument("--images", type=int, default=500, help="validation images to use (the first N)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    images = val_images(args.data, args.images)
    rows = []
    for weights in args.weights:
        stats = evaluate(weights, images, args.imgsz, args.conf, args.device)
        rows += [dict(model=weights, **r) for r in summarize(stats)]
    print(markdown_table(rows))
    print(f"({len(images)} images of {args.data} at {args.imgsz} px, conf >= {args.conf}, found: IoU >= {IOU_FOUND})")
    if args.json:
        write_json(args.json, dict(args={k: str(v) for k, v in vars(args).items()}, rows=rows))


if __name__ == "__main__":
    main()

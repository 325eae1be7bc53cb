"""mAP on the training images a run used against mAP on the validation images: underfitting or overfitting?

Two detectors can end with the same validation mAP for opposite reasons: one cannot fit its training images, the
other fits them and does not generalize. This validates each checkpoint (Ultralytics' own ``val``, no augmentation)
on the training images a ``fraction=`` run saw (the first ``round(N * fraction)`` in sorted order, as Ultralytics
picks them) and on the validation split, and prints both with their ratio.

    python benchmarks/train_val_gap.py runs/detect/stock/weights/best.pt runs/detect/convmixer/weights/best.pt \
        --data shapes-detect.yaml --fraction 0.25 --imgsz 160
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import yaml

import ultralytics_convmixer  # noqa: F401 - registers the plugin modules

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, write_json  # noqa: E402

COLUMNS = [
    "weights",
    ("train mAP50", "train_map50"),
    ("train mAP50-95", "train_map50_95"),
    ("val mAP50", "val_map50"),
    ("val mAP50-95", "val_map50_95"),
    ("val / train (mAP50-95)", "val_over_train"),
]


def training_images(data: dict, fraction: float) -> list[str]:
    """The training images of a checked data dict that a run with ``fraction`` trains on."""
    from ultralytics.data.utils import IMG_FORMATS

    folders = data["train"] if isinstance(data["train"], list) else [data["train"]]
    files = sorted(str(p) for f in folders for p in Path(f).rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    if not files:
        raise FileNotFoundError(f"no training images under {folders}")
    return files[: round(len(files) * fraction)]


def train_split_yaml(data_yaml: str, fraction: float, folder: Path) -> tuple[Path, int]:
    """Write a data YAML whose validation split is the run's training images; return it and their number."""
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(data_yaml)
    images = training_images(data, fraction)
    listing = folder / "train_images.txt"
    listing.write_text("\n".join(images) + "\n")
    out = folder / "train_as_val.yaml"
    out.write_text(yaml.safe_dump({"path": str(data["path"]), "train": str(listing), "val": str(listing),
                                   "names": data["names"]}))  # fmt: skip
    return out, len(images)


def main() -> None:
    """Validate every checkpoint on both splits and print a Markdown table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", help="trained detect checkpoints (.pt)")
    parser.add_argument("--data", default="shapes-detect.yaml")
    parser.add_argument("--fraction", type=float, default=1.0, help="the fraction= the runs trained with")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    from ultralytics import YOLO

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_yaml, n_train = train_split_yaml(args.data, args.fraction, Path(tmp))
        for weights in args.weights:
            model, row = YOLO(weights), {"weights": weights}
            for split, data in (("train", str(train_yaml)), ("val", args.data)):
                box = model.val(data=data, imgsz=args.imgsz, device=args.device, plots=False, verbose=False).box
                row[f"{split}_map50"], row[f"{split}_map50_95"] = round(float(box.map50), 4), round(float(box.map), 4)
            row["val_over_train"] = (
                round(row["val_map50_95"] / row["train_map50_95"], 3) if row["train_map50_95"] else None
            )
            rows.append(row)
    print(f"\ntraining images: {n_train} (fraction {args.fraction} of {args.data}); imgsz {args.imgsz}\n")
    print(markdown_table(rows, COLUMNS, number_format="{}"))  # the values are rounded already
    if args.json:
        write_json(args.json, {"training_images": n_train, "rows": rows})


if __name__ == "__main__":
    main()

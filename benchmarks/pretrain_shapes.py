"""Pretrain a small timm ConvMixer on the generated shapes-classify set, as the paper's models were on ImageNet.

timm's own ``ConvMixer`` class, trained on CPU in minutes: inputs normalized with ImageNet's mean and std (as timm's
pipeline does, and as ``import-timm`` assumes for a checkpoint file), AdamW with a cosine schedule, label smoothing,
flips and shifts. The checkpoint is a timm state dict, the stand-in for the published ``.in1k`` weights:

    python benchmarks/pretrain_shapes.py --out runs/pretrain      # writes runs/pretrain/convmixer.pth and log.json
    ultralytics-convmixer import-timm runs/pretrain/convmixer.pth --scale n \\
        --out yolov8n-cm-shapes.pt --yaml yolov8n-cm-scratch.yaml
    ultralytics-convmixer compare yolov8n-cm-scratch.yaml yolov8n-cm-shapes.pt epochs=10 imgsz=160 fraction=0.25
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from timm.models.convmixer import ConvMixer

from ultralytics_convmixer.data.shapes import generate
from ultralytics_convmixer.integration.resources import dataset_yaml
from ultralytics_convmixer.pretrained.timm_source import IMAGENET_MEAN, IMAGENET_STD

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import write_json  # noqa: E402


def shapes_classify(args: argparse.Namespace) -> Path:
    """The packaged shapes-classify set (its seed and classes) with ``--n-train`` images, rendered at ``--imgsz``."""
    packaged = yaml.safe_load(dataset_yaml("shapes-classify.yaml").read_text(encoding="utf-8"))["generator"]
    options = {**packaged, "n_train": args.n_train, "n_val": args.n_val, "imgsz": args.imgsz}
    return generate(root=Path(args.out) / f"shapes-classify-{args.n_train}-{args.imgsz}px", **options)


def load_split(root: Path, split: str, imgsz: int):
    """Images of ``root/split/<class>/*.jpg`` as a uint8 NCHW RGB tensor resized to ``imgsz``, and their labels."""
    classes = sorted(d.name for d in (root / split).iterdir() if d.is_dir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((root / split / name).glob("*.jpg")):
            image = cv2.resize(cv2.imread(str(file)), (imgsz, imgsz), interpolation=cv2.INTER_AREA)
            images.append(image[..., ::-1])
            labels.append(label)
    return torch.from_numpy(np.stack(images).copy()).permute(0, 3, 1, 2), torch.tensor(labels), classes


def normalize(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def augment(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Random horizontal flips and shifts of up to ``shift`` pixels (reflect-padded), per image."""
    flip = torch.rand(len(images)) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    padded = F.pad(images, (shift,) * 4, mode="reflect")
    dx, dy = torch.randint(0, 2 * shift + 1, (2, len(images)))
    h, w = images.shape[-2:]
    return torch.stack([p[:, y : y + h, x : x + w] for p, x, y in zip(padded, dx.tolist(), dy.tolist())])


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Top-1 accuracy."""
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(normalize(images[i : i + batch])).argmax(1) == labels[i : i + batch]).sum())
            for i in range(0, len(images), batch)
        )
    return correct / len(images)


def train(args: argparse.Namespace) -> None:
    """Pretrain, evaluating and saving the checkpoint after every epoch."""
    torch.manual_seed(args.seed)
    root = shapes_classify(args)
    x_train, y_train, classes = load_split(root, "train", args.imgsz)
    x_val, y_val, _ = load_split(root, "val", args.imgsz)
    model = ConvMixer(dim=args.dim, depth=args.depth, kernel_size=args.kernel, patch_size=args.patch,
                      num_classes=len(classes))  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(x_train) / args.batch)
    warmup = math.ceil(len(x_train) / args.batch)  # one epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    out = Path(args.out)
    log = {"args": vars(args), "classes": classes, "epochs": []}
    for epoch in range(args.epochs):
        model.train()
        start, losses = time.time(), []
        for idx in torch.randperm(len(x_train)).split(args.batch):
            loss = F.cross_entropy(model(normalize(augment(x_train[idx], args.shift))), y_train[idx],
                                   label_smoothing=0.1)  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        top1 = evaluate(model, x_val, y_val, 2 * args.batch)
        log["epochs"].append({"epoch": epoch + 1, "loss": sum(losses) / len(losses), "val_top1": top1,
                              "seconds": time.time() - start})  # fmt: skip
        print(f"epoch {epoch + 1}/{args.epochs}: loss {log['epochs'][-1]['loss']:.3f}, val top-1 {top1:.3f}, "
              f"{time.time() - start:.0f} s", flush=True)  # fmt: skip
        torch.save({"state_dict": model.state_dict()}, out / "convmixer.pth")
        write_json(out / "log.json", log)


def main() -> None:
    """Parse the command line and pretrain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pretrain", help="folder for convmixer.pth and log.json")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--kernel", type=int, default=9)
    parser.add_argument("--patch", type=int, default=7)
    parser.add_argument("--n-train", type=int, default=15000, help="training images to generate")
    parser.add_argument("--n-val", type=int, default=1000, help="validation images to generate")
    parser.add_argument("--imgsz", type=int, default=56, help="image side (8 x 8 tokens at patch 7)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--shift", type=int, default=4, help="largest random shift in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    train(args)


if __name__ == "__main__":
    main()

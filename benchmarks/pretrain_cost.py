"""What an ImageNet start costs at each scale: images per second of each route, measured here, and its GFLOPs.

The two routes of the README's "Start from ImageNet weights":

- ``distill``: a training step of ``distill`` from the paper's ``convmixer_1536_20`` (timm's architecture with random
  weights: the cost does not depend on them) into ``yolov8{scale}-convmixer``'s backbone, student at ``--imgsz``,
  teacher at the side that puts its 7 x 7-patch grid on the student's P3 grid;
- ``classify``: a training step of ``yolov8{scale}-convmixer-cls`` at 224 px, as ``yolo classify train data=imagenet``.

Each step is forward, backward and an AdamW update at ``--batch``, timed as the median of ``--runs`` after a warm-up,
with the peak resident memory of the process. GFLOPs per image are Ultralytics' counter (forward, times 3 for a
training step) plus the teacher's forward::

    python benchmarks/pretrain_cost.py --scales nsm --batch 8
"""

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, write_json  # noqa: E402


def step_images_per_s(step, batch: int, runs: int) -> float:
    """Images per second of ``step()`` (one training step on ``batch`` images): the median of ``runs`` timings."""
    step()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def teacher_model():
    """timm's convmixer_1536_20 (the paper's 1536/20, patch 7, kernel 9) as ``distill`` runs it, random weights."""
    import timm

    from ultralytics_convmixer.pretrained.timm_import import build_trunk
    from ultralytics_convmixer.pretrained.timm_source import read_source

    state, trunk = read_source(timm.create_model("convmixer_1536_20", pretrained=False))
    return build_trunk(state, trunk, patch=trunk.patch), trunk


def trunk_gflops(trunk: torch.nn.Module, side: int) -> float:
    """GFLOPs of one forward of ``trunk`` at ``side`` px, counted at that size.

    Ultralytics' ``get_flops`` counts at 32 px and scales by area, which for a patch-7 stem drops the tokens that
    32 px does not fill (4 x 4 where 32 / 7 would be 4.6 x 4.6); counted at the real size, every token is there.
    """
    import copy

    import thop

    return thop.profile(copy.deepcopy(trunk), inputs=[torch.empty(1, 3, side, side)], verbose=False)[0] / 1e9 * 2


def distill_row(scale: str, imgsz: int, batch: int, runs: int, teacher, trunk) -> dict:
    from ultralytics.utils.torch_utils import get_flops

    from ultralytics_convmixer.integration.checkpoints import build_model
    from ultralytics_convmixer.integration.distill_trainer import BackboneDistiller

    student = build_model(f"yolov8{scale}-convmixer.yaml", "detect")
    model = BackboneDistiller(student, trunk.dim, [0, 1, 2], "cosine").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    size = imgsz * trunk.patch // 8
    images = torch.rand(batch, 3, imgsz, imgsz)

    def step():
        with torch.no_grad():
            features = teacher(torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear"))
        loss, _ = model({"img": images, "teacher": features})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    speed = step_images_per_s(step, batch, runs)
    backbone = get_flops(torch.nn.Sequential(student.model[0]), imgsz)  # Ultralytics' counter, forward
    teacher_gflops = trunk_gflops(teacher, size)
    return dict(route="distill", model=f"yolov8{scale}-convmixer", imgsz=imgsz, teacher_imgsz=size,
                gflops_per_image=3 * backbone + teacher_gflops, images_per_s=speed)  # fmt: skip


def classify_row(scale: str, batch: int, runs: int) -> dict:
    from ultralytics.utils.torch_utils import get_flops

    from ultralytics_convmixer.integration.checkpoints import build_model

    model = build_model(f"yolov8{scale}-convmixer-cls.yaml", "classify").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = torch.rand(batch, 3, 224, 224), torch.randint(0, 1000, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    speed = step_images_per_s(step, batch, runs)
    return dict(route="classify", model=f"yolov8{scale}-convmixer-cls", imgsz=224, teacher_imgsz=None,
                gflops_per_image=3 * get_flops(model, 224), images_per_s=speed)  # fmt: skip


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", default="nsm")
    p.add_argument("--imgsz", type=int, default=256, help="student side for distill (224 px teacher, 32 x 32 tokens)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    teacher, trunk = teacher_model()
    rows = []
    for scale in args.scales:
        for row in (distill_row(scale, args.imgsz, args.batch, args.runs, teacher, trunk),
                    classify_row(scale, args.batch, args.runs)):  # fmt: skip
            row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            rows.append(row)
            if args.json:
                write_json(args.json, {"rows": rows, "batch": args.batch, "threads": torch.get_num_threads()})
    print(markdown_table(rows, [
        "route", "model", "imgsz", "teacher_imgsz", ("GFLOPs / image", "gflops_per_image", "{:.1f}"),
        ("images / s", "images_per_s", "{:.2f}"), ("peak RSS (GB)", "peak_rss_gb", "{:.1f}"),
    ]))  # fmt: skip


if __name__ == "__main__":
    main()

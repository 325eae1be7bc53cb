"""Choose distillation's settings by their worth after fine-tuning: levels, loss, teacher resolution, augmentation.

Each variant distills the shapes-pretrained timm ConvMixer (``benchmarks/pretrain_shapes.py``) into yolov8n-convmixer's
backbone on the shapes-detect training images (no labels), then fine-tunes the result with one recipe of
``pretrained_starts.py`` (``easy`` by default: the README's quick start) in a ``compare`` run of its own, beside
yolov8n-convmixer from scratch trained with the same arguments::

    python benchmarks/distill_choices.py --teacher runs/pretrain/convmixer.pth --out runs/distill-choices
    python benchmarks/distill_choices.py ... --variants cosine mse --distill-epochs 5

Writes ``<out>/choices.json`` after every variant and prints a Markdown table: the variant's settings, the held-out
cosine similarity to the teacher (only comparable between variants of the same levels), the distillation's CPU
minutes, and the fine-tune's mAP50-95 per epoch. Rerunning skips finished variants.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import load_state, markdown_table, write_json  # noqa: E402
from pretrained_starts import RECIPES, compare, distill, start, teacher_parser  # noqa: E402

NO_AUGMENTATION = ["scale=0", "fliplr=0", "hsv_h=0", "hsv_s=0", "hsv_v=0"]
VARIANTS = {  # name: (levels, loss, teacher resolution as a multiple of the P3 grid's, more distill arguments)
    "cosine": ("P3,P4,P5", "cosine", 1, []),
    "mse": ("P3,P4,P5", "mse", 1, []),
    "both": ("P3,P4,P5", "both", 1, []),
    "P3": ("P3", "cosine", 1, []),
    "P5": ("P5", "cosine", 1, []),
    "teacher-2x": ("P3,P4,P5", "cosine", 2, []),
    "no-augmentation": ("P3,P4,P5", "cosine", 1, NO_AUGMENTATION),
}


def teacher_side(factor: int, imgsz: int, patch: int = 7, stride: int = 8) -> int:
    """The teacher's input side giving ``factor`` tokens per P3 cell; 0 for one, which distill picks itself."""
    return 0 if factor == 1 else factor * (imgsz // stride) * patch


def run_variant(name: str, args, out: Path) -> dict:
    """Distill with variant ``name`` into ``out``, fine-tune the start; return the settings, cost and curve."""
    levels, loss, side, extra = VARIANTS[name]
    settings = argparse.Namespace(
        teacher=args.teacher, distill_epochs=args.distill_epochs, distill_imgsz=args.imgsz, batch=args.batch,
        levels=levels, loss=loss, teacher_imgsz=teacher_side(side, args.imgsz), distill_args=extra,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    cost = distill(settings, out)
    weights = start("yolov8n-convmixer.yaml", cost["weights"], out / "start.pt")
    result = compare([weights], RECIPES[args.recipe], out / "finetune")
    curve = next(iter(result.values()))["map50_95_per_epoch"]
    return {"levels": levels, "loss": loss, "teacher_imgsz": settings.teacher_imgsz or (args.imgsz // 8) * 7,
            "augmentation": "none" if extra else "default", **cost, "map50_95_per_epoch": curve}  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = teacher_parser(__doc__, "runs/distill-choices")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--recipe", default="easy", choices=list(RECIPES), help="the fine-tune (pretrained_starts.py)")
    p.add_argument("--distill-epochs", type=int, default=5)
    p.add_argument("--imgsz", type=int, default=160, help="the student's distillation image side")
    p.add_argument("--batch", type=int, default=32)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out, state_file, state = load_state(args.out, "choices.json")
    if "scratch" not in state:
        result = compare(["yolov8n-convmixer.yaml"], RECIPES[args.recipe], out / "scratch")
        state["scratch"] = {"map50_95_per_epoch": next(iter(result.values()))["map50_95_per_epoch"]}
        write_json(state_file, state)
    for name in args.variants:
        if name not in state:
            state[name] = run_variant(name, args, out / name)
            write_json(state_file, state)
    rows = []
    for name, r in state.items():
        curve = {f"epoch {i + 1}": v for i, v in enumerate(r["map50_95_per_epoch"])}
        cost = {"held-out cosine": r.get("cosine", "-"), "CPU min": r.get("cpu_min", "-")}
        rows.append({"variant": name, **cost, **curve})
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

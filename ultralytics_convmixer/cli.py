"""The ``ultralytics-convmixer`` command: ``compare`` models, generate ``datasets``, ``import-timm``, ``distill``.

Importing this module is cheap: torch and Ultralytics are imported by the subcommands when they run.

Exit codes: 0 success, 1 a training or generation failure (Ultralytics' output says why), 2 a user error (one line on
stderr naming the argument or file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .integration.resources import FAMILY_TASKS, SCALES, TASKS
from .nn.options import ACTIVATIONS, DEFAULT_DISTILL_LEVELS, DEFAULT_DISTILL_LOSS, DISTILL_LOSSES
from .pretrained.options import DEFAULT_RESIZE, RESIZE_NAMES

PROG = "ultralytics-convmixer"

COMPARE_HELP = """\
Train each MODEL with the same Ultralytics arguments and seed, then profile them all in one process and write a
Markdown table (compare.md), a CSV (compare.csv) and a plot (compare.png) to --out.

Models: model YAMLs or weights, stock names (yolov8n.yaml) or packaged ones (yolov8n-convmixer.yaml); the first is
the baseline of the ratios. Any Ultralytics training argument passes through as key=value (epochs=10 imgsz=320
device=0 batch=16 workers=4 fraction=0.5 ...); seed=0 and deterministic=True unless given.

Re-running the same command skips the models whose training already finished and continues an interrupted one from
its last saved epoch (state in <out>/state/); training runs are in <out>/runs/<model>, and one trained with other
settings is kept as <out>/runs/<model>.previous-<time>.

What each phase costs, roughly (n-scale models at imgsz 640 on 2 CPU cores; seconds in all on a GPU):
  training  the epochs you ask for (Ultralytics prints each epoch); --no-train skips it
  export    ONNX export: about 1 s per model
  latency   (warm-up + --latency-runs) passes per model, runtime (PyTorch, ONNX) and batch size: about 4 s per
            model at batch 1, about 3 min per model at batch 32; so by default batch 32 is timed on a GPU only
            (--batches 1,32 asks for it on a CPU)
  (--no-train with the default models and imgsz: about 15 s in all on 2 CPU cores)

examples:
  ultralytics-convmixer compare epochs=10 imgsz=320
  ultralytics-convmixer compare yolov8s.yaml yolov8s-convmixer.yaml --data coco8.yaml epochs=3 device=0
  ultralytics-convmixer compare yolov8n-pose.yaml yolov8n-convmixer-pose.yaml --no-train imgsz=320
  ultralytics-convmixer compare --no-train --batches 1,8 --latency-runs 10
"""


class _UsageError(Exception):
    """A command-line error detected after argparse (printed as one line, exit code 2)."""


def _subcommand(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """Add subcommand ``name``; its ``--help`` keeps the description's line breaks and examples."""
    raw = argparse.RawDescriptionHelpFormatter
    return sub.add_parser(name, help=summary, description=description, formatter_class=raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="ConvMixer backbones for Ultralytics YOLO.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _subcommand(sub, "compare", "train and profile models side by side", COMPARE_HELP)
    p.add_argument(
        "items",
        nargs="*",
        metavar="MODEL | key=value",
        help="models (default: yolov8n.yaml yolov8n-convmixer.yaml) and Ultralytics training arguments",
    )
    p.add_argument("--data", help="data YAML or classification folder (default: shapes-<task>.yaml)")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="profile only: params, GFLOPs and latency, written as profile.md/.csv/.png",
    )
    p.add_argument("--out", default="runs/compare", help="output folder (default: runs/compare)")
    p.add_argument(
        "--latency-runs", type=int, default=20, metavar="N", help="timed runs per latency, median (default: 20)"
    )
    p.add_argument(
        "--batches",
        metavar="N[,N...]",
        help="latency batch sizes, comma-separated (default: 1,32 on a GPU, 1 on a CPU)",
    )

    d = sub.add_parser(
        "datasets",
        help="generate the offline shapes datasets",
        description="Generate the shapes datasets (as the packaged shapes-<task>.yaml files would on first use).",
    )
    d.add_argument("tasks", nargs="*", metavar="TASK", help=f"any of {', '.join(TASKS)} (default: all)")
    d.add_argument(
        "--root",
        help="parent folder of the shapes-<task> folders (default: as training resolves the data YAMLs: "
        "./shapes-<task> if that folder exists, else under Ultralytics' datasets_dir)",
    )
    d.add_argument("--n-train", type=int, help="training images")
    d.add_argument("--n-val", type=int, help="validation images")
    d.add_argument("--imgsz", type=int, help="image side in pixels")
    d.add_argument("--seed", type=int, help="seed")
    d.add_argument("--workers", type=int, help="rendering threads")
    _add_import_timm(sub)
    _add_distill(sub)
    return parser


IMPORT_TIMM_HELP = """\
Turn a timm ConvMixer (the paper's ImageNet weights) into an Ultralytics checkpoint to fine-tune from, as from
yolov8n.pt. Every timm tensor but the classifier goes into the YOLO backbone by value; the stem takes the input
normalization and, for the paper's patch sizes 7 and 14, is resized to stride 8 and 16. The neck and head are YOLOv8's,
at the stock scale nearest in GFLOPs unless --scale is given.

SOURCE: a timm model name (convmixer_768_32.in1k, convmixer_1024_20_ks9_p14.in1k, convmixer_1536_20.in1k; needs
timm, and the weights in the Hugging Face cache or a network), a timm checkpoint file (.pth, .pt, .bin,
.safetensors, train.py's .pth.tar) or a folder holding model.safetensors or pytorch_model.bin. A file does not
record its activation: it is read as GELU unless --act says otherwise (--act relu for convmixer_768_32).

examples:
  ultralytics-convmixer import-timm convmixer_1024_20_ks9_p14.in1k --out yolo-convmixer1024-in1k.pt
  yolo train model=yolo-convmixer1024-in1k.pt data=coco128.yaml
  ultralytics-convmixer import-timm model.safetensors --act relu --task segment --out seg768.pt --yaml seg768.yaml
"""


def _add_import_timm(sub) -> None:
    p = _subcommand(sub, "import-timm", "turn timm ConvMixer weights into a YOLO checkpoint", IMPORT_TIMM_HELP)
    p.add_argument("source", metavar="SOURCE", help="timm model name, checkpoint file or folder")
    p.add_argument("--task", default="detect", choices=FAMILY_TASKS["yolov8"], help="YOLO task (default: detect)")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--nc", type=int, help="number of classes (default: the packaged YAML's, e.g. 80 for detect)")
    p.add_argument("--act", choices=ACTIVATIONS, help="activation of a checkpoint file (default: gelu)")
    p.add_argument("--scale", choices=tuple(SCALES), help="stock YOLOv8 scale of the neck and head")
    p.add_argument("--resize", default=DEFAULT_RESIZE, choices=RESIZE_NAMES, help="stem kernel resize")
    p.add_argument("--yaml", help="also write the model YAML here (the same architecture, to train from scratch)")
    p.add_argument("--force", action="store_true", help="overwrite --out and --yaml if they exist")


DISTILL_HELP = """\
Distill a timm ConvMixer (the paper's ImageNet weights) into the backbone of a packaged model at any scale, on
unlabeled images: the student's pyramid levels learn the teacher trunk's features through 1x1 projections, which are
dropped at the end. The output is the whole student model as an Ultralytics checkpoint: pretrained=FILE.pt carries its
backbone into any task model of that family and scale, and yolo train model=FILE.pt fine-tunes it.

TEACHER: what import-timm takes (a timm name such as convmixer_1536_20.in1k, a checkpoint file or folder).
--images: a folder of images (5% held out to validate) or a data YAML (train split; validated on its val split);
labels are never read. Any Ultralytics training argument passes through as key=value (lr0=0.001 workers=8 ...). It
runs as an Ultralytics trainer: progress bar, AMP on a GPU, device=0,1 for DDP, a run under runs/distill.

examples:
  ultralytics-convmixer distill convmixer_1536_20.in1k --student yolov8s-convmixer.yaml \\
      --images coco/images/train2017 --out yolov8s-distilled.pt --epochs 30 --imgsz 224 --batch 128 --device 0,1
  yolo detect train model=yolov8s-convmixer.yaml pretrained=yolov8s-distilled.pt data=coco.yaml
  ultralytics-convmixer distill --resume runs/distill/train/weights/last.pt
"""


def _add_distill(sub) -> None:
    p = _subcommand(sub, "distill", "teach a packaged backbone a timm ConvMixer's features", DISTILL_HELP)
    p.add_argument("teacher", nargs="?", metavar="TEACHER", help="timm name, checkpoint file or folder")
    p.add_argument("items", nargs="*", metavar="key=value", help="Ultralytics training arguments")
    p.add_argument("--student", default="yolov8n-convmixer.yaml", help="model YAML (default: yolov8n-convmixer.yaml)")
    p.add_argument("--images", help="folder of images, or a data YAML whose train split is used")
    p.add_argument("--out", help="student checkpoint to write (.pt)")
    for option, kind, text in (("epochs", int, "30"), ("imgsz", int, "224"), ("batch", int, "32")):
        p.add_argument(f"--{option}", type=kind, help=f"training {option} (default: {text})")
    p.add_argument("--device", help="cpu, 0, 0,1 ... (default: Ultralytics' choice)")
    p.add_argument("--act", choices=ACTIVATIONS, help="activation of a teacher checkpoint file (default: gelu)")
    levels, loss = DEFAULT_DISTILL_LEVELS, DEFAULT_DISTILL_LOSS
    p.add_argument("--levels", default=levels, help=f"student levels that learn the teacher (default: {levels})")
    p.add_argument("--loss", default=loss, choices=DISTILL_LOSSES, help=f"distillation loss (default: {loss})")
    p.add_argument("--teacher-imgsz", type=int, default=0, help="teacher input side (default: its grid on P3's)")
    p.add_argument("--resume", metavar="LAST_PT", help="continue a run from its weights/last.pt")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse, letting ``compare`` take models and key=value items anywhere among its options."""
    args, extra = parser.parse_known_args(argv)
    for item in extra:
        if item.startswith("-") or args.command not in ("compare", "distill"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in ("compare", "distill"):
        args.items = [*args.items, *extra]
    elif args.command == "datasets":
        unknown = [t for t in args.tasks if t not in TASKS]
        if unknown:
            parser.error(f"unknown task '{unknown[0]}' (choose from {', '.join(TASKS)})")
        args.tasks = args.tasks or list(TASKS)
        for option, minimum in (("n_train", 0), ("n_val", 0), ("seed", 0), ("imgsz", 32), ("workers", 1)):
            value = getattr(args, option)
            if value is not None and value < minimum:
                parser.error(f"--{option.replace('_', '-')} must be >= {minimum}, got {value}")
    return args


def _is_training_argument(item: str) -> bool:
    """``key=value`` is a training argument, unless it names a model file (a path may contain ``=``)."""
    from pathlib import Path

    return "=" in item and not Path(item).expanduser().is_file()


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare, parse_batches, parse_overrides

    batches = None if args.batches is None else parse_batches(args.batches)  # before anything slow
    models = [x for x in args.items if not _is_training_argument(x)]
    overrides = parse_overrides([x for x in args.items if _is_training_argument(x)])
    compare(models, args.data, args.out, not args.no_train, args.latency_runs, overrides, batches)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    try:
        from .data import shapes
    except ImportError as e:
        raise _UsageError(f"the shapes dataset generator is not available: {e}") from None
    from pathlib import Path

    import yaml  # PyYAML, a dependency of Ultralytics

    from .integration.resources import dataset_yaml

    options = {k: getattr(args, k) for k in ("n_train", "n_val", "imgsz", "seed", "workers")}
    options = {k: v for k, v in options.items() if v is not None}
    for task in dict.fromkeys(args.tasks):
        packaged = dataset_yaml(f"shapes-{task}.yaml")
        if packaged is None:  # the wheel ships one for every task: only a broken install gets here
            raise _UsageError(f"shapes-{task}.yaml is missing from the installed package; reinstall {PROG}")
        data = {**yaml.safe_load(packaged.read_text(encoding="utf-8")), "yaml_file": str(packaged)}
        data["generator"] = {**(data.get("generator") or {}), **options, "task": task}
        if args.root:
            data["path"] = str(Path(args.root).expanduser().resolve() / f"shapes-{task}")
        try:
            path = shapes.generate_from_yaml(data)
        except OSError as e:  # an unwritable or full --root / datasets_dir
            raise _UsageError(f"cannot write shapes-{task}: {e}") from None
        print(f"shapes-{task}: {path}", flush=True)
    return 0


def _import_timm(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    yaml_path = Path(args.yaml).expanduser() if args.yaml else None
    if yaml_path is not None and yaml_path.exists() and not args.force:
        raise _UsageError(f"--yaml {yaml_path} exists; pass --force to overwrite it")
    if yaml_path is not None and not yaml_path.parent.is_dir():  # checked now: it is written after the checkpoint
        raise _UsageError(f"--yaml {yaml_path}: folder {yaml_path.parent} does not exist")
    from .pretrained.timm_import import import_timm, write_model_yaml

    with warnings.catch_warnings():  # the summary says so too, in its place
        warnings.filterwarnings("ignore", message=".*activation gelu assumed")
        result = import_timm(
            args.source, args.task, args.out, nc=args.nc, act=args.act, scale=args.scale, resize=args.resize,
            force=args.force,
        )  # fmt: skip
    if yaml_path is not None:
        write_model_yaml(result, yaml_path)
    print(result.summary() + (f"\n  wrote {yaml_path} (the same model, untrained)" if yaml_path else ""), flush=True)
    return 0


def _distill(args: argparse.Namespace) -> int:
    from .integration.training_args import parse_training_args

    if args.teacher and "=" in args.teacher:  # key=value items only: argparse took the first for TEACHER
        args.items, args.teacher = [args.teacher, *args.items], None
    options = {k: getattr(args, k) for k in ("epochs", "imgsz", "batch", "device") if getattr(args, k) is not None}
    reserved = {k: f"give it as --{k}" for k in ("model", "data", "resume", *options)}
    train_args = {**parse_training_args(args.items, reserved, "distill"), **options}
    if args.resume is None and args.teacher is None:
        raise _UsageError("give the TEACHER (or --resume LAST_PT)")
    from .pretrained.distill import distill

    result = distill(
        args.teacher, args.student, args.images, args.out, force=args.force, act=args.act, levels=args.levels,
        loss=args.loss, teacher_imgsz=args.teacher_imgsz, resume=args.resume, **train_args,
    )  # fmt: skip
    print(result.summary(), flush=True)
    return 0


def _user_errors() -> tuple:
    """Exception types that are user errors (imported only when needed, and none of them imports torch)."""
    from .compare import CompareError
    from .integration.training_args import TrainingArgumentError
    from .pretrained.options import DistillError, TimmImportError

    return (CompareError, TimmImportError, DistillError, TrainingArgumentError, _UsageError, FileExistsError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``ultralytics-convmixer`` command.

    Args:
        argv (Sequence[str] | None): Arguments without the program name; None reads ``sys.argv``.

    Returns:
        (int): Exit code: 0 success, 1 failure, 2 user error, 130 interrupted.
    """
    parser = _parser()
    try:
        args = _parse(parser, sys.argv[1:] if argv is None else list(argv))
    except SystemExit as e:  # --help (0) or an argparse error (2, message already printed)
        return e.code if isinstance(e.code, int) else 2
    if args.command == "compare" and args.latency_runs < 1:
        print(f"{PROG} compare: error: --latency-runs must be >= 1, got {args.latency_runs}", file=sys.stderr)
        return 2
    run = {"compare": _compare, "datasets": _datasets, "import-timm": _import_timm, "distill": _distill}[args.command]
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, _user_errors()):
            print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
            return 2
        from .compare import TrainingError

        if isinstance(e, TrainingError):
            print(f"{PROG} {args.command}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

"""The ``ultralytics-convmixer`` command: ``compare`` models and generate the shapes ``datasets``.

Importing this module is cheap: torch and Ultralytics are imported by the subcommands when they run.

Exit codes: 0 success, 1 a training or generation failure (Ultralytics' output says why), 2 a user error (one line on
stderr naming the argument or file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .resources import TASKS

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

examples:
  ultralytics-convmixer compare epochs=10 imgsz=320
  ultralytics-convmixer compare yolov8s.yaml yolov8s-convmixer.yaml --data coco8.yaml epochs=3 device=0
  ultralytics-convmixer compare yolov8n-pose.yaml yolov8n-convmixer-pose.yaml --no-train imgsz=320
"""


class _UsageError(Exception):
    """A command-line error detected after argparse (printed as one line, exit code 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="ConvMixer backbones for Ultralytics YOLO.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "compare",
        help="train and profile models side by side",
        description=COMPARE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse, letting ``compare`` take models and key=value items anywhere among its options."""
    args, extra = parser.parse_known_args(argv)
    for item in extra:
        if item.startswith("-") or args.command != "compare":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "compare":
        args.items = [*args.items, *extra]
    else:
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
    from .compare import compare, parse_overrides

    models = [x for x in args.items if not _is_training_argument(x)]
    overrides = parse_overrides([x for x in args.items if _is_training_argument(x)])
    compare(models, args.data, args.out, not args.no_train, args.latency_runs, overrides)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    try:
        from . import shapes
    except ImportError as e:
        raise _UsageError(f"the shapes dataset generator is not available: {e}") from None
    from pathlib import Path

    import yaml  # PyYAML, a dependency of Ultralytics

    from .resources import dataset_yaml

    options = {k: getattr(args, k) for k in ("n_train", "n_val", "imgsz", "seed", "workers")}
    options = {k: v for k, v in options.items() if v is not None}
    for task in dict.fromkeys(args.tasks):
        packaged = dataset_yaml(f"shapes-{task}.yaml")
        if packaged is None:  # the wheel ships all five: only a broken install gets here
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


def _user_errors() -> tuple:
    """Exception types that are user errors (imported only when needed)."""
    from .compare import CompareError

    return (CompareError, _UsageError, FileExistsError)


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
    run = {"compare": _compare, "datasets": _datasets}[args.command]
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

"""Distill a timm ConvMixer (the paper's ImageNet trunks) into a packaged backbone, on unlabeled images.

The teacher is anything ``import-timm`` reads (a timm name, a checkpoint file or folder, or a timm model), run at its
own patch size on images scaled so that its token grid is the student's P3 grid (``teacher_imgsz`` overrides that).
The student is a family YAML at any scale whose layer 0 is a ``ConvMixerBackbone``; its chosen levels learn the
teacher's features through 1 x 1 projections (``nn.distill``), which are dropped at the end. The output is the
student task model as an Ultralytics checkpoint: ``pretrained=FILE.pt`` carries its backbone into any task model of
that family and scale, and ``yolo train model=FILE.pt`` fine-tunes it as it is.

It runs as an Ultralytics trainer (``integration.distill_trainer``): progress bar, AMP on a GPU, ``resume``, DDP with
``device=0,1``, a run folder with results.csv and ``last.pt``/``best.pt`` under ``runs/distill``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import torch
from torch import nn

from ..integration.checkpoints import model_dict
from ..integration.distill_data import ImagesError, find_images
from ..integration.distill_trainer import DISTILL_ARGS, DistillationTrainer
from ..nn.distill import parse_levels
from ..nn.options import DISTILL_LOSSES
from .options import DistillError, check_output
from .timm_import import build_trunk
from .timm_source import read_source

# The training arguments distill starts from, where Ultralytics' defaults are for detection; any can be overridden.
DEFAULTS = dict(
    epochs=30,
    imgsz=224,
    batch=32,
    optimizer="AdamW",
    lr0=0.002,
    weight_decay=0.05,
    warmup_epochs=1,
    warmup_bias_lr=0.0,
    cos_lr=True,
    close_mosaic=0,
    name="train",
)


@dataclass
class DistillResult:
    """What :func:`distill` wrote.

    Attributes:
        out (Path): The student checkpoint.
        run (Path): The run folder (results.csv, weights/last.pt to resume from).
        student (str): The student YAML.
        teacher (str): The teacher's trunk, described.
        images (int): Training images.
        cosine (float | None): Mean cosine similarity to the teacher on the held-out images, at the best epoch.
    """

    out: Path
    run: Path
    student: str
    teacher: str
    images: int
    cosine: Optional[float]

    def summary(self) -> str:
        """Say what was distilled into what, how close it came, and where it is."""
        cosine = "-" if self.cosine is None else f"{self.cosine:.3f}"
        return (
            f"distilled {self.teacher} into the backbone of {self.student} on {self.images} images: held-out cosine "
            f"similarity {cosine}\n  wrote {self.out}; fine-tune it with pretrained={self.out} or model={self.out}\n"
            f"  run: {self.run} (weights/last.pt resumes it)"
        )


class TimmDistillationTrainer(DistillationTrainer):
    """The distillation trainer whose teacher is a timm ConvMixer read as ``import-timm`` reads one."""

    def build_teacher(self) -> Tuple[nn.Module, int, int]:
        """Read ``args.teacher`` and build its trunk at its own patch size, taking [0, 1] RGB images."""
        state, trunk = read_source(self.args.teacher, self.args.teacher_act)
        return build_trunk(state, trunk, patch=trunk.patch), trunk.dim, trunk.patch


def check_student(student: Union[str, Path]) -> dict:
    """Return the student's model dict if its layer 0 is a ``ConvMixerBackbone``, else raise naming the file."""
    try:
        d = model_dict(student)
    except (FileNotFoundError, OSError) as e:
        raise DistillError(f"--student {student}: {e}") from None
    first = d["backbone"][0][2] if d.get("backbone") else None
    if first != "ConvMixerBackbone":
        raise DistillError(
            f"--student {d.get('yaml_file', student)}: layer 0 is {first}, not a ConvMixerBackbone; distill teaches a "
            "ConvMixer backbone (e.g. yolov8n-convmixer.yaml, any family, task and scale)"
        )
    return d


def distill(
    teacher: Union[str, Path, nn.Module, None] = None,
    student: Union[str, Path] = "yolov8n-convmixer.yaml",
    images: Union[str, Path, None] = None,
    out: Union[str, Path, None] = None,
    force: bool = False,
    act: Optional[str] = None,
    levels: str = DISTILL_ARGS["distill_levels"],
    loss: str = DISTILL_ARGS["distill_loss"],
    teacher_imgsz: int = DISTILL_ARGS["teacher_imgsz"],
    resume: Union[str, Path, None] = None,
    **train_args: Any,
) -> DistillResult:
    """Distill a timm ConvMixer into the backbone of ``student`` on the images of ``images``; write ``out``.

    Args:
        teacher (str | Path | nn.Module | None): A timm name (``convmixer_1536_20.in1k``), a checkpoint file or
            folder, or a timm ConvMixer instance (None only with ``resume``).
        student (str | Path): A model YAML whose layer 0 is a ``ConvMixerBackbone``, at the scale to pretrain.
        images (str | Path | None): A folder of images (5% held out to validate) or a data YAML (its train split,
            validated on its val split); labels are never read.
        out (str | Path | None): The student checkpoint to write (.pt).
        force (bool): Overwrite ``out``.
        act (str | None): Activation of a teacher checkpoint file that does not record it (``relu`` for 768/32).
        levels (str): Student levels that learn the teacher's features, some of ``P3,P4,P5``.
        loss (str): ``cosine``, ``mse`` (on features standardized per channel) or ``both``.
        teacher_imgsz (int): The teacher's input side; 0 puts its token grid on the student's P3 grid.
        resume (str | Path | None): A run's ``weights/last.pt`` to continue (every other argument comes from it).
        **train_args (Any): Ultralytics training arguments (``epochs``, ``imgsz``, ``batch``, ``device``, ``lr0``,
            ``workers``, ``project``, ``name`` ...) over :data:`DEFAULTS`.

    Returns:
        (DistillResult): The checkpoint written and the run.

    Raises:
        DistillError: For a student that is not a ConvMixer model, no readable images, or an existing ``out``.
        TimmImportError: For a teacher that is not a timm ConvMixer (naming its first tensor that does not fit).
    """
    if resume is not None:
        return _resume(resume, train_args)
    out = check_output(out, force, DistillError)
    check_student(student)
    _check_objective(levels, loss)
    train_images = _check_images(images)
    state, trunk = read_source(teacher, act)  # before the run folder is made: a wrong teacher writes nothing
    from ultralytics.utils import RUNS_DIR

    args = {**DEFAULTS, "model": str(student), "data": str(images), "distill_out": str(out), "teacher_act": trunk.act}
    args.setdefault("project", str(RUNS_DIR / "distill"))
    args.update(distill_levels=levels, distill_loss=loss, teacher_imgsz=teacher_imgsz, **train_args)
    args.update(teacher=None if isinstance(teacher, nn.Module) else str(teacher))
    args.setdefault("nbs", args["batch"])  # a step per batch: Ultralytics' nbs=64 would accumulate small batches
    trainer = TimmDistillationTrainer(overrides=args)
    if isinstance(teacher, nn.Module):  # a file, so that DDP workers and a resumed run can read it
        trainer.args.teacher = str(trainer.save_dir / "teacher.pth")
        torch.save(state, trainer.args.teacher)
    trainer.teacher = build_trunk(state, trunk, patch=trunk.patch)  # built once here; the trainer builds it elsewhere
    trainer.teacher_dim, trainer.teacher_patch = trunk.dim, trunk.patch
    return _train(trainer, len(train_images), trunk.describe(), Path(str(student)).name)


def _resume(last: Union[str, Path], train_args: dict) -> DistillResult:
    """Continue the run of ``last`` (its ``weights/last.pt``); every argument but ``train_args`` comes from it."""
    trainer = TimmDistillationTrainer(overrides={"resume": str(last), **train_args})
    return _train(trainer, len(trainer.data["train"]), str(trainer.args.teacher), Path(str(trainer.args.model)).name)


def _check_objective(levels: str, loss: str) -> None:
    """Raise naming the option if the levels or the loss are not ones ``nn.distill`` takes."""
    try:
        parse_levels(levels)
    except ValueError as e:
        raise DistillError(f"--levels: {e}") from None
    if loss not in DISTILL_LOSSES:
        raise DistillError(f"--loss must be one of {', '.join(DISTILL_LOSSES)}, got {loss!r}")


def _check_images(images: Union[str, Path, None]) -> list:
    """Return the training images of ``images`` (``find_images``), or raise naming what is wrong with it."""
    if images is None:
        raise DistillError("--images is required: a folder of images or a data YAML")
    try:
        return find_images(images)[0]
    except ImagesError as e:
        raise DistillError(f"--images {e}") from None


def _train(trainer: DistillationTrainer, images: int, teacher: str, student: str) -> DistillResult:
    """Run the trainer (in DDP workers on several GPUs) and say what it wrote."""
    trainer.train()
    best = trainer.best_fitness  # None in the parent of DDP workers, which validated in their processes
    return DistillResult(
        out=Path(trainer.args.distill_out),
        run=Path(trainer.save_dir),
        student=student,
        teacher=teacher,
        images=images,
        cosine=float(best) if best is not None else None,
    )

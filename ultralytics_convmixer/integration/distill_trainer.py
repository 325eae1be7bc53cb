"""Feature distillation as an Ultralytics trainer, so it runs as ``yolo train`` does.

Ultralytics' ``BaseTrainer`` gives it the progress bar, AMP on a GPU, EMA, ``resume``, ``device=0,1`` (DDP with its own
worker launcher), results.csv and ``last.pt``/``best.pt``. :class:`DistillationTrainer` supplies what the base leaves
to a task: the data (unlabeled images, ``distill_data``), the model (:class:`BackboneDistiller`: the student task model
and the projections of ``nn.distill``), the teacher's features (computed in ``preprocess_batch``, inside the trainer's
autocast) and a validator (the loss and cosine similarity on held-out images). The teacher is built by
:meth:`DistillationTrainer.build_teacher`, which a tool overrides (``pretrained.distill`` builds timm ConvMixers), so
DDP workers and a resumed run build it from the arguments alone.

The trainer's arguments are Ultralytics' plus :data:`DISTILL_ARGS`, which it adds to the configuration it is built
with (Ultralytics refuses keys it does not know). It supports every Ultralytics release the plugin does: the loss
items are a tensor before 8.4.104 and a dict from it on, as the base trainer expects.
"""

from __future__ import annotations

from copy import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.utils import DEFAULT_CFG

from ..nn.distill import DistillHead, parse_levels
from ..nn.options import DEFAULT_DISTILL_LEVELS, DEFAULT_DISTILL_LOSS
from .checkpoints import build_model, save_checkpoint
from .distill_data import UnlabeledImages, find_images
from .planner import _release

# The trainer's own arguments, beside Ultralytics' (their defaults; ``pretrained.distill`` documents them).
DISTILL_ARGS = {
    "teacher": None,  # the teacher: a timm name or checkpoint file
    "teacher_act": None,  # its activation, for a checkpoint file that does not record it
    "teacher_imgsz": 0,  # the teacher's input side; 0: imgsz * patch / 8, so its grid is the student's P3 grid
    "distill_levels": DEFAULT_DISTILL_LEVELS,  # the student levels that learn the teacher's features
    "distill_loss": DEFAULT_DISTILL_LOSS,  # cosine, mse or both (nn.distill)
    "distill_out": None,  # the student checkpoint written when the training ends
}
LOSS_NAMES = ("feat_loss", "cos_sim")  # the distillation loss, and the cosine similarity it raises


def _loss_items_are_dicts() -> bool:
    """Whether this Ultralytics' trainer takes loss items as a dict (8.4.104 and later) or a tensor."""
    from ultralytics import __version__

    return _release(__version__) >= (8, 4, 104)


class BackboneDistiller(nn.Module):
    """The student task model, whose backbone learns the teacher's features through ``DistillHead`` projections.

    Only layer 0 (the ``ConvMixerBackbone``) runs; the neck and head stay as built, so the student checkpoint written
    at the end is a whole task model that ``pretrained=`` carries into any task of its family and scale.

    Args:
        student (nn.Module): The Ultralytics task model.
        teacher_dim (int): Channels of the teacher's features.
        levels (List[int]): Indices of the distilled levels (0 is P3).
        loss (str): ``DistillHead``'s loss.
    """

    def __init__(self, student: nn.Module, teacher_dim: int, levels: List[int], loss: str):
        super().__init__()
        self.student, self.levels = student, list(levels)
        backbone = student.model[0]
        self.head = DistillHead([backbone.out_channels[i] for i in self.levels], teacher_dim, loss)
        self.criterion = None  # Ultralytics' trainer reads it every epoch
        self.items_as_dict = _loss_items_are_dicts()

    # What Ultralytics' trainer, EMA and checkpoint loader read off a model: the student's.
    yaml = property(lambda self: self.student.yaml)
    model = property(lambda self: self.student.model)
    stride = property(lambda self: self.student.stride)

    def forward(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Any]:
        """Return the batch's loss (times its size, as Ultralytics' criteria) and its loss items."""
        levels = self.student.model[0](batch["img"])
        loss, items = self.head([levels[i] for i in self.levels], batch["teacher"])
        values = (items["distill"], items["cosine"])
        items = dict(zip(LOSS_NAMES, values)) if self.items_as_dict else torch.stack(values)
        return loss * batch["img"].shape[0], items


class DistillValidator:
    """Mean loss and cosine similarity to the teacher on the held-out images; fitness is the cosine similarity."""

    def __init__(self, trainer: DistillationTrainer):
        self.trainer, self.dataloader, self.args = trainer, trainer.test_loader, copy(trainer.args)
        self.metrics = SimpleNamespace(keys=["metrics/cosine"])

    @torch.no_grad()
    def __call__(self, trainer: Optional[DistillationTrainer] = None, model: Any = None) -> Optional[Dict]:
        """Validate the trainer's EMA model, or the model of a checkpoint file (``final_eval``)."""
        from ultralytics.utils import RANK

        if RANK > 0:
            return None
        if trainer is not None:
            model = trainer.ema.ema if trainer.ema else trainer.model
        elif not isinstance(model, nn.Module):
            from ultralytics.nn.tasks import load_checkpoint

            model = load_checkpoint(model)[0].to(self.trainer.device)
        model = model.float().eval()
        totals, images = torch.zeros(2), 0
        for batch in self.dataloader:
            batch = self.trainer.preprocess_batch(batch)
            loss, items = model(batch)
            values = torch.stack(list(items.values())) if isinstance(items, dict) else items
            totals += values.float().cpu() * batch["img"].shape[0]
            images += batch["img"].shape[0]
        mean = totals / max(images, 1)
        results = self.trainer.label_loss_items(mean, prefix="val")
        return {"metrics/cosine": float(mean[1]), **results, "fitness": float(mean[1])}


class DistillationTrainer(BaseTrainer):
    """Train a student backbone to reproduce a teacher's features on unlabeled images, as an Ultralytics trainer.

    Its arguments are Ultralytics' (``model`` is the student YAML, ``data`` the images: a folder or a data YAML) plus
    :data:`DISTILL_ARGS`. A subclass provides the teacher (:meth:`build_teacher`).

    Args:
        cfg (str | dict | SimpleNamespace): Configuration, Ultralytics' defaults by default.
        overrides (dict | None): Arguments that override it.
        _callbacks (dict | None): Ultralytics callbacks.
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: Optional[dict] = None, _callbacks: Optional[dict] = None):
        from ultralytics.cfg import cfg2dict

        self.teacher: Optional[nn.Module] = None  # set by build_teacher, or by the tool that already built it
        self.teacher_dim, self.teacher_patch = 0, 0
        super().__init__({**DISTILL_ARGS, **cfg2dict(cfg)}, dict(overrides or {}), _callbacks)
        for key, default in DISTILL_ARGS.items():  # a finished run's last.pt keeps only Ultralytics' own arguments
            if not hasattr(self.args, key):
                setattr(self.args, key, default)
        self.loss_names = LOSS_NAMES
        self.levels = parse_levels(self.args.distill_levels)

    def build_teacher(self) -> Tuple[nn.Module, int, int]:
        """Build the teacher from ``args.teacher``: a module taking [0, 1] RGB images, its width and its patch size."""
        raise NotImplementedError("a distillation trainer builds its teacher in build_teacher()")

    def _teacher_ready(self) -> None:
        if self.teacher is None:
            self.teacher, self.teacher_dim, self.teacher_patch = self.build_teacher()
        self.teacher = self.teacher.to(self.device).eval().requires_grad_(False)

    def teacher_imgsz(self) -> int:
        """Return the teacher's input side: ``teacher_imgsz``, or the side that puts its grid on the student's P3."""
        return int(self.args.teacher_imgsz) or self.args.imgsz * self.teacher_patch // 8

    def get_dataset(self) -> dict:
        """Find the training and validation images (``distill_data.find_images``); ``fraction`` keeps the first ones."""
        train, val = find_images(self.args.data)
        train = train[: max(1, round(len(train) * self.args.fraction))]
        return {"train": train, "val": val, "names": {0: "image"}, "nc": 1}

    def get_dataloader(self, dataset_path, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """Ultralytics' infinite loader over the images (DDP's sampler on several GPUs)."""
        from ultralytics.data.build import build_dataloader

        dataset = UnlabeledImages(dataset_path, self.args.imgsz, mode == "train", self.args)
        return build_dataloader(dataset, batch_size, self.args.workers, mode == "train", rank)

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> BackboneDistiller:
        """Build the student from its YAML (``cfg``) with the projections; load ``weights`` (resume) if given."""
        self._teacher_ready()
        student = build_model(cfg, task=_task_of(cfg), verbose=verbose)
        model = BackboneDistiller(student, self.teacher_dim, self.levels, self.args.distill_loss)
        if isinstance(weights, BackboneDistiller):  # resuming
            model.load_state_dict(weights.float().state_dict())
        elif weights is not None:  # pretrained=: a task model of the student's family and scale
            student.load(weights)
        return model

    def set_model_attributes(self) -> None:
        """Keep the student's class names: the images have none."""

    def preprocess_batch(self, batch: dict) -> dict:
        """Scale the images to [0, 1] on the device, and add the teacher's features of them (no gradient)."""
        img = batch["img"].to(self.device, non_blocking=True).float() / 255
        size = self.teacher_imgsz()
        with torch.no_grad():
            teacher_in = img if img.shape[-1] == size else F.interpolate(img, size=(size, size), mode="bilinear")
            features = self.teacher(teacher_in)
        return {**batch, "img": img, "teacher": features}

    def get_validator(self) -> DistillValidator:
        """Return the validator of the held-out images."""
        return DistillValidator(self)

    def label_loss_items(self, loss_items=None, prefix: str = "train"):
        """Name the loss items (a tensor or a dict, by release) under ``prefix``; their names without items."""
        keys = [f"{prefix}/{name}" for name in self.loss_names]
        if loss_items is None:
            return keys
        values = loss_items.values() if isinstance(loss_items, dict) else loss_items
        return {k: round(float(v), 5) for k, v in zip(keys, values)}

    def progress_string(self) -> str:
        """Return the header of the progress bar's columns."""
        return ("\n" + "%11s" * (4 + len(self.loss_names))) % ("Epoch", "GPU_mem", *self.loss_names, "Images", "Size")

    def plot_metrics(self) -> None:
        """Plot the loss and the cosine similarity by epoch, training and validation, as results.png."""
        import matplotlib

        matplotlib.use("Agg")  # a file, whatever the session's backend
        import matplotlib.pyplot as plt

        rows = [line.split(",") for line in self.csv.read_text(encoding="utf-8").splitlines()]
        columns = {name.strip(): [float(r[i]) for r in rows[1:]] for i, name in enumerate(rows[0])}
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
        for ax, name in zip(axes, self.loss_names):
            for split in ("train", "val"):
                ax.plot(columns["epoch"], columns[f"{split}/{name}"], marker=".", label=split)
            ax.set(title=name, xlabel="epoch")
            ax.legend()
        fig.savefig(self.save_dir / "results.png", dpi=150)
        plt.close(fig)

    def final_eval(self) -> None:
        """Validate best.pt as the base trainer does, then write the student of best.pt to ``distill_out``."""
        super().final_eval()
        from ultralytics.utils import RANK

        if RANK in {-1, 0} and self.args.distill_out and self.best.exists():
            self.write_student(Path(self.args.distill_out))

    def write_student(self, out: Path) -> None:
        """Write the student task model of best.pt as an Ultralytics checkpoint (whole or not at all)."""
        from ultralytics.nn.tasks import load_checkpoint

        distiller = load_checkpoint(self.best)[0]
        record = {k: str(v) if v is not None else None for k, v in vars(self.args).items() if k in DISTILL_ARGS}
        record.update(epochs=self.epoch + 1, imgsz=self.args.imgsz, data=str(self.args.data))
        record["cosine"] = float(self.best_fitness) if self.best_fitness is not None else None
        save_checkpoint(distiller.student, out, _task_of(distiller.student.yaml), self.args.imgsz, {"distill": record})


def _task_of(cfg) -> str:
    """Return the task of a student YAML or model dict, as Ultralytics guesses it from the head."""
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    return guess_model_task(cfg if isinstance(cfg, dict) else yaml_model_load(cfg))

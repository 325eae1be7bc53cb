"""Feature distillation: a student backbone learns to reproduce a teacher trunk's features on unlabeled images.

As in KDEP ("Knowledge Distillation as Efficient Pre-training", He et al., CVPR 2022): the teacher is a pretrained
trunk (the paper's ImageNet ConvMixers), frozen; each chosen level of the student's pyramid goes through a light 1 x 1
projection to the teacher's width, and the loss pulls the projected map towards the teacher's feature map resized to
that level's grid. The projections are thrown away afterwards; the backbone keeps what it learned. Plain PyTorch.

Losses (``DistillHead``'s ``loss``):

- ``cosine``: ``1 - cos`` between the projected student vector and the teacher vector at each position;
- ``mse``: the squared error against the teacher features standardized per channel over the batch, so every channel
  weighs the same whatever its scale in the teacher;
- ``both``: their sum.
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .options import DEFAULT_DISTILL_LOSS, DISTILL_LEVELS, DISTILL_LOSSES, DistillLoss


def parse_levels(levels) -> List[int]:
    """Return the indices (0 for P3 ... 2 for P5) of levels given as ``"P3,P5"``, ``["P3", "P5"]`` or ``[3, 5]``.

    Args:
        levels (str | Sequence): The levels, each once.

    Returns:
        (List[int]): Their indices into the backbone's ``[P3, P4, P5]``, in that order.

    Raises:
        ValueError: If a level is not one of P3, P4, P5, or none is given.
    """
    items = levels.split(",") if isinstance(levels, str) else list(levels)
    names = [f"P{x}" if isinstance(x, int) and not isinstance(x, bool) else str(x).strip().upper() for x in items]
    wrong = [n for n in names if n not in DISTILL_LEVELS]
    if wrong or not names:
        raise ValueError(f"levels must be some of {', '.join(DISTILL_LEVELS)} (as 'P3,P4'), got {levels!r}")
    return sorted({DISTILL_LEVELS.index(n) for n in names})


def align(teacher: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resize a teacher feature map to a student level's grid: area-averaged where it shrinks, bilinear where it grows.

    Args:
        teacher (torch.Tensor): ``(N, D, h, w)`` features.
        size (Tuple[int, int]): The student level's ``(H, W)``.

    Returns:
        (torch.Tensor): ``(N, D, H, W)``.
    """
    if tuple(teacher.shape[-2:]) == tuple(size):
        return teacher
    if teacher.shape[-2] >= size[0] and teacher.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(teacher, size)
    return F.interpolate(teacher, size=size, mode="bilinear", align_corners=False)


def _standardized(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``x`` with zero mean and unit variance per channel over the batch and the grid."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / (x.var(dim=(0, 2, 3), keepdim=True, unbiased=False) + eps).sqrt()


class DistillHead(nn.Module):
    """The projections of the distilled student levels to the teacher's width, and the loss against the teacher.

    Args:
        channels (Sequence[int]): Channels of each distilled student level.
        teacher_dim (int): Channels of the teacher's features.
        loss (str): ``cosine``, ``mse`` or ``both`` (see the module docstring).
    """

    def __init__(self, channels: Sequence[int], teacher_dim: int, loss: DistillLoss = DEFAULT_DISTILL_LOSS):
        super().__init__()
        if loss not in DISTILL_LOSSES:
            raise ValueError(f"loss must be one of {list(DISTILL_LOSSES)}, got {loss!r}")
        self.loss = loss
        self.projections = nn.ModuleList(nn.Conv2d(c, teacher_dim, 1) for c in channels)

    def forward(self, levels: Sequence[torch.Tensor], teacher: torch.Tensor) -> Tuple[torch.Tensor, Dict]:
        """Return the loss (mean over levels) and ``{"distill": loss, "cosine": mean cosine}``, both detached there.

        Args:
            levels (Sequence[torch.Tensor]): The student's distilled levels, ``(N, C_i, H_i, W_i)`` each.
            teacher (torch.Tensor): The teacher's features ``(N, D, h, w)`` for the same images.
        """
        losses, cosines = [], []
        for project, level in zip(self.projections, levels):
            student = project(level).float()
            target = align(teacher.float(), level.shape[-2:])
            cosine = F.cosine_similarity(student, target, dim=1).mean()
            loss = 1 - cosine if self.loss == "cosine" else F.mse_loss(student, _standardized(target))
            losses.append(loss + (1 - cosine) if self.loss == "both" else loss)
            cosines.append(cosine.detach())
        loss = torch.stack(losses).mean()
        return loss, {"distill": loss.detach(), "cosine": torch.stack(cosines).mean()}

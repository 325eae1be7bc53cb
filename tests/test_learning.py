"""The models learn: on a fixed small batch of each task, 15 optimizer steps of the backbone alone lower the loss.

Only the backbone trains (the neck and head are frozen), so the check is on the plugin's own layers: their forward and
backward passes, initialization and BatchNorms. Stock YOLO with the same steps is the reference. A gradient broken on
purpose (every backbone gradient zeroed) fails the same check, so the check can fail.
"""

import contextlib

import pytest
import torch
import ultralytics
import yaml

from ultralytics_convmixer.integration.planner import ULTRALYTICS_SINCE, _release
from ultralytics_convmixer.integration.resources import TASK_SUFFIXES, dataset_yaml

from conftest import real_dataset, tiny_classify_data

STEPS, LR = 15, 2e-3
# The mean loss of the last three steps must be this far below the first (one batch is noisy). The semantic loss moves
# slowest with its heavy head frozen: stock YOLO26n-sem's falls 6% in these steps.
MARGINS = {"semantic": 0.05}
MARGIN = 0.08
DATA = {"detect": "coco8", "segment": "coco8-seg", "pose": "coco8-pose", "obb": "dota8"}


def fixed_batch(model_yaml: str, task: str, data: str, tmp_path):
    """One training batch of ``data`` as Ultralytics' trainer for ``task`` prepares it (augmented once, then fixed)."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO(model_yaml)
    trainer = yolo._smart_load("trainer")(
        overrides=dict(model=model_yaml, data=data, imgsz=128 if task == "obb" else 64, batch=4, workers=0,
                       device="cpu", plots=False, project=str(tmp_path), name="learn", exist_ok=True, seed=0)
    )  # fmt: skip
    trainer.model = trainer.get_model(cfg=model_yaml, verbose=False)
    trainer.model.args = trainer.args  # the loss' hyperparameters (box, cls, dfl ...)
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=4, rank=-1, mode="train")
    batch = trainer.preprocess_batch(next(iter(loader)))
    return trainer.model, batch


def backbone_rows(model) -> int:
    """How many leading layers are the backbone: the YAML's backbone section."""
    return len(model.yaml["backbone"])


def losses_of_backbone_training(model, batch, steps: int = STEPS) -> list:
    """Train the backbone alone for ``steps`` AdamW steps on ``batch``; return the loss before each step."""
    rows = backbone_rows(model)
    for i, layer in enumerate(model.model):
        layer.requires_grad_(i < rows)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.sum().item())
    return losses


def learns(losses: list, task: str) -> bool:
    """Whether the loss fell by the task's margin of its first value, over the mean of the last three steps."""
    return sum(losses[-3:]) / 3 <= (1 - MARGINS.get(task, MARGIN)) * losses[0]


@contextlib.contextmanager
def broken_backbone_gradient(model):
    """Zero every gradient that reaches a backbone parameter, as a broken backward pass would."""
    handles = [p.register_hook(torch.zeros_like) for p in model.model[: backbone_rows(model)].parameters()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def task_data(task: str, tmp_path_factory, tmp_path) -> str:
    """The data of ``task``: coco8's sets and dota8, or a few generated shapes images (classify, semantic, depth)."""
    if task == "classify":
        return str(tiny_classify_data(tmp_path))
    if task in ("semantic", "depth"):
        data = yaml.safe_load(dataset_yaml(f"shapes-{task}.yaml").read_text())
        data["path"] = str(tmp_path / f"shapes-{task}")  # generated there by the YAML's download hook
        data["generator"].update(n_train=8, n_val=4, imgsz=64)
        (tmp_path / f"shapes-{task}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return str(tmp_path / f"shapes-{task}.yaml")
    return str(real_dataset(tmp_path_factory, DATA[task]))


TASKS = [
    *(pytest.param("yolov8", task, id=task) for task in ("detect", "segment", "pose", "obb", "classify")),
    *(pytest.param("yolo26", task, id=task, marks=pytest.mark.skipif(
        _release(ultralytics.__version__) < _release(ULTRALYTICS_SINCE[head][0]), reason=f"{task} needs Ultralytics "
        f"{ULTRALYTICS_SINCE[head][0]}")) for task, head in (("semantic", "SemanticSegment"), ("depth", "Depth"))),
]  # fmt: skip


@pytest.mark.parametrize("family, task", TASKS)
def test_the_backbone_learns_on_a_fixed_batch_as_stocks_does(family, task, tmp_path_factory, tmp_path):
    data = task_data(task, tmp_path_factory, tmp_path)
    suffix = TASK_SUFFIXES[task]
    ours = losses_of_backbone_training(*fixed_batch(f"{family}n-convmixer{suffix}.yaml", task, data, tmp_path))
    stock = losses_of_backbone_training(*fixed_batch(f"{family}n{suffix}.yaml", task, data, tmp_path))
    assert learns(stock, task), f"stock {task}: {stock}"  # the reference: these steps are enough to learn
    assert learns(ours, task), f"ConvMixer {task}: {ours} (stock: {stock})"


@pytest.mark.parametrize("task", ["detect", "classify"])
def test_a_broken_backbone_gradient_fails_the_check(task, tmp_path_factory, tmp_path):
    model, batch = fixed_batch(f"yolov8n-convmixer{TASK_SUFFIXES[task]}.yaml", task,
                               task_data(task, tmp_path_factory, tmp_path), tmp_path)  # fmt: skip
    with broken_backbone_gradient(model):
        losses = losses_of_backbone_training(model, batch)
    assert not learns(losses, task), losses

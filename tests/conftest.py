"""Shared fixtures: offline Ultralytics, the real datasets beside the checkout, and scratch copies of them; helpers."""

import contextlib
import csv
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # never wait on the network
os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install from inside a test
# Ultralytics keeps settings (datasets_dir, runs_dir) per user and rewrites them when another release runs; give the
# tests, and the child processes they start, their own settings so the user's are never touched.
_SCRATCH = Path(tempfile.mkdtemp(prefix="convmixer-tests-"))
(_SCRATCH / "config").mkdir()
os.environ["YOLO_CONFIG_DIR"] = str(_SCRATCH / "config")

from ultralytics import settings  # noqa: E402 - after YOLO_CONFIG_DIR

if _SCRATCH.resolve() not in Path(settings.file).resolve().parents:
    # Ultralytics read its settings location when first imported: here it was imported before this file (by a pytest
    # plugin, a parent conftest or a script that runs pytest.main), so updating them would rewrite the user's file.
    shutil.rmtree(_SCRATCH, ignore_errors=True)
    raise RuntimeError(
        "Ultralytics was imported before tests/conftest.py could give it scratch settings; the tests would rewrite "
        f"{settings.file}. Run the tests with `python -m pytest` in a process that has not imported Ultralytics."
    )
settings.update(datasets_dir=str(_SCRATCH / "datasets"), runs_dir=str(_SCRATCH / "runs"), weights_dir=str(_SCRATCH))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the scratch settings, datasets and runs once the session ends (every child process has exited)."""
    shutil.rmtree(_SCRATCH, ignore_errors=True)


ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CONVMIXER_DATASETS", ROOT.parent / "shared" / "datasets"))


def real_dataset(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Copy ../shared/datasets/<name> to a scratch folder (the original is read-only) and return its YAML."""
    source = DATASETS / name
    if not (source / f"{name}.yaml").is_file():
        pytest.skip(f"real dataset {name!r} not found at {source} (set CONVMIXER_DATASETS to its parent folder)")
    target = tmp_path_factory.mktemp("data") / name
    shutil.copytree(source, target)
    for cache in target.rglob("*.cache"):
        cache.unlink()
    return target / f"{name}.yaml"


# One epoch at a tiny size: what the training tests pass to Ultralytics' train.
TRAIN_ONE_EPOCH = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, seed=0, exist_ok=True)


def tiny_classify_data(tmp_path: Path) -> Path:
    """A small generated shapes-classify set (40 train, 20 val images at 64 px) and the data YAML that names it."""
    from ultralytics_convmixer.shapes import generate

    root = generate("classify", tmp_path / "shapes-classify", n_train=40, n_val=20, imgsz=64, seed=0)
    (tmp_path / "tiny-classify.yaml").write_text(f"path: {root}\ntrain: train\nval: val\n")
    return tmp_path / "tiny-classify.yaml"


def last_epoch_metrics(run_dir: Path) -> dict:
    """Last row of Ultralytics' results.csv (``epoch`` counts from 1), values as floats."""
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return {k.strip(): float(v) for k, v in rows[-1].items()}


def train_killed_in_second_epoch(model, data: Path, project: Path, epochs: int) -> subprocess.CompletedProcess:
    """Train ``model`` on ``data`` into ``<project>/killed`` in a child process that SIGKILLs itself in epoch 2.

    No clean shutdown, as a killed job: ``last.pt`` and results.csv hold the first epoch. Returns the child process
    (return code -9 when it was killed).
    """
    code = f"""
        import os, signal
        from ultralytics import YOLO
        def die_in_second_epoch(trainer):
            if trainer.epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        model = YOLO({str(model)!r})
        model.add_callback("on_train_batch_end", die_in_second_epoch)
        model.train(data={str(data)!r}, epochs={epochs}, imgsz=64, batch=2, workers=0, device="cpu", plots=False,
                    project={str(project)!r}, name="killed")
        """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600)


@contextlib.contextmanager
def ultralytics_log(level: int = logging.NOTSET):
    """Collect the messages Ultralytics logs (at ``level`` or above) inside the ``with`` block into the yielded list."""
    messages = []
    handler = logging.Handler(level)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("ultralytics")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def with_running_statistics(module):
    """Give every BatchNorm non-trivial statistics and affine parameters, so folding them is a real test; eval mode."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=generator))
            bn.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            bn.weight.copy_(torch.randn(c, generator=generator))
            bn.bias.copy_(torch.randn(c, generator=generator))
    return module.eval()


def output_tensors(output):
    """Every tensor of a model's output, depth first (heads return nested tuples, lists and, from 8.4, dicts)."""
    import torch

    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, dict):
        for value in output.values():
            yield from output_tensors(value)
    elif isinstance(output, (list, tuple)):
        for value in output:
            yield from output_tensors(value)


def assert_export_matches(exported, reference, x) -> None:
    """Assert that an exported ONNX or TorchScript file computes what the PyTorch ``reference`` model computes on ``x``.

    Each exported output is matched to PyTorch's output of the same shape and compared channel by channel (axis 1
    mixes box pixels, scores and keypoints): within 1e-4 of each channel's range, and at least 1e-6, since ONNX
    Runtime's sigmoid is approximate for the ~1e-5 class scores of an untrained head (stock yolov8n.yaml differs by
    1e-3 of their range too).
    """
    import numpy as np
    import torch

    with torch.no_grad():
        expected = [t.numpy() for t in output_tensors(reference(x))]
    if str(exported).endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    else:
        got = [t.numpy() for t in output_tensors(torch.jit.load(exported)(x))]
    assert got, f"{exported} returned no output"
    for out in got:
        match = [e for e in expected if e.shape == out.shape]
        assert match, f"{exported}: output of shape {out.shape} not among PyTorch's {[e.shape for e in expected]}"
        scale = np.abs(match[0]).max(axis=tuple(i for i in range(out.ndim) if i != 1), keepdims=True)
        worst = float((np.abs(out - match[0]) / (1e-4 * scale + 1e-6)).max())
        assert worst <= 1, f"{exported}: output {out.shape} differs from PyTorch's by {worst:.2f}x the tolerance"


@pytest.fixture(scope="session")
def coco8(tmp_path_factory):
    return real_dataset(tmp_path_factory, "coco8")


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    """Run every test from its own scratch folder so relative paths and runs/ never touch the checkout."""
    monkeypatch.chdir(tmp_path)

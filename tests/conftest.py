"""Shared fixtures: offline Ultralytics, the real datasets beside the checkout, and scratch copies of them; helpers."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the helpers the benchmarks share
from common import ultralytics_log  # noqa: E402, F401 - the tests import it from here

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
    from ultralytics_convmixer.data.shapes import generate

    root = generate("classify", tmp_path / "shapes-classify", n_train=40, n_val=20, imgsz=64, seed=0)
    (tmp_path / "tiny-classify.yaml").write_text(f"path: {root}\ntrain: train\nval: val\n")
    return tmp_path / "tiny-classify.yaml"


def last_epoch_metrics(run_dir: Path) -> dict:
    """Last row of Ultralytics' results.csv (``epoch`` counts from 1), values as floats."""
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return {k.strip(): float(v) for k, v in rows[-1].items()}


def run(args, env: Optional[dict] = None, timeout: float = 600, cwd=None, check: bool = False):
    """Run a child process with the test environment, updated by ``env`` (a None value unsets a variable).

    Output is captured as text; with ``check`` a failure fails the test, showing the end of the child's output.
    """
    child_env = {**os.environ, **(env or {})}
    child_env = {k: v for k, v in child_env.items() if v is not None}
    args = [str(a) for a in args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=child_env)
    if check:
        assert result.returncode == 0, f"{args[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def run_python(code: str, *argv, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter, which sees the plugin only through its start-up hook.

    ``argv`` becomes ``sys.argv[1:]``; ``kwargs`` are :func:`run`'s.
    """
    return run([sys.executable, "-c", textwrap.dedent(code), *argv], **kwargs)


def cli_command(*argv) -> list:
    """The command line that runs ``ultralytics-convmixer argv`` in a fresh interpreter of this environment."""
    return [sys.executable, "-m", "ultralytics_convmixer.cli", *(str(a) for a in argv)]


def csv_rows(out: Path, report: str = "compare") -> list:
    """The rows of ``<out>/<report>.csv``, as ``compare`` writes them (``compare`` or ``profile``)."""
    with open(out / f"{report}.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def yolo_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """Run the stock ``yolo`` command of this environment with ``args``; ``kwargs`` are :func:`run`'s."""
    return run([Path(sys.executable).with_name("yolo"), *args], **kwargs)


def kill_and_resume(model, data: Path, project: Path, epochs: int, resume_with_cli: bool = True) -> str:
    """Train ``model`` into ``<project>/killed``, SIGKILL the training in its second epoch, then resume it to the end.

    The training runs in a child process that kills itself as a job is killed (no clean shutdown): ``last.pt`` and
    results.csv hold the first epoch. It is resumed by ``yolo train resume model=last.pt`` (or, without
    ``resume_with_cli``, ``YOLO(last.pt).train(resume=True)``) in a fresh process. Asserts that the kill came after
    one finished epoch, and that the resumed run says so and finishes every epoch.

    Returns:
        (str): The killed training's output (stdout, then stderr).
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
    killed = run_python(code)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert last_epoch_metrics(project / "killed")["epoch"] == 1  # one epoch finished before the kill
    last = project / "killed" / "weights" / "last.pt"
    if resume_with_cli:
        resumed = yolo_cli("train", "resume", f"model={last}", check=True)
    else:
        resumed = run_python(f"from ultralytics import YOLO; YOLO({str(last)!r}).train(resume=True)", check=True)
    assert "Resuming training" in resumed.stdout + resumed.stderr
    assert last_epoch_metrics(project / "killed")["epoch"] == epochs
    return killed.stdout + killed.stderr


@pytest.fixture(scope="session")
def coco8(tmp_path_factory):
    return real_dataset(tmp_path_factory, "coco8")


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    """Run every test from its own scratch folder so relative paths and runs/ never touch the checkout."""
    monkeypatch.chdir(tmp_path)

"""Training for ``compare``: one subprocess per model, and the state files that make a comparison resumable.

Every model is trained with the same Ultralytics arguments and seed, each in its own subprocess so that its peak
memory can be read from the kernel. What training measures, as the report shows it:

- ``mAP50(B)``, ``mAP50-95(B)``, and ``(M)`` for masks, ``(P)`` for pose, ``accuracy_top1``/``accuracy_top5`` for
  classify, ``mIoU``/``pixel_acc`` for semantic, or ``delta1``/``abs_rel`` (mean relative error)/``rmse`` (metres) for
  depth: Ultralytics' final validation of ``best.pt`` at the end of training (the validator's ``results_dict``). The
  CSV also has precision and recall, or depth's ``delta2``, ``delta3`` and ``silog``.
- ``s/epoch``: mean wall time of one epoch's training loop (data loading, forward, backward, optimiser step), timed
  between Ultralytics' ``on_train_epoch_start`` and ``on_train_epoch_end`` callbacks; validation is not included.
  Under multi-GPU (DDP) training the callbacks run elsewhere, and the ``time`` column of ``results.csv`` divided by
  the number of epochs (validation included) is used instead.
- ``peak mem (MB)``: on GPU, ``torch.cuda.max_memory_allocated`` of the training process (training and final
  validation); on CPU, the peak resident set size (RSS) of the training subprocess, as the kernel reports it to
  ``os.wait4`` (``ru_maxrss``). That is the largest single process of the training tree: dataloader workers are
  separate processes and are not added, and it includes the ~0.5 GB that importing torch and Ultralytics costs.

An interrupted comparison resumes: each model's state is kept in ``<out>/state/<name>.json``, and re-running the same
command skips the models whose training finished with the same settings and continues an interrupted training from its
last saved epoch (Ultralytics' ``resume``). Training runs are in ``<out>/runs/<name>``; one that cannot be reused is
renamed to ``<name>.previous-<time>``, never deleted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import PREFIX, TrainingError, log, one_line, register_plugin
from .data import DataSpec, ModelSpec

STATE_VERSION = 2  # the config holds the model's content (YAML or weights file) too


def state_path(out: Path, name: str) -> Path:
    """Return the state file of model ``name`` in the output folder ``out``.

    Args:
        out (Path): Output folder.
        name (str): The model's name.

    Returns:
        (Path): ``<out>/state/<name>.json``.
    """
    return out / "state" / f"{name}.json"


def run_config(spec: ModelSpec, data: DataSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Return what a finished training depends on; a state with another config is trained again.

    The config is returned as its state file stores it (through JSON: ``device=0,1`` is the tuple ``(0, 1)`` in
    ``args`` and the list ``[0, 1]`` in the file), so that a stored config compares equal to the same one again.

    Args:
        spec (ModelSpec): The model.
        data (DataSpec): The dataset.
        args (dict[str, Any]): Training arguments.

    Returns:
        (dict[str, Any]): State version, model, model content hash, data and arguments.
    """
    config = {"version": STATE_VERSION, "model": spec.source, "model_content": model_fingerprint(spec.source),
              "data": data.arg, "args": args}  # fmt: skip
    return json.loads(json.dumps(config, default=str))


def model_fingerprint(source: str) -> str:
    """SHA-256 of what a model is built from, so an edited YAML or an upgraded package's YAML is trained again.

    A YAML is hashed as Ultralytics loads it (packaged and stock names resolved, the file path left out); a weights
    file by its bytes.

    Args:
        source (str): A resolved model (see :func:`~.data.resolve_model`).

    Returns:
        (str): The hex digest.
    """
    if Path(source).suffix.lower() in {".yaml", ".yml"}:
        from ultralytics.nn.tasks import yaml_model_load

        content = {k: v for k, v in yaml_model_load(source).items() if k != "yaml_file"}
        blob = json.dumps(content, sort_keys=True, default=str).encode()
    else:
        blob = Path(source).read_bytes()
    return hashlib.sha256(blob).hexdigest()


def read_state(path: Path) -> dict[str, Any]:
    """Return a model's state file as a dict, empty when it is missing or unreadable.

    Args:
        path (Path): The state file.

    Returns:
        (dict[str, Any]): Its content, or ``{}``.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def load_done(out: Path, spec: ModelSpec, config: dict[str, Any]) -> dict[str, Any] | None:
    """Return the results of a finished training of ``spec`` with ``config``, or None if it must be trained.

    Args:
        out (Path): Output folder.
        spec (ModelSpec): The model.
        config (dict[str, Any]): See :func:`run_config`.

    Returns:
        (dict | None): The ``train`` results of the state file.
    """
    state = read_state(state_path(out, spec.name))
    if not state:
        return None
    if state.get("status") != "done":
        log(f"{spec.name}: previous training did not finish")
        return None
    if state.get("config") != config:
        log(f"{spec.name}: settings changed since the last run; training again")
        return None
    if not Path(state["train"].get("weights", "")).is_file():
        log(f"{spec.name}: trained weights are gone; training again")
        return None
    return state["train"]


def resumable_checkpoint(state_file: Path, run_dir: Path, config: dict[str, Any]) -> Path | None:
    """Return ``last.pt`` of an interrupted training with the same ``config`` that Ultralytics can resume, else None.

    Resumable means: the state file says the training started with ``config`` and never finished, and ``last.pt``
    loads, still holds its optimizer (Ultralytics strips it once training ends) and has epochs left to train.

    Args:
        state_file (Path): The model's state file.
        run_dir (Path): The model's training run.
        config (dict[str, Any]): See :func:`run_config`.

    Returns:
        (Path | None): The checkpoint to resume from.
    """
    last = run_dir / "weights" / "last.pt"
    state = read_state(state_file)
    if state.get("status") != "training" or state.get("config") != config or not last.is_file():
        return None
    import torch

    try:  # our own output; weights_only=False because Ultralytics pickles the whole model into it
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as e:  # e.g. cut short while being written
        log(f"{last}: cannot resume from it ({one_line(e)})")
        return None
    epoch, epochs = ckpt.get("epoch", -1), (ckpt.get("train_args") or {}).get("epochs", 0)
    return last if ckpt.get("optimizer") is not None and 0 <= epoch < epochs - 1 else None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _set_aside(run_dir: Path) -> Path:
    """Rename a run that cannot be reused or resumed to ``<run>.previous-<time>`` (never delete a user's training)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run_dir.stat().st_mtime))
    target, n = run_dir.with_name(f"{run_dir.name}.previous-{stamp}"), 2
    while target.exists():
        target, n = run_dir.with_name(f"{run_dir.name}.previous-{stamp}-{n}"), n + 1
    run_dir.rename(target)
    return target


def _max_rss_mb(maxrss: int) -> float:
    """``ru_maxrss`` in MB: kilobytes on Linux, bytes on macOS."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a training child runs: handled like Ctrl-C, so the child is stopped first."""


def _die_with_parent(parent_pid: int) -> None:
    """In the training child: on Linux, have the kernel send SIGTERM if compare dies, even by SIGKILL (no orphans)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # compare died before that took effect
        sys.exit(f"{PREFIX}compare (pid {parent_pid}) is gone; not training")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(f"signal {signal.Signals(signum).name}")


def _run_child(cmd: list[str]) -> tuple[int, float | None]:
    """Run ``cmd`` with inherited stdout/stderr; return its exit code and peak RSS in MB (None where unknown).

    The child must not outlive this process (an orphan would go on writing ``last.pt`` while the next ``compare``
    resumes from it): Ctrl-C, SIGTERM and SIGHUP stop it before they stop compare, and if compare is killed outright
    the kernel stops it (Linux; see :func:`_die_with_parent`).
    """
    proc = subprocess.Popen(cmd)
    handled = [sig for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if sig is not None]
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in handled} if _in_main_thread() else {}
    try:
        if not hasattr(os, "wait4"):  # Windows
            return proc.wait(), None
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, _max_rss_mb(usage.ru_maxrss)
    except BaseException:
        if proc.returncode is None:
            proc.terminate()
            proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()  # signal handlers can only be set there


def train(spec: ModelSpec, data: DataSpec, args: dict[str, Any], out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Train one model in a subprocess under ``<out>/runs/<name>`` and record its results in its state file.

    A training of the same model with the same settings that was interrupted after saving an epoch is resumed from
    its ``last.pt`` instead of being started again.

    Args:
        spec (ModelSpec): The model.
        data (DataSpec): The dataset.
        args (dict[str, Any]): Ultralytics training arguments (see :func:`~.args.training_args`).
        out (Path): Output folder.
        config (dict[str, Any]): What the training depends on, ``run_config(spec, data, args)``.

    Returns:
        (dict[str, Any]): The training results (metrics, time per epoch, peak memory, weights path...).

    Raises:
        TrainingError: If the training subprocess fails.
    """
    run_dir = out / "runs" / spec.name
    state_file = state_path(out, spec.name)
    resume = resumable_checkpoint(state_file, run_dir, config)
    if resume:
        log(f"{spec.name}: resuming the interrupted training from {resume}")
    else:
        if run_dir.exists():
            kept = _set_aside(run_dir)
            log(f"{spec.name}: the previous run in {run_dir} (other settings, or unfinished) is kept as {kept}")
        _write_json(state_file, {"status": "training", "config": config})
        log(f"{spec.name}: training {spec.arg} on {data.arg} in {run_dir}")
    result_file = state_file.with_name(f"{spec.name}.result.json")
    result_file.unlink(missing_ok=True)
    job = {"model": spec.source, "data": data.arg, "args": args, "project": str(run_dir.parent), "name": spec.name}
    job["parent_pid"] = os.getpid()
    job.update(result=str(result_file), resume=str(resume) if resume else None)
    job_file = state_file.with_name(f"{spec.name}.job.json")
    _write_json(job_file, job)
    cmd = [sys.executable, "-c", f"from {__name__} import _train_child; _train_child({str(job_file)!r})"]
    t0 = time.time()
    code, rss_mb = _run_child(cmd)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        hint = " (the kernel's out-of-memory killer sends it; try a smaller batch=)" if name == "SIGKILL" else ""
        raise TrainingError(f"training {spec.arg} was killed by {name}{hint}; run the same command again to resume")
    if code != 0 or not result_file.is_file():
        raise TrainingError(f"training {spec.arg} failed (exit code {code}); see the output above")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result.update(peak_rss_mb=rss_mb, wall_s=time.time() - t0)
    _write_json(state_file, {"status": "done", "config": config, "train": result})
    result_file.unlink(missing_ok=True)
    job_file.unlink(missing_ok=True)
    return result


def _metrics_dict(metrics: Any, trainer: Any) -> dict[str, float]:
    """Return the final validation metrics without the ``metrics/`` prefix and fitness."""
    d = getattr(metrics, "results_dict", None)
    if not isinstance(d, dict):
        d = metrics if isinstance(metrics, dict) else (getattr(trainer, "metrics", None) or {})
    return {k.split("/", 1)[-1]: float(v) for k, v in d.items() if k.startswith("metrics/")}


def _csv_epoch_time(csv_file: Path, resumed_from_epoch: int = 0) -> float | None:
    """Mean epoch time (validation included) of the last training session, from ``results.csv``.

    Its ``time`` column is the wall time since the session started, and a resumed training starts it again from 0,
    so the last row's time over the number of rows since the session's first epoch (``resumed_from_epoch + 1``, the
    last row of that number: a killed session may have logged it too) is the mean.
    """
    try:
        with open(csv_file, encoding="utf-8") as f:
            rows = [(round(float(row["epoch"])), float(row["time"])) for row in csv.DictReader(f)]
        firsts = [i for i, (epoch, _) in enumerate(rows) if epoch == resumed_from_epoch + 1]
        session = rows[firsts[-1] :] if firsts else rows
        return session[-1][1] / len(session)
    except (OSError, KeyError, ValueError, IndexError, TypeError):
        return None


def _train_child(job_file: str) -> None:
    """Train one model as described by ``job_file`` and write its results (runs in the training subprocess)."""
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    _die_with_parent(job["parent_pid"])
    register_plugin()
    import torch
    from ultralytics import YOLO

    from ..nn.dwconv_selfcheck import checked_cases

    model = YOLO(job.get("resume") or job["model"])
    resumed_from = model.ckpt.get("epoch", -1) + 1 if job.get("resume") else 0  # read before training rewrites it
    starts: list[float] = []
    epoch_times: list[float] = []
    model.add_callback("on_train_epoch_start", lambda trainer: starts.append(time.perf_counter()))
    model.add_callback("on_train_epoch_end", lambda trainer: epoch_times.append(time.perf_counter() - starts[-1]))
    train_args = dict(job["args"], resume=True) if job.get("resume") else job["args"]
    metrics = model.train(data=job["data"], project=job["project"], name=job["name"], exist_ok=True, **train_args)
    trainer = model.trainer
    # Multi-GPU: the epochs ran in DDP worker processes, which this trainer only started; it ran no callback, loaded
    # no checkpoint and allocated no GPU memory, so time per epoch comes from results.csv and memory is not known.
    ddp = getattr(trainer, "ddp", False)
    device = getattr(trainer, "device", None)
    on_cuda = device is not None and device.type == "cuda" and torch.cuda.is_available() and not ddp
    weights = trainer.best if trainer.best.exists() else trainer.last
    csv_epoch_time = None if epoch_times else _csv_epoch_time(trainer.csv, resumed_from)
    result = {
        "metrics": _metrics_dict(metrics, trainer),
        "epochs": resumed_from + len(epoch_times) if epoch_times else trainer.epochs,
        "resumed_from_epoch": resumed_from,  # 0 unless resumed; s_per_epoch is over the epochs timed here
        "s_per_epoch": statistics.mean(epoch_times) if epoch_times else csv_epoch_time,
        "epoch_times_s": epoch_times,
        "peak_gpu_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else None,
        "device": str(device),
        "imgsz": trainer.args.imgsz,
        "weights": str(Path(weights).resolve()),
        "save_dir": str(Path(trainer.save_dir).resolve()),
        "dwconv_checks": checked_cases(),  # the Triton depthwise kernels' self-check, on CUDA
    }
    _write_json(Path(job["result"]), result)

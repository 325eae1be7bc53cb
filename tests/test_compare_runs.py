"""The ``ultralytics-convmixer compare`` command on CPU: a tiny real comparison, its reports, resume and kills."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ultralytics_convmixer.cli import main

from conftest import cli_command, csv_rows, real_dataset

TINY = ["imgsz=64", "epochs=1", "batch=2", "workers=0", "fraction=0.5", "plots=False", "--latency-runs", "2"]
NUMERIC = ["params", "gflops", "mAP50(B)", "mAP50-95(B)", "s_per_epoch", "peak_rss_mb"]
NUMERIC += ["pt_b1_ms", "pt_b32_ms", "onnx_b1_ms", "onnx_b32_ms"]


# ----------------------------------------------------------------------------------------------------------------------
# A tiny real comparison on CPU: train, report, resume
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_trains_reports_and_resumes(tmp_path_factory, tmp_path, capsys):
    data = real_dataset(tmp_path_factory, "coco8")
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(data), "--out", str(out), *TINY, "--batches", "1,32"]  # b32 too, on CPU

    assert main(argv) == 0
    text = capsys.readouterr().out
    table = (out / "compare.md").read_text(encoding="utf-8")
    for name in ("yolov8n", "yolov8n-convmixer"):
        assert f"| {name} |" in table
        assert (out / "runs" / name / "weights" / "best.pt").is_file()  # runs are findable under <out>/runs/<name>
        state = json.loads((out / "state" / f"{name}.json").read_text(encoding="utf-8"))
        assert state["status"] == "done" and state["config"]["args"]["seed"] == 0
        assert state["config"]["args"]["deterministic"] is True
    assert "mAP50-95(B)" in table and "PyTorch b32 (ms)" in table and "ONNX b1 (ms)" in table
    assert table.splitlines()[0] in text  # the table is printed too
    for path in ("compare.md", "compare.csv", "compare.png"):
        assert str(out / path) in text
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = csv_rows(out)
    assert [r["model"] for r in rows] == ["yolov8n", "yolov8n-convmixer"]
    for row in rows:
        for key in NUMERIC:
            float(row[key])  # every measured column is a number
        assert int(row["params"]) > 1_000_000 and float(row["pt_b1_ms"]) > 0
        assert row["onnx_provider"] == "CPUExecutionProvider" and row["device"] == "cpu"

    # The same command again: both trainings are skipped, the reports are written again.
    (out / "compare.csv").unlink()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.count("already trained with these settings") == 2 and "training yolov8n" not in text
    assert len(csv_rows(out)) == 2

    # An interrupted comparison: only the unfinished model is trained again.
    state_file = out / "state" / "yolov8n-convmixer.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state_file.write_text(json.dumps({"status": "training", "config": state["config"]}), encoding="utf-8")
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "yolov8n: already trained" in text
    assert "yolov8n-convmixer: previous training did not finish" in text
    assert "yolov8n-convmixer: training yolov8n-convmixer.yaml" in text
    (kept,) = (out / "runs").glob("yolov8n-convmixer.previous-*")  # the run it replaced is set aside, not deleted
    assert (kept / "weights" / "best.pt").is_file() and f"is kept as {kept}" in text


def _kill_after_a_saved_epoch(proc: subprocess.Popen, last_pt, timeout: float = 600) -> None:
    """Kill ``proc``'s process group once ``last_pt`` holds a complete checkpoint (stopped first, so it cannot be
    caught half-written)."""
    import torch

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if last_pt.is_file():
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                torch.load(last_pt, map_location="cpu", weights_only=False)
                break
            except Exception:  # being written: let it finish
                os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    assert proc.poll() is None, "the training ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_an_interrupted_training_resumes_from_its_last_saved_epoch(tmp_path_factory, tmp_path, capsys):
    data = real_dataset(tmp_path_factory, "coco8")
    out = tmp_path / "cmp"
    argv = ["compare", "yolov8n-convmixer.yaml", "--data", str(data), "--out", str(out), *TINY, "epochs=6"]
    run = out / "runs" / "yolov8n-convmixer"
    proc = subprocess.Popen(cli_command(*argv), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    _kill_after_a_saved_epoch(proc, run / "weights" / "last.pt")
    rows_before = (run / "results.csv").read_text(encoding="utf-8").splitlines()
    assert 2 <= len(rows_before) <= 6  # header + 1 to 5 epochs: interrupted mid-way

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "yolov8n-convmixer: previous training did not finish" in text
    assert f"yolov8n-convmixer: resuming the interrupted training from {run / 'weights' / 'last.pt'}" in text
    state = json.loads((out / "state" / "yolov8n-convmixer.json").read_text(encoding="utf-8"))
    assert state["status"] == "done" and state["train"]["epochs"] == 6
    assert state["train"]["resumed_from_epoch"] >= 1
    rows_after = (run / "results.csv").read_text(encoding="utf-8").splitlines()
    assert rows_after[:2] == rows_before[:2]  # epoch 1 kept (its wall-clock time too): not trained from scratch
    assert rows_after[-1].split(",")[0].strip() == "6"


def _training_children(out) -> list:
    """Pids of compare's training subprocesses for the output folder ``out`` (Linux: read from /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "_train_child" in text and str(out) in text:
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_compare_leaves_no_training_running(tmp_path_factory, tmp_path, sig):
    data = real_dataset(tmp_path_factory, "coco8")
    out = tmp_path / "cmp"
    argv = ["compare", "yolov8n.yaml", "--data", str(data), "--out", str(out), *TINY, "epochs=2000"]  # minutes
    proc = subprocess.Popen(cli_command(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "runs" / "yolov8n" / "weights" / "last.pt").is_file() and time.time() < deadline:
        time.sleep(0.2)
    children = _training_children(out)
    assert len(children) == 1 and proc.poll() is None, "the training should be running"
    proc.send_signal(sig)  # to compare only, as a job scheduler or `kill PID` would
    proc.wait(timeout=60)
    deadline = time.time() + 20
    while _training_children(out) and time.time() < deadline:
        time.sleep(0.2)
    orphans = _training_children(out)
    for pid in orphans:  # do not leave them running when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not orphans, f"training {children} went on after compare got {sig.name}"
    if sig == signal.SIGTERM:
        assert proc.returncode == 130  # handled as an interruption: run the same command again to resume


@pytest.mark.slow
def test_compare_no_train_profiles_only_and_keeps_the_trained_report(tmp_path, capsys):
    out = tmp_path / "profile"
    out.mkdir()
    (out / "compare.md").write_text("a finished comparison's report", encoding="utf-8")
    # Default data: the packaged shapes-detect.yaml, read for its 13 classes but not generated.
    argv = ["compare", "yolov8n.yaml", "--no-train", "yolov8n-convmixer.yaml", "--out", str(out), "imgsz=64"]
    assert main([*argv, "--latency-runs", "2", "--batches", "32,1"]) == 0  # models, options and key=value in any order
    assert ": training " not in capsys.readouterr().out
    assert not (out / "runs").exists() and not (out / "state").exists()
    rows = csv_rows(out, "profile")
    assert [r["model"] for r in rows] == ["yolov8n", "yolov8n-convmixer"]
    for row in rows:
        assert row["mAP50-95(B)"] == "" and row["s_per_epoch"] == "" and row["peak_rss_mb"] == ""
        for key in ("params", "gflops", "pt_b1_ms", "pt_b32_ms", "onnx_b1_ms", "onnx_b32_ms"):
            assert float(row[key]) > 0
    assert 3_000_000 < int(rows[0]["params"]) < 3_100_000  # built for 13 classes (3.16M with the YAML's 80)
    table = (out / "profile.md").read_text(encoding="utf-8")
    assert (out / "profile.png").is_file() and re.search(r"\| yolov8n-convmixer \| \d\.\d\d \(0\.\d\d×\) \|", table)
    assert (out / "compare.md").read_text(encoding="utf-8") == "a finished comparison's report"
    assert not (out / "compare.csv").exists()

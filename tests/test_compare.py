"""The ``ultralytics-convmixer compare`` and ``datasets`` commands: a tiny real run on CPU, resume, errors."""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")

import contextlib
import csv
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ultralytics_convmixer.cli import main

from conftest import real_dataset

TINY = ["imgsz=64", "epochs=1", "batch=2", "workers=0", "fraction=0.5", "plots=False", "--latency-runs", "2"]
NUMERIC = ["params", "gflops", "mAP50(B)", "mAP50-95(B)", "s_per_epoch", "peak_rss_mb"]
NUMERIC += ["pt_b1_ms", "pt_b32_ms", "onnx_b1_ms", "onnx_b32_ms"]


def _csv_rows(out, report="compare"):
    with open(out / f"{report}.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _error(capsys, argv):
    """Run main(argv); return its exit code and its stderr (one line expected)."""
    code = main(argv)
    return code, capsys.readouterr().err.strip()


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
    rows = _csv_rows(out)
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
    assert len(_csv_rows(out)) == 2

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
    code = "import sys; from ultralytics_convmixer.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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
    code = "import sys; from ultralytics_convmixer.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    rows = _csv_rows(out, "profile")
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


# ----------------------------------------------------------------------------------------------------------------------
# User errors: exit code 2, one line naming the culprit, no traceback
# ----------------------------------------------------------------------------------------------------------------------
def test_unknown_model(capsys):
    code, err = _error(capsys, ["compare", "yolov8n.yaml", "no-such-model.yaml", "--no-train"])
    assert code == 2 and "unknown model 'no-such-model.yaml'" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    code, err = _error(capsys, ["compare", "missing.pt", "--no-train"])
    assert code == 2 and "unknown model 'missing.pt'" in err


def test_missing_data_yaml(tmp_path, capsys):
    code, err = _error(capsys, ["compare", "--data", "no-such-data.yaml", "--no-train"])
    assert code == 2 and "data YAML not found: 'no-such-data.yaml'" in err and len(err.splitlines()) == 1
    data = tmp_path / "empty.yaml"
    data.write_text(f"path: {tmp_path / 'nothing'}\ntrain: images/train\nval: images/val\nnames: [a]\n")
    code, err = _error(capsys, ["compare", "--data", str(data)])
    assert code == 2 and f"data YAML '{data}': images not found" in err
    code, err = _error(capsys, ["compare", "--data", "/no/such/dir/shapes-detect.yaml", "--no-train"])
    assert code == 2 and "not found: '/no/such/dir/shapes-detect.yaml'" in err  # a path is not a packaged name


def test_task_mismatch(tmp_path_factory, capsys):
    pose = real_dataset(tmp_path_factory, "coco8-pose")
    code, err = _error(capsys, ["compare", "--data", str(pose), "--no-train"])
    assert code == 2 and "is a pose dataset" in err and "detect models" in err and len(err.splitlines()) == 1
    obb = real_dataset(tmp_path_factory, "dota8")
    code, err = _error(capsys, ["compare", "--data", str(obb)])
    assert code == 2 and "is an obb dataset" in err
    coco8 = real_dataset(tmp_path_factory, "coco8")
    code, err = _error(capsys, ["compare", "yolov8n-seg.yaml", "yolov8n-convmixer-seg.yaml", "--data", str(coco8)])
    assert code == 2 and "is a detect dataset but the models are segment models" in err


def test_a_model_yaml_with_a_bad_row_fails_before_any_model_trains(tmp_path, capsys):
    from ultralytics_convmixer.resources import model_yaml

    bad = tmp_path / "bad-convmixer.yaml"  # an even kernel: only building the model finds it
    bad.write_text(model_yaml("yolov8n-convmixer.yaml").read_text().replace("[14, 9, 6], 3,", "[14, 9, 6], 4,"))
    code, err = _error(capsys, ["compare", "yolov8n.yaml", str(bad), "--out", str(tmp_path / "out")])
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"model '{bad}' cannot be read" in err and "layer 0 (ConvMixerBackbone)" in err and "k must be an odd" in err
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained, not even the stock model given first


def test_models_must_share_a_task(capsys):
    code, err = _error(capsys, ["compare", "yolov8n.yaml", "yolov8n-convmixer-pose.yaml"])
    assert code == 2 and "must share one task" in err and "yolov8n-convmixer-pose.yaml (pose)" in err


@pytest.mark.parametrize(
    "item, message",
    [
        ("epoch=3", "unknown training argument 'epoch' (did you mean 'epochs'?)"),
        ("epochs=1.5", "'epochs=1.5' is of invalid type float"),
        ("project=x", "argument 'project' is set by compare itself; runs go under --out"),
        ("model=yolov8s.yaml", "argument 'model' is set by compare itself; give the models as positional arguments"),
        ("=3", "argument '=3' is not key=value"),
    ],
)
def test_bad_training_argument(capsys, item, message):
    code, err = _error(capsys, ["compare", item])
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_bad_options(capsys):
    code, err = _error(capsys, ["compare", "--latency-runs", "0"])
    assert code == 2 and "--latency-runs" in err
    code, err = _error(capsys, ["compare", "--bogus"])
    assert code == 2 and "--bogus" in err
    assert main(["datasets", "nope"]) == 2 and "unknown task 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-4", "1,x", "1,,32", "1.5", "", "²"])
def test_a_bad_batches_option_is_a_one_line_error(capsys, value):
    code, err = _error(capsys, ["compare", "--batches", value, "--no-train"])
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--batches takes positive integers separated by commas (such as 1,32), got '{value}'" in err


def test_batches_parse_to_ascending_sizes_each_once():
    from ultralytics_convmixer.compare import CompareError, parse_batches

    assert parse_batches("1,32") == (1, 32)
    assert parse_batches(" 32, 8 ,1,8") == (1, 8, 32)
    assert parse_batches([4]) == (4,)  # from Python
    for bad in ([0], [True], [1.5], []):
        with pytest.raises(CompareError, match="--batches takes positive integers"):
            parse_batches(bad)


def test_a_cpu_times_batch_1_only_and_a_gpu_batch_32_too():
    import torch

    from ultralytics_convmixer.compare.args import default_batches
    from ultralytics_convmixer.compare.profile import warmup_runs

    assert default_batches(torch.device("cpu")) == (1,) and default_batches("cpu") == (1,)
    assert default_batches(torch.device("cuda", 0)) == (1, 32)
    assert warmup_runs(1, torch.device("cpu")) == 3 and warmup_runs(32, torch.device("cuda", 0)) == 3
    assert warmup_runs(32, torch.device("cpu")) == 1  # seconds per pass, and only the first is slow


@pytest.fixture(scope="module")
def cpu_profile(tmp_path_factory):
    """A ``--no-train`` run of the default models on the CPU at imgsz 64, one timed run: its folder and stdout."""
    out, cwd = tmp_path_factory.mktemp("cpu-profile"), os.getcwd()
    stdout = io.StringIO()
    os.chdir(out)  # as _runs_in_tmp does for each test: nothing lands in the checkout
    try:
        with contextlib.redirect_stdout(stdout):
            code = main(["compare", "--no-train", "--out", str(out), "imgsz=64", "device=cpu", "--latency-runs", "1"])
    finally:
        os.chdir(cwd)
    assert code == 0
    return out, stdout.getvalue()


def test_a_cpu_profile_has_batch_1_latency_columns_only(cpu_profile):
    out, _ = cpu_profile
    with open(out / "profile.csv", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert [c for c in header if c.endswith("_ms")] == ["pt_b1_ms", "onnx_b1_ms"]
    for row in _csv_rows(out, "profile"):
        assert float(row["pt_b1_ms"]) > 0 and float(row["onnx_b1_ms"]) > 0
    table = (out / "profile.md").read_text(encoding="utf-8")
    assert table.splitlines()[0].endswith("| PyTorch b1 (ms) | ONNX b1 (ms) |") and "b32" not in table
    assert "after 3 warm-up runs, the models taking turns" in table


def test_profiling_prints_a_progress_line_per_model_and_measurement(cpu_profile):
    _, text = cpu_profile
    lines = [ln for ln in text.splitlines() if ln.startswith("compare: ")]
    expected = []
    for i, name in ((1, "yolov8n"), (2, "yolov8n-convmixer")):
        expected += [
            f"compare: [{i}/2] {name}: building at imgsz 64 on cpu ...",
            f"compare: [{i}/2] {name}: ONNX export ...",
        ]
        assert any(
            re.fullmatch(rf"compare: \[{i}/2\] {name}: [\d.]+ M params, [\d.]+ GFLOPs at imgsz 64", ln) for ln in lines
        )
    for runtime in ("PyTorch", "ONNX"):
        expected.append(f"compare: latency {runtime} b1: 2 models in turns, 3 warm-up + 1 timed runs ...")
        assert any(
            re.fullmatch(rf"compare: latency {runtime} b1: yolov8n [\d.]+ ms, yolov8n-convmixer [\d.]+ ms", ln)
            for ln in lines
        )
    assert [ln for ln in lines if ln in expected] == expected  # each once, in the order they run
    assert all(len(ln) <= 100 for ln in lines if ln.startswith(("compare: [", "compare: latency")))  # short


def test_the_notes_say_how_many_warm_up_runs_each_batch_size_had():
    from types import SimpleNamespace

    from ultralytics_convmixer.compare.report import notes

    row = {"name": "a", "params": 1, "latency_runs": 20, "warmup_runs": {1: 3, 32: 1}, "pt_b1_ms": 1.0}
    text = notes([row], "detect", SimpleNamespace(arg="d.yaml"), {}, trained=False)
    assert "median of 20 runs after 3 warm-up runs (1 at batch 32), the models taking turns" in text


def test_data_tasks_are_told_from_labels(tmp_path_factory):
    from ultralytics_convmixer.compare import resolve_data

    expected = {"coco8": ("detect", 80), "coco8-seg": ("segment", 80), "coco8-pose": ("pose", 1), "dota8": ("obb", 15)}
    for name, (task, nc) in expected.items():
        spec = resolve_data(str(real_dataset(tmp_path_factory, name)))
        assert (spec.task, spec.nc) == (task, nc), name
    assert resolve_data("shapes-pose.yaml").task == "pose"  # packaged, by bare name, before it is generated


def test_semantic_and_depth_data_are_told_apart_and_other_tasks_refused_before_anything_runs(tmp_path, capsys):
    from ultralytics_convmixer.compare import prepare, resolve_data

    for folder, name in (("images", "a.jpg"), ("depth", "a.png")):  # a depth map where Ultralytics pairs it
        (tmp_path / folder / "val").mkdir(parents=True)
        (tmp_path / folder / "val" / name).write_bytes(b"")
    (tmp_path / "d.yaml").write_text(f"path: {tmp_path}\ntrain: images/val\nval: images/val\nnames: [x]\n")
    tasks = {str(tmp_path / "d.yaml"): "depth", "cityscapes8.yaml": "semantic", "depth8.yaml": "depth"}  # stock too
    assert {arg: resolve_data(arg).task for arg in tasks} == tasks
    data = prepare(["yolo26n-sem.yaml"], "shapes-segment.yaml", {})[2]  # as Ultralytics' PolygonSemanticDataset does
    assert (data.task, data.nc, data.names[13]) == ("segment", 14, "background")
    assert "semantic models train on masks drawn from its polygons, plus a background class" in capsys.readouterr().out
    later = (tmp_path / "later.yaml").resolve()  # fetched on first use: no files to tell its task, but three classes
    later.write_text(f"path: {tmp_path / 'x'}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\ndownload: x\n")
    for model, data, message in [
        ("yolo26n-sem.yaml", "shapes-detect.yaml", "is a detect dataset but the models are semantic models"),
        ("yolo26n-depth.yaml", "shapes-segment.yaml", "is a segment dataset but the models are depth models"),
        ("yolo26n-depth.yaml", "shapes-semantic.yaml", "is a semantic dataset (it has 'masks_dir') but the models are"),
        ("yolo26n.yaml", "shapes-depth.yaml", "is a depth dataset but the models are detect models"),
        ("yolo26n-depth.yaml", str(later), "has 3 classes, not depth's one, but the models are depth models"),
    ]:
        code, err = _error(capsys, ["compare", model, "--data", data])
        assert code == 2 and f"data '{data}' {message}" in err and len(err.splitlines()) == 1


def test_an_edited_model_yaml_is_trained_again_on_resume(tmp_path, capsys):
    from types import SimpleNamespace

    from ultralytics_convmixer.compare import ModelSpec
    from ultralytics_convmixer.compare.runs import load_done, run_config, state_path
    from ultralytics_convmixer.resources import model_yaml

    yaml_file = tmp_path / "yolov8n-mine.yaml"
    yaml_file.write_text(model_yaml("yolov8-convmixer.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    spec, data = ModelSpec(str(yaml_file), str(yaml_file), "yolov8n-mine", "detect"), SimpleNamespace(arg="d.yaml")
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    state = {"status": "done", "config": run_config(spec, data, {"epochs": 1}), "train": {"weights": str(weights)}}
    state_path(tmp_path, spec.name).parent.mkdir()
    state_path(tmp_path, spec.name).write_text(json.dumps(state), encoding="utf-8")
    assert load_done(tmp_path, spec, run_config(spec, data, {"epochs": 1})) == state["train"]

    text = yaml_file.read_text(encoding="utf-8")
    edited = text.replace("[14, 9, 6], 3, hierarchical", "[14, 9, 3], 3, hierarchical")  # fewer P5 blocks
    assert edited != text, "the packaged YAML's backbone row changed: edit another argument here"
    yaml_file.write_text(edited, encoding="utf-8")
    assert load_done(tmp_path, spec, run_config(spec, data, {"epochs": 1})) is None
    assert "yolov8n-mine: settings changed since the last run; training again" in capsys.readouterr().out


def test_a_tuple_argument_such_as_two_gpus_still_finds_the_finished_training(tmp_path):
    from types import SimpleNamespace

    from ultralytics_convmixer.compare import ModelSpec
    from ultralytics_convmixer.compare.runs import load_done, run_config, state_path

    spec, data = ModelSpec("yolov8n.yaml", "yolov8n.yaml", "yolov8n", "detect"), SimpleNamespace(arg="d.yaml")
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    args = {"device": (0, 1), "imgsz": (320, 256)}  # what smart_value makes of device=0,1 and imgsz=320,256
    state = {"status": "done", "config": run_config(spec, data, args), "train": {"weights": str(weights)}}
    state_path(tmp_path, spec.name).parent.mkdir()
    state_path(tmp_path, spec.name).write_text(json.dumps(state), encoding="utf-8")
    assert load_done(tmp_path, spec, run_config(spec, data, args)) == state["train"]


def test_a_run_that_cannot_be_reused_is_set_aside_not_deleted(tmp_path):
    from ultralytics_convmixer.compare.runs import _set_aside

    run = tmp_path / "runs" / "yolov8n"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"a finished training")
    first = _set_aside(run)
    (run / "weights").mkdir(parents=True)
    second = _set_aside(run)  # the same second again: a new name, nothing overwritten
    assert not run.exists() and first != second
    assert first.name.startswith("yolov8n.previous-") and (first / "weights" / "best.pt").read_bytes()


def test_a_training_killed_by_a_signal_says_which(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ultralytics_convmixer.compare import ModelSpec, TrainingError, runs

    monkeypatch.setattr(runs, "_run_child", lambda cmd: (-signal.SIGKILL, None))
    spec, data = ModelSpec("m.yaml", "m.yaml", "m", "detect"), SimpleNamespace(arg="d.yaml")
    with pytest.raises(TrainingError, match="killed by SIGKILL .*out-of-memory.*run the same command again"):
        runs.train(spec, data, {}, tmp_path, {"version": 2})


def test_detect_images_without_labels_are_not_taken_for_a_classify_set(tmp_path):
    from ultralytics_convmixer.compare import resolve_data

    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "images" / split / "background.jpg").write_bytes(b"")  # background images: no label files
    (tmp_path / "data.yaml").write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: [a]\n")
    assert resolve_data(str(tmp_path / "data.yaml")).task is None  # not told; training decides, not "classify"


def test_a_model_file_whose_path_holds_an_equals_sign_is_a_model(tmp_path, capsys):
    folder = tmp_path / "lr=0.01" / "weights"
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"not a checkpoint")
    code, err = _error(capsys, ["compare", str(folder / "best.pt"), "--no-train"])
    assert code == 2 and "cannot be read" in err and "unknown training argument" not in err


@pytest.mark.parametrize(
    "option, value, message",
    [("--n-train", "-1", "--n-train must be >= 0, got -1"), ("--imgsz", "16", "--imgsz must be >= 32, got 16"),
     ("--workers", "0", "--workers must be >= 1, got 0")],
)  # fmt: skip
def test_bad_datasets_options_name_the_option(tmp_path, capsys, option, value, message):
    code, err = _error(capsys, ["datasets", "detect", "--root", str(tmp_path), option, value])
    assert code == 2 and message in err and "Traceback" not in err


def test_datasets_over_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "shapes-detect").write_text("in the way")
    code, err = _error(capsys, ["datasets", "detect", "--root", str(tmp_path), "--n-train", "1", "--n-val", "1"])
    assert code == 2 and "shapes-detect' is a file" in err and (tmp_path / "shapes-detect").read_text() == "in the way"
    (tmp_path / "a-file").write_text("not a folder")  # a --root that cannot hold folders: an OSError, no traceback
    code, err = _error(capsys, ["datasets", "detect", "--root", str(tmp_path / "a-file"), "--n-train", "1"])
    assert code == 2 and len(err.splitlines()) == 1 and "cannot write shapes-detect" in err and "a-file" in err


def test_epoch_time_from_results_csv_counts_only_the_last_session(tmp_path):
    from ultralytics_convmixer.compare.runs import _csv_epoch_time

    csv_file = tmp_path / "results.csv"
    csv_file.write_text("epoch,time\n1,10\n2,22\n3,34\n")
    assert _csv_epoch_time(csv_file) == pytest.approx(34 / 3)
    # Killed after logging epoch 2 but before saving it; resumed from epoch 1 with the clock at 0 again.
    csv_file.write_text("epoch,time\n1,10\n2,22\n2,11\n3,24\n")
    assert _csv_epoch_time(csv_file, resumed_from_epoch=1) == pytest.approx(24 / 2)
    assert _csv_epoch_time(tmp_path / "missing.csv") is None


def test_a_bare_folder_name_under_the_datasets_dir_is_a_classify_dataset(tmp_path, monkeypatch):
    from ultralytics_convmixer.compare import CompareError, resolve_data

    monkeypatch.setattr("ultralytics.utils.DATASETS_DIR", tmp_path)
    monkeypatch.chdir(tmp_path / "..")  # not found in the working directory
    for cls in ("a", "b"):
        (tmp_path / "my-classes" / "train" / cls).mkdir(parents=True)
    spec = resolve_data("my-classes")  # as data=my-classes finds <datasets_dir>/my-classes
    assert (spec.task, spec.nc, spec.path) == ("classify", 2, tmp_path / "my-classes")
    with pytest.raises(CompareError, match="neither a data YAML nor a dataset folder"):
        resolve_data("no-such-folder")


def test_latencies_are_timed_with_the_models_taking_turns():
    from ultralytics_convmixer.timing import interleaved_medians

    calls = []
    step = lambda name: (lambda: calls.append(name), lambda: None)  # noqa: E731
    steps = [{"pt": step("a:pt"), "onnx": step("a:onnx")}, {"pt": step("b:pt")}]  # b's ONNX export failed
    result = interleaved_medians(steps, runs=3, warmup=1)
    assert calls == ["a:pt", "b:pt", *["a:pt", "b:pt"] * 3, "a:onnx", *["a:onnx"] * 3]  # warm-up, then turns
    assert set(result[0]) == {"pt", "onnx"} and set(result[1]) == {"pt"}
    assert all(v >= 0 for r in result for v in r.values())


def test_overrides_are_converted_like_the_yolo_cli():
    from ultralytics_convmixer.compare import parse_overrides, training_args

    args = parse_overrides(["epochs=3", "lr0=0.02", "cache=False", "device=cpu", "fraction=0.25", "time=None"])
    assert args == {"epochs": 3, "lr0": 0.02, "cache": False, "device": "cpu", "fraction": 0.25, "time": None}
    assert training_args({"seed": 7, "data": "x.yaml"}) == {"seed": 7, "deterministic": True}


@pytest.mark.parametrize("task, columns", [("semantic", "mIoU | pixel_acc"), ("depth", "delta1 | abs_rel | rmse")])
def test_semantic_and_depth_tables_show_their_own_accuracy_columns(task, columns):
    from ultralytics_convmixer.compare.report import markdown_table

    assert f"| GFLOPs | {columns} | s/epoch |" in markdown_table([{"name": "a", "params": 1e6, "gflops": 1.0}], task)


def test_markdown_ratios_against_the_baseline():
    from ultralytics_convmixer.compare.report import markdown_table

    base = {"name": "a", "params": 2e6, "gflops": 4.0, "metrics": {"mAP50-95(B)": 0.5}, "pt_b1_ms": 10.0}
    other = {"name": "b", "params": 3e6, "gflops": 2.0, "metrics": {"mAP50-95(B)": 0.25}, "pt_b1_ms": 15.0}
    lines = markdown_table([base, other], "detect").splitlines()
    assert lines[2].startswith("| a | 2.00 | 4.00 |") and "×" not in lines[2]
    assert "| b | 3.00 (1.50×) | 2.00 (0.50×) |" in lines[3] and "| 0.250 |" in lines[3] and "15.0 (1.50×)" in lines[3]


# ----------------------------------------------------------------------------------------------------------------------
# The console script and the datasets subcommand
# ----------------------------------------------------------------------------------------------------------------------
def test_console_script_help():
    script = shutil.which("ultralytics-convmixer")
    if script:  # the installed console script
        r = subprocess.run([script, "--help"], capture_output=True)
        assert r.returncode == 0 and b"compare" in r.stdout and b"datasets" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ultralytics_convmixer.cli", "compare", "--help"], capture_output=True)
    assert r.returncode == 0 and b"--no-train" in r.stdout and b"--latency-runs" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ultralytics_convmixer.cli", "compare", "nope.yaml"], capture_output=True)
    assert r.returncode == 2 and b"unknown model 'nope.yaml'" in r.stderr and b"Traceback" not in r.stderr


def test_cli_import_is_cheap(tmp_path):
    code = "import sys, ultralytics_convmixer.cli; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]
    # Nor does building the parser (--help, every argparse error) or reporting a user error found before the work.
    missing = str(tmp_path / "missing" / "m.yaml")
    code = (
        "import sys; from ultralytics_convmixer import cli; cli._parser(); assert 'torch' not in sys.modules\n"
        f"code = cli.main(['import-timm', 'm.pth', '--out', 'm.pt', '--yaml', {missing!r}])\n"
        "assert code == 2 and 'torch' not in sys.modules, code"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"--yaml {missing}: folder {tmp_path / 'missing'} does not exist" in r.stderr


def test_datasets_subcommand(tmp_path, capsys):
    argv = ["datasets", "detect", "classify", "semantic", "depth", "--root", str(tmp_path), "--n-train", "3"]
    assert main([*argv, "--n-val", "2", "--imgsz", "64", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"shapes-detect: {tmp_path / 'shapes-detect'}" in out and f"shapes-depth: {tmp_path / 'shapes-depth'}" in out
    assert len(list((tmp_path / "shapes-detect" / "images" / "train").iterdir())) == 3
    assert len(list((tmp_path / "shapes-detect" / "labels" / "val").iterdir())) == 2
    assert sum(1 for _ in (tmp_path / "shapes-classify" / "val").rglob("*.jpg")) == 2
    assert [len(list(tmp_path.glob(f"shapes-{t}/*/val/*.png"))) for t in ("semantic", "depth")] == [2, 2]  # masks, maps

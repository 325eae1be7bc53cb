"""The ``ultralytics-convmixer compare`` command: its input errors, profiling, data checks, state and reports."""

import contextlib
import csv
import io
import json
import os
import re
import signal

import pytest

from ultralytics_convmixer.cli import main

from conftest import csv_rows, real_dataset


def _error(capsys, argv):
    """Run main(argv); return its exit code and its stderr (one line expected)."""
    code = main(argv)
    return code, capsys.readouterr().err.strip()


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
    from ultralytics_convmixer.integration.resources import model_yaml

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
    for row in csv_rows(out, "profile"):
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
    assert "self-check" not in text  # no Triton case checked (CPU)


def test_the_notes_report_the_triton_self_check_of_the_trainings():
    from types import SimpleNamespace

    from ultralytics_convmixer.compare.report import notes

    ok = dict(dtype="float16", layout="channels_last", shape=[32, 256, 20, 20], k=9, failed=None)
    bad = {**ok, "shape": [16, 128, 40, 40], "failed": "grad_w: relative error 3.10e-02 > 1e-02"}
    rows = [{"name": "a", "dwconv_checks": []}, {"name": "b", "latency_runs": 1, "dwconv_checks": [ok, bad]}]
    text = notes(rows, "detect", SimpleNamespace(arg="d.yaml"), {}, trained=True)
    assert "Triton depthwise self-check during training: 2 cases, 1 failed: b: float16 channels_last " in text
    assert "[16, 128, 40, 40] k9 (grad_w: relative error 3.10e-02 > 1e-02)" in text


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
    from ultralytics_convmixer.integration.resources import model_yaml

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
    from ultralytics_convmixer.compare.timing import interleaved_medians

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

"""Benchmark scripts run on CPU at small settings and report ratios against stock YOLOv8 measured in the same run."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ultralytics_convmixer.nn import dwconv

from conftest import real_dataset, run, run_python

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_model_benchmark_reports_every_quantity_with_a_ratio_to_stock(tmp_path):
    out, cwd = tmp_path / "models.json", tmp_path / "cwd"
    cwd.mkdir()
    variant = BENCHMARKS / "ablations" / "yolov8-convmixer-p4heavy.yaml"
    args = ["--device", "cpu", "--imgsz", "64", "--batch", "2", "--scales", "n", "--runs", "1", "--warmup", "0",
            "--repeats", "3", "--variants", str(variant)]  # fmt: skip
    run([sys.executable, BENCHMARKS / "models.py", *args, "--onnx", "--out", out], cwd=cwd, check=True)
    assert not list(cwd.iterdir()), "the ONNX exports belong in a temporary folder, not the working directory"
    result = json.loads(out.read_text())
    stock, ours, other = result["rows"]
    assert (stock["model"], ours["model"]) == ("yolov8n.yaml", "yolov8n-convmixer.yaml")
    assert other["model"] == str(variant.with_name("yolov8n-convmixer-p4heavy.yaml"))  # the variant at scale n
    for row in (ours, other):
        for key in ("train_step_ms", "infer_b1_ms", "infer_b2_ms", "onnx_cpu_b1_ms"):
            assert stock[key] > 0 and row[key] > 0
            assert abs(row[f"{key}_ratio"] - row[key] / stock[key]) < 1e-9
        # ONNX latency is compared in 3 repeats with fresh sessions; each repeat's ratio is kept, the median reported
        repeat_ratios = row["onnx_cpu_b1_repeat_ratios"]
        assert len(repeat_ratios) == 3 and all(r > 0 for r in repeat_ratios)
    assert "onnx_cpu_b1_repeat_ratios" not in stock and result["meta"]["repeats"] == 3
    assert result["meta"]["device"] == "cpu" and result["meta"]["imgsz"] == 64


def test_model_benchmark_variants_must_be_named_so_a_scale_letter_picks_the_scale():
    models = _load_script("models")
    assert models.scaled_name("a/b/yolov8-convmixer-p4heavy.yaml", "m") == "a/b/yolov8m-convmixer-p4heavy.yaml"
    with pytest.raises(ValueError, match=r"--variants: mine\.yaml must be named yolov8-NAME\.yaml"):
        models.scaled_name("mine.yaml", "n")


def test_model_benchmark_keeps_the_scales_it_finished_when_a_later_scale_is_stopped(tmp_path, monkeypatch):
    # The GPU session has a hard time limit: a run killed during scale x must still leave n..l in the JSON.
    models, out = _load_script("models"), tmp_path / "models.json"

    def measure(name, args, device):
        if name.startswith("yolov8s"):
            raise KeyboardInterrupt("time limit")  # stands in for the kill
        return {"model": name, "infer_b1_ms": 2.0 if "convmixer" in name else 4.0}

    monkeypatch.setattr(models, "measure", measure)
    monkeypatch.setattr(sys, "argv", ["models.py", "--scales", "ns", "--skip-train", "--out", str(out)])
    with pytest.raises(KeyboardInterrupt):
        models.main()
    result = json.loads(out.read_text())
    assert [r["model"] for r in result["rows"]] == ["yolov8n.yaml", "yolov8n-convmixer.yaml"]
    assert result["rows"][1]["infer_b1_ms_ratio"] == 0.5 and result["meta"]["device"] == "cpu"


def test_budget_script_measures_every_family_and_task_against_stock(tmp_path):
    from ultralytics_convmixer.integration.resources import FAMILY_TASKS, TASK_SUFFIXES

    out = tmp_path / "budget.json"
    cmd = [sys.executable, str(BENCHMARKS / "budget.py"), "--scales", "n", "--json", str(out)]
    printed = run(cmd, timeout=900, check=True).stdout
    rows = json.loads(out.read_text())
    expected = [f"{family}n-convmixer{TASK_SUFFIXES[t]}" for family, tasks in FAMILY_TASKS.items() for t in tasks]
    assert [r["model"] for r in rows] == expected
    assert all(0.9 <= r["gflops_ratio"] <= 1.1 and r["params_ratio"] <= 1.0 for r in rows)
    assert "YOLO26\n\n| model |" in printed and "| yolo26n-convmixer-depth | depth |" in printed  # a table per family


def test_init_gradients_show_the_plain_deep_stack_starving_all_but_its_stem():
    deep = BENCHMARKS / "yolov8n-convmixer-deep.yaml"
    cmd = [sys.executable, str(BENCHMARKS / "init_gradients.py"), "yolov8n.yaml", str(deep), "--imgsz", "64",
           "--init", "pytorch"]  # fmt: skip
    printed = run(cmd, check=True).stdout
    lines = [line for line in printed.splitlines() if line.startswith("| ") and "model" not in line]
    rows = [line.strip("|").split("|") for line in lines]
    ratio = {(r[0].strip().split("/")[-1], r[1].strip()): float(r[5]) for r in rows}
    assert set(ratio) == {("yolov8n.yaml", "-"), (deep.name, "true"), (deep.name, "false")}
    # At PyTorch's default init, 30 blocks without the pointwise shortcut give the stem >10x the relative gradient they
    # give with it.
    assert ratio[(deep.name, "false")] > 10 * ratio[(deep.name, "true")]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kernel_benchmark_runs_on_cpu_and_keeps_the_rows_it_finished_when_stopped(tmp_path):
    bench = _load_script("kernels")
    out = tmp_path / "kernels.json"
    argv = ["--device", "cpu", "--ks", "3", "9", "--shapes", "1,4,8,8", "--reps", "1", "--layout", "both"]
    assert bench.main([*argv, "--bandwidth", "10", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 4 and all("not CUDA" in row["fast_path_reason"] for row in result["rows"])

    # The GPU session has a hard time limit: a run killed after some rows still leaves them in the JSON, and the rows
    # that come first are the comparison that matters most, 9x9 against cuDNN's 7x7.
    calls, bench_row = [], bench.bench_row

    def stopped_after_two_rows(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt("time limit")  # stands in for the kill
        calls.append(args)
        return bench_row(*args)

    bench.bench_row = stopped_after_two_rows
    out.unlink()
    with pytest.raises(KeyboardInterrupt):
        bench.main([*argv, "--ks", "3", "7", "9", "--bandwidth", "10", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(row["k"], row["layout"]) for row in rows] == [(7, "channels_last"), (9, "channels_last")]
    assert rows[1]["ours_over_cudnn_k7"] == rows[1]["ours_fwdbwd_ms"] / rows[0]["cudnn_fwdbwd_ms"]


def test_kernel_benchmark_reports_a_triton_failure_in_its_row_and_later_rows_still_try_triton(tmp_path, monkeypatch):
    bench, state = _load_script("kernels"), {}
    monkeypatch.setattr(dwconv, "_triton_state", state)
    bench_row = bench.bench_row

    def failing_at_k7(shape, k, *args):
        if k == 7:  # as _give_up_triton records a kernel that does not compile for the GPU
            state["failure"] = "RuntimeError: no kernel image is available"
        return bench_row(shape, k, *args)

    bench.bench_row = failing_at_k7
    out = tmp_path / "kernels.json"
    argv = ["--device", "cpu", "--ks", "7", "9", "--shapes", "1,4,8,8", "--reps", "1", "--bandwidth", "10"]
    assert bench.main([*argv, "--out", str(out)]) == 1  # a failure fails the run
    result = json.loads(out.read_text())
    assert [row["triton_failure"] for row in result["rows"]] == ["RuntimeError: no kernel image is available", None]
    assert result["triton_failure"] == "RuntimeError: no kernel image is available" and "failure" not in state
    # --check runs after the 7x7 and 9x9 rows, so a time limit that stops it still leaves 9x9 against 7x7
    order = []
    bench.bench_row = lambda *args: order.append("row") or bench_row(*args)
    bench.check_all = lambda *args: order.append("check") or {"path": "-", "max_rel_err": {}, "failures": []}
    assert bench.main([*argv, "--ks", "3", "7", "9", "--check"]) == 0
    assert order == ["row", "row", "check", "row"]


def test_errors_by_size_separates_finding_classifying_and_localizing():
    ebs = _load_script("errors_by_size")
    gt = np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.03, 0.03]])
    # Object 0: an exact box of the right class, and a less confident one of another class on it.
    # Object 1: IoU 0.75 but the wrong class, though a barely overlapping box (IoU < 0.5) has the right one.
    pred = np.array([[0.1, 0.1, 0.2, 0.2], [0.1, 0.1, 0.2, 0.19], [0.5, 0.5, 0.9, 0.8], [0.5, 0.5, 0.6, 0.6]])
    cls, conf = np.array([1, 5, 0, 2]), np.array([0.9, 0.5, 0.8, 0.9])
    stats = ebs.image_stats(gt, np.array([1, 2, 3]), pred, cls, conf)
    assert [(s["found"], s["class_ok"]) for s in stats] == [(True, True), (True, False), (False, False)]
    assert [round(s["iou"], 6) for s in stats] == [1.0, 0.75, 0.0]
    (swapped,) = ebs.image_stats(gt[:1], np.array([1]), pred[:2], cls[:2], np.array([0.5, 0.9]))
    assert swapped["found"] and not swapped["class_ok"]  # the most confident overlapping box names the class
    rows = {r["size"]: r for r in ebs.summarize(stats)}
    assert {k: r["objects"] for k, r in rows.items()} == {"0-0.05": 1, "0.05-0.1": 0, "0.1-0.2": 1, "0.2-1": 1}
    assert rows["0-0.05"]["found"] == 0 and rows["0.1-0.2"]["class_ok"] == 1 and rows["0.2-1"]["class_ok"] == 0
    assert ebs.image_stats(gt, np.array([1, 2, 3]), np.zeros((0, 4)), np.zeros(0), np.zeros(0))[0]["iou"] == 0.0


def test_errors_by_size_counts_every_labelled_object(tmp_path_factory, tmp_path):
    from ultralytics import YOLO

    data = real_dataset(tmp_path_factory, "coco8")
    weights = tmp_path / "untrained.pt"
    YOLO("yolov8n-convmixer.yaml").save(weights)
    out = tmp_path / "errors.json"
    cmd = [sys.executable, str(BENCHMARKS / "errors_by_size.py"), str(weights), "--data", str(data), "--imgsz", "64"]
    printed = run([*cmd, "--json", out], check=True).stdout
    rows = json.loads(out.read_text())["rows"]
    label_files = (data.parent / "labels" / "val").glob("*.txt")
    labels = sum(len([line for line in f.read_text().splitlines() if line.strip()]) for f in label_files)
    assert sum(r["objects"] for r in rows) == labels and len(rows) == 4
    assert f"| {weights} | 0.2-1 |" in printed


def test_ablation_script_builds_its_variants_as_described():
    # In a subprocess: the script patches the plugin's classes for its process, which must not leak into other tests.
    check = """
import sys, torch
sys.path.insert(0, {benchmarks!r})
import ablate
def with_statistics(module):  # BatchNorms far from identity, or a wrong order would not change the output
    torch.manual_seed(0)
    with torch.no_grad():
        for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 1.5), bn.weight.normal_(), bn.bias.normal_()
    return module.eval()
ablate.register_ablation_modules()
ablate.apply_variant(0.02, "conv-bn-act")
from ultralytics.nn.tasks import DetectionModel
from ultralytics_convmixer.nn.modules import ConvMixerBlock
model = DetectionModel({yaml!r}, verbose=False).eval()
stages = [m for m in model.model if isinstance(m, ablate.ConvMixerC2f)]
print("blocks", [len(s.m) for s in stages], "widths", [s.c2 for s in stages])
block = with_statistics(stages[1].m[0])
print("std", round(float(block.pw.conv.weight.std()), 3), round(float(block.dw.conv.weight.std()), 3))
x = torch.randn(1, block.c2, 8, 8)
h = x + block.dw.act(block.dw.bn(block.dw.conv(x)))
print("order", torch.allclose(block(x), h + block.pw.act(block.pw.bn(block.pw.conv(h)))))
add = with_statistics(ConvMixerBlock(8, k=3, act="relu"))
add.dw.order = add.pw.order = "conv-bn-add-act"  # apply_variant's order above wins at construction
y = torch.randn(1, 8, 8, 8)
print("add-act", torch.allclose(ablate._block_forward(add, y), add(y)))
ablate.DROP_PATH = 0.25
kept = ablate._drop_path(torch.ones(4000, 1, 1, 1), training=True)
print("drop", sorted(set(round(v, 4) for v in kept.flatten().tolist())), float((kept == 0).float().mean()))
print("eval", torch.equal(ablate._drop_path(x, training=False), x))
"""
    yaml = str(BENCHMARKS / "ablations" / "yolov8n-c2f-stock-depths.yaml")
    code = check.format(benchmarks=str(BENCHMARKS), yaml=yaml)
    printed = run_python(code, check=True)
    lines = dict(line.split(" ", 1) for line in printed.stdout.splitlines())
    assert lines["blocks"] == "[1, 2, 2, 1] widths [32, 64, 128, 256]"  # stock yolov8n's C2f depths and widths
    pw_std, dw_std = map(float, lines["std"].split())
    assert abs(pw_std - 0.02) < 0.004 and abs(dw_std - 0.02) < 0.004  # trunc-normal 0.02 instead of 1/sqrt(fan_in)
    assert lines["order"] == "True" and lines["add-act"] == "True"  # the drop-path forward keeps each block's order
    # drop path zeroes whole samples of a branch with probability R while training and rescales the rest by 1/(1-R)
    values, dropped = lines["drop"].rsplit(" ", 1)
    assert values == "[0.0, 1.3333]" and abs(float(dropped) - 0.25) < 0.03 and lines["eval"] == "True"


def test_train_val_gap_validates_on_the_images_a_fraction_run_trained_on(tmp_path_factory, tmp_path):
    from ultralytics import YOLO

    gap = _load_script("train_val_gap")
    data = real_dataset(tmp_path_factory, "coco8")
    train_dir = data.parent / "images" / "train"
    picked = gap.training_images({"train": str(train_dir)}, 0.5)
    assert picked == sorted(str(p) for p in train_dir.iterdir())[:2]  # Ultralytics keeps the first round(4 * 0.5)
    weights = tmp_path / "untrained.pt"
    YOLO("yolov8n-convmixer.yaml").save(weights)
    out = tmp_path / "gap.json"
    cmd = [sys.executable, str(BENCHMARKS / "train_val_gap.py"), str(weights), "--data", str(data), "--fraction", "0.5"]
    printed = run([*cmd, "--imgsz", "64", "--json", out], check=True).stdout
    result = json.loads(out.read_text())
    assert result["training_images"] == 2 and len(result["rows"]) == 1
    row = result["rows"][0]
    assert {"train_map50_95", "val_map50_95", "val_over_train"} <= set(row)
    # the validation column is what Ultralytics' own val gives these weights on the val split
    val = YOLO(str(weights)).val(data=str(data), imgsz=64, device="cpu", plots=False, verbose=False)
    assert row["val_map50_95"] == pytest.approx(val.box.map, abs=1e-6)
    assert f"| {weights} |" in printed and "training images: 2 (fraction 0.5" in printed


def test_onnx_profile_splits_kernel_time_by_part_operator_and_conv_kind_for_both_models(tmp_path):
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    out = tmp_path / "profile.json"
    relu = str(BENCHMARKS / "ablations" / "yolov8n-convmixer-relu.yaml")  # ONNX Runtime fuses its ReLUs into convs
    unscaled = relu.replace("yolov8n-", "yolov8-")  # as models.py --variants takes it: --scale inserts the letter
    cmd = [sys.executable, str(BENCHMARKS / "onnx_profile.py"), "--scale", "n", "--imgsz", "64", "--runs", "1",
           "--warmup", "1", "--json", str(out), "--models", unscaled]  # fmt: skip
    printed = run(cmd, cwd=tmp_path, check=True).stdout
    stock, ours, fused = json.loads(out.read_text())
    assert (stock["model"], ours["model"], fused["model"]) == ("yolov8n.yaml", "yolov8n-convmixer.yaml", relu)
    for row in (stock, ours, fused):
        assert row["wall_ms"] > 0 and row["parts"]["backbone"] > 0 and row["parts"]["neck+head"] > 0
        assert abs(sum(row["parts"].values()) - row["total"]) < 1e-6
        assert abs(sum(row["ops"].values()) - row["total"]) < 1e-6
        assert row["ops"]["Conv"] > 0
    assert "| kernels: backbone |" in printed and "| op: Conv |" in printed
    # every convolution, also one fused with its activation, is classified by kind, and the kinds' FLOPs add up to
    # the model's (Ultralytics' counter)
    assert "Relu" not in fused["ops"] and fused["ops"].get("QuickGelu", 0) < ours["ops"]["QuickGelu"]
    for row, name in ((stock, "yolov8n.yaml"), (ours, "yolov8n-convmixer.yaml"), (fused, relu)):
        assert abs(sum(c["ms"] for c in row["convs"].values()) - row["ops"]["Conv"]) < 1e-6
        gflops = get_flops(YOLO(name).model, 64)
        assert abs(sum(c["gflops"] for c in row["convs"].values()) - gflops) < 0.05 * gflops
    assert {"dense 3x3", "pointwise 1x1"} <= set(stock["convs"]) and "depthwise 3x3" not in stock["convs"]
    assert {"depthwise 3x3", "pointwise 1x1", "patch 4x4", "patch 2x2"} <= set(ours["convs"]) == set(fused["convs"])
    assert "| depthwise 3x3 |" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"], "exports and profiles belong in a temporary folder"


def test_onnx_profile_leaves_warm_up_runs_out_and_counts_conv_flops_once_per_run():
    profile_script = _load_script("onnx_profile")

    def run(ts):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 50}

    def node(ts, name, op, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    warm_up = [run(0), node(1, "/model.0/dw/Conv_output_0_nchwc", "Conv", 9000), node(2, "/model.5/Add", "Add", 900)]
    timed = [
        run(100),
        node(101, "/model.0/dw/Conv_output_0_nchwc", "Conv", 2000),
        node(102, "/model.5/Add", "Add", 300),
    ]
    timed += [
        run(200),
        node(201, "/model.0/dw/Conv_output_0_nchwc", "Conv", 4000),
        node(202, "/model.5/Add", "Add", 100),
    ]
    convs = {"/model.0/dw/Conv_output_0": ("depthwise 3x3", 0.5)}
    row = profile_script.kernel_times(warm_up + timed, backbone_rows=4, runs=2, convs=convs)
    assert row["ops"] == {"Conv": 3.0, "Add": 0.2} and row["parts"] == {"backbone": 3.0, "neck+head": 0.2}
    assert row["convs"] == {"depthwise 3x3": {"ms": 3.0, "gflops": 0.5, "gflop_per_s": 0.5 / 3.0 * 1000}}


def test_shapes_pretraining_writes_a_timm_checkpoint_that_imports_and_a_log_per_epoch(tmp_path):
    pytest.importorskip("timm", reason="timm is not installed: pip install 'ultralytics-convmixer[timm]'")
    from ultralytics_convmixer.pretrained.timm_import import import_timm

    out = tmp_path / "pretrain"
    cmd = [sys.executable, str(BENCHMARKS / "pretrain_shapes.py"), "--out", str(out), "--n-train", "26", "--n-val",
           "13", "--imgsz", "56", "--dim", "16", "--depth", "2", "--epochs", "2", "--batch", "8"]  # fmt: skip
    run(cmd, check=True)
    log = json.loads((out / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    for epoch in log["epochs"]:  # top-1 over the 13 validation images, one per class: a whole number of them
        assert epoch["val_top1"] * 13 == pytest.approx(round(epoch["val_top1"] * 13)) and epoch["loss"] > 0
    assert len(log["classes"]) == 13 and log["args"]["imgsz"] == 56
    result = import_timm(out / "convmixer.pth", scale="n")
    config = result.config
    assert (config.dim, config.depth, config.kernel, config.patch, config.stride) == (16, 2, 9, 7, 8)
    assert set(result.left_out) == {"head.weight", "head.bias"}  # the 13-class classifier, and nothing else


def test_patch_resize_reports_both_methods_for_the_stem_and_the_trunk(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is not installed: pip install 'ultralytics-convmixer[timm]'")
    from ultralytics_convmixer.data.shapes import generate

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    checkpoint = tmp_path / "small.pth"
    torch.save(timm.models.convmixer.ConvMixer(dim=16, depth=2, kernel_size=9, patch_size=7).state_dict(), checkpoint)
    images = generate("detect", tmp_path / "shapes", n_train=0, n_val=3, imgsz=96) / "images" / "val"
    out = tmp_path / "resize.json"
    cmd = [sys.executable, str(BENCHMARKS / "patch_resize.py"), "--models", str(checkpoint), "--image-dir",
           str(images), "--images", "3", "--tokens", "8", "--json", str(out)]  # fmt: skip
    run(cmd, check=True)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["patch"], r["method"]) for r in rows] == [("7 -> 8", "pi"), ("7 -> 8", "bilinear")]
    for r in rows:  # resized, not equal, and not unrelated either
        assert 0 < r["stem_rel_l2"] < 1 and 0 < r["trunk_rel_l2"] < 1 and r["trunk_cosine"] > 0.5


def test_timm_budget_builds_each_task_beside_the_stock_scale_import_timm_picked(tmp_path):
    pytest.importorskip("timm", reason="timm is not installed: pip install 'ultralytics-convmixer[timm]'")
    out = tmp_path / "budget.json"
    cmd = [sys.executable, str(BENCHMARKS / "timm_budget.py"), "--models", "convmixer_1024_20_ks9_p14", "--tasks",
           "detect", "classify", "--json", str(out)]  # fmt: skip
    run(cmd, timeout=900, check=True)
    rows = json.loads(out.read_text())
    assert [r["task"] for r in rows] == ["detect", "classify"]
    for r in rows:
        assert r["nearest stock"].startswith("yolov8") and r["gflops"] > 0 and r["stock_gflops"] > 0
        assert r["gflops_ratio"] == pytest.approx(r["gflops"] / r["stock_gflops"])
        assert r["trunk"].startswith("ConvMixer-1024/20, kernel 9, patch 14 -> stride 16")

"""End to end on the real datasets: train every task, the `yolo` CLI, fresh processes, resume, DDP workers, export.

Everything runs on CPU at tiny image sizes; no test imports the plugin in the child processes, so they prove that the
start-up hook alone makes stock Ultralytics see it.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ultralytics import YOLO

from checks import assert_export_matches, assert_metrics_reproduce, assert_trained_backbone, with_running_statistics
from conftest import (
    ROOT,
    TRAIN_ONE_EPOCH,
    kill_and_resume,
    last_epoch_metrics,
    real_dataset,
    run,
    run_python,
    tiny_classify_data,
    yolo_cli,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """Train yolov8n-convmixer on coco8 with the stock `yolo` CLI in a fresh process; return the run folder."""
    data = real_dataset(tmp_path_factory, "coco8")
    project = tmp_path_factory.mktemp("runs")
    args = ["detect", "train", "model=yolov8n-convmixer.yaml", f"data={data}", f"project={project}", "name=cli",
            *(f"{k}={v}" for k, v in TRAIN_ONE_EPOCH.items())]  # fmt: skip
    yolo_cli(*args, check=True)
    return project / "cli", data


@pytest.mark.smoke
def test_yolo_cli_trains_and_saves_weights_and_metrics(cli_run):
    run_dir, _ = cli_run
    assert (run_dir / "weights" / "best.pt").stat().st_size > 1e6 and (run_dir / "weights" / "last.pt").is_file()
    row = last_epoch_metrics(run_dir)
    assert row["epoch"] == 1 and {"metrics/mAP50(B)", "metrics/mAP50-95(B)", "train/box_loss"} <= set(row)
    assert_trained_backbone(run_dir / "weights" / "best.pt")


def test_fresh_process_predicts_validates_and_fine_tunes_best_pt_without_import(cli_run, tmp_path):
    run_dir, data = cli_run
    result = run_python(
        f"""
        import sys
        from ultralytics import YOLO
        model = YOLO({str(run_dir / "weights" / "best.pt")!r})
        assert type(model.model.model[0]).__name__ == "ConvMixerBackbone"
        results = model.predict({str(data.parent / "images" / "val")!r}, imgsz=64, device="cpu", verbose=False)
        print("PREDICTED", len(results), results[0].boxes.data.shape[1])
        metrics = model.val(data={str(data)!r}, imgsz=64, batch=4, device="cpu", plots=False, verbose=False)
        print("MAP", metrics.box.map)
        model.train(data={str(data)!r}, epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
                    project={str(tmp_path)!r}, name="finetune")
        print("FINETUNED", type(model.model.model[0]).__name__)
        """,
        check=True,
    )
    assert "PREDICTED 4 6" in result.stdout
    # the same weights on the same images as the training's last validation (one epoch: best.pt is that epoch's)
    trained_map = last_epoch_metrics(run_dir)["metrics/mAP50-95(B)"]
    assert float(result.stdout.split("MAP ")[1].split()[0]) == pytest.approx(trained_map, abs=1e-3)
    assert "FINETUNED ConvMixerBackbone" in result.stdout
    assert (tmp_path / "finetune" / "weights" / "best.pt").is_file()


def test_safe_load_mode_loads_plugin_checkpoints(cli_run):
    run_dir, _ = cli_run
    code = f"""
        from ultralytics import YOLO
        model = YOLO({str(run_dir / "weights" / "last.pt")!r})
        print("LOADED", type(model.model.model[0]).__name__)
        """
    assert "LOADED ConvMixerBackbone" in run_python(code, env={"ULTRALYTICS_SAFE_LOAD": "1"}, check=True).stdout


def test_resume_continues_a_run_killed_mid_epoch(coco8, tmp_path):
    kill_and_resume("yolov8n-convmixer.yaml", coco8, tmp_path, epochs=3, resume_with_cli=False)


def test_ddp_worker_interpreter_builds_the_model_from_yaml(coco8):
    """Ultralytics starts DDP ranks as fresh interpreters from a generated script; run that script's model setup."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    trainer = DetectionTrainer(overrides=dict(model="yolov8n-convmixer.yaml", data=str(coco8), **TRAIN_ONE_EPOCH))
    script = Path(generate_ddp_file(trainer))
    try:
        code = script.read_text()
        assert "trainer.train()" in code and 'trainer.model = state["model"]' in code
        # Same script, minus the multi-GPU training loop: rebuild the trainer and its model in a fresh interpreter.
        script.write_text(
            code.replace(
                "trainer.train()", "trainer.setup_model(); print('RANK MODEL', type(trainer.model.model[0]).__name__)"
            )
        )  # noqa: E501
        result = run([sys.executable, script], check=True)
        assert "RANK MODEL ConvMixerBackbone" in result.stdout
    finally:
        script.unlink(missing_ok=True)
        script.with_suffix(".pt").unlink(missing_ok=True)


@pytest.mark.parametrize(
    "task, dataset, model, columns",
    [
        ("segment", "coco8-seg", "yolov8n-convmixer-seg.yaml", {"metrics/mAP50-95(M)", "train/seg_loss"}),
        ("pose", "coco8-pose", "yolov8n-convmixer-pose.yaml", {"metrics/mAP50-95(P)", "train/pose_loss"}),
        ("obb", "dota8", "yolov8n-convmixer-obb.yaml", {"metrics/mAP50-95(B)", "train/box_loss"}),
    ],
)
def test_each_task_trains_one_epoch_on_real_data(tmp_path_factory, tmp_path, task, dataset, model, columns):
    data = real_dataset(tmp_path_factory, dataset)
    imgsz = 128 if task == "obb" else 64  # dota8's 1024 px aerial crops need a little more resolution
    YOLO(model).train(data=str(data), project=str(tmp_path), name=task, **{**TRAIN_ONE_EPOCH, "imgsz": imgsz})
    row = last_epoch_metrics(tmp_path / task)
    assert columns <= set(row) and row["epoch"] == 1
    best = tmp_path / task / "weights" / "best.pt"
    assert_trained_backbone(best)
    metrics = {c for c in columns if c.startswith("metrics/")}
    assert_metrics_reproduce(best, data, tmp_path / task, metrics, imgsz=imgsz, batch=TRAIN_ONE_EPOCH["batch"])


def test_classify_trains_one_epoch_on_a_classify_data_yaml(tmp_path):
    yaml_file = tiny_classify_data(tmp_path)
    YOLO("yolov8n-convmixer-cls.yaml").train(data=str(yaml_file), project=str(tmp_path), name="cls", **TRAIN_ONE_EPOCH)
    best = tmp_path / "cls" / "weights" / "best.pt"
    assert YOLO(str(best)).names == dict(
        enumerate(sorted(p.name for p in (tmp_path / "shapes-classify" / "val").iterdir()))
    )
    assert_trained_backbone(best)
    columns = {"metrics/accuracy_top1", "metrics/accuracy_top5"}
    assert_metrics_reproduce(best, yaml_file, tmp_path / "cls", columns, imgsz=64, batch=TRAIN_ONE_EPOCH["batch"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_the_same_raw_outputs_as_pytorch(cli_run, tmp_path, fmt):
    run_dir, _ = cli_run
    weights = tmp_path / "best.pt"
    weights.write_bytes((run_dir / "weights" / "best.pt").read_bytes())
    model = YOLO(str(weights))
    exported = model.export(format=fmt, imgsz=64, device="cpu")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    reference = YOLO(str(weights)).model.float().fuse(verbose=False).eval()
    with torch.no_grad():
        expected = reference(x)[0].numpy()
    if fmt == "onnx":
        import onnx
        import onnxruntime as ort

        ops = {node.op_type for node in onnx.load(exported).graph.node}
        assert "Conv" in ops and not any(op.startswith("ConvMixer") for op in ops)  # standard ops only
        assert "BatchNormalization" not in ops  # every BN folded into its convolution by fuse()
        session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        got = torch.jit.load(exported)(x)
        got = (got[0] if isinstance(got, (list, tuple)) else got).numpy()
    # Tolerance: 1e-4 of the output range (box pixels and class scores share one tensor).
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("suffix", ["", "-seg", "-pose", "-obb", "-cls"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_every_task_exports_and_the_export_computes_what_pytorch_does(fmt, suffix):
    """Each packaged head exports; ONNX with dynamic=True runs at another batch and size than it was exported at."""
    torch.manual_seed(0)
    model = YOLO(f"yolov8n-convmixer{suffix}.yaml")
    with_running_statistics(model.model)
    exported = model.export(format=fmt, imgsz=64, dynamic=fmt == "onnx", device="cpu")
    reference = model.model.float().eval()  # unfused: the export's folded BatchNorms must compute what BN does
    # Exported at 64 x 64, batch 1; the dynamic ONNX graph must also take batch 2 at a non-square size.
    x = torch.rand((2, 3, 96, 128) if fmt == "onnx" else (1, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    if fmt == "onnx":
        import onnx

        ops = {node.op_type for node in onnx.load(exported).graph.node}
        assert "Conv" in ops and "BatchNormalization" not in ops and not any(op.startswith("ConvMixer") for op in ops)
    assert_export_matches(exported, reference, x)


def test_readme_main_job_generates_the_easy_set_trains_and_saves_a_prediction_image(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [x for x in readme.splitlines() if x.startswith("pip install -e . && yolo ")]
    command = line.split(" && ", 1)[1].split()
    assert command[:3] == ["yolo", "detect", "train"] and "data=shapes-easy.yaml" in command
    # The README's command at one epoch, in a fresh folder; the data YAML is found by name and generates its set.
    quick = [x for x in command[3:] if not x.startswith("epochs=")] + ["epochs=1", f"project={tmp_path}", "name=qs"]
    yolo_cli("detect", "train", *quick, timeout=900, cwd=tmp_path, check=True)
    run_dir = tmp_path / "qs"
    assert last_epoch_metrics(run_dir)["epoch"] == 1 and (run_dir / "weights" / "best.pt").is_file()
    assert (run_dir / "val_batch0_pred.jpg").stat().st_size > 10_000  # the image the README shows

"""Distilling a timm ConvMixer into a packaged backbone: it learns, its output carries into other tasks, it resumes,
and bad input stops it before anything is written."""

import json
import signal
import sys
from pathlib import Path

import pytest
import torch

from ultralytics_convmixer.nn.distill import DistillHead, align, parse_levels
from ultralytics_convmixer.nn.options import DISTILL_LOSSES
from ultralytics_convmixer.pretrained.options import DistillError, TimmImportError

from conftest import TRAIN_ONE_EPOCH, cli_command, real_dataset, run, run_python

timm = pytest.importorskip("timm", reason="timm is not installed: pip install 'ultralytics-convmixer[timm]'")

TINY = ["--epochs", "2", "--imgsz", "64", "--batch", "4", "--device", "cpu", "plots=False"]


def small_teacher(tmp_path: Path) -> Path:
    """A random timm ConvMixer (the 1536/20 family's kernel and patch, 32 wide, 2 blocks) saved as a checkpoint file."""
    torch.manual_seed(0)
    model = timm.models.convmixer.ConvMixer(dim=32, depth=2, kernel_size=9, patch_size=7, num_classes=10)
    torch.save(model.state_dict(), tmp_path / "teacher.pth")
    return tmp_path / "teacher.pth"


def coco8_images(tmp_path_factory) -> Path:
    return real_dataset(tmp_path_factory, "coco8").parent / "images"


def test_the_command_line_offers_every_loss_the_head_takes_and_says_the_defaults():
    from ultralytics_convmixer.cli import _parser

    help_text = " ".join(_parser()._subparsers._group_actions[0].choices["distill"].format_help().split())
    assert "{" + ",".join(DISTILL_LOSSES) + "}" in help_text and "(default: cosine)" in help_text
    assert "(default: P3,P4,P5)" in help_text
    for loss in DISTILL_LOSSES:
        DistillHead([8, 16, 32], teacher_dim=4, loss=loss)  # each is one the head takes


def test_levels_are_read_as_the_backbone_names_them():
    assert parse_levels("P3,P5") == [0, 2] and parse_levels(["p4"]) == [1] and parse_levels([5, 3]) == [0, 2]
    with pytest.raises(ValueError, match="levels must be some of P3, P4, P5"):
        parse_levels("P2")


def test_teacher_features_are_averaged_onto_coarser_grids_and_interpolated_onto_finer_ones():
    teacher = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(align(teacher, (2, 2)), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert align(teacher, (8, 8)).shape == (1, 1, 8, 8) and align(teacher, (4, 4)) is teacher


@pytest.mark.parametrize("loss", DISTILL_LOSSES)
def test_the_backbone_learns_the_teachers_features_on_a_fixed_batch(tmp_path_factory, tmp_path, loss):
    from ultralytics_convmixer.integration.checkpoints import build_model
    from ultralytics_convmixer.integration.distill_data import UnlabeledImages, find_images
    from ultralytics_convmixer.integration.distill_trainer import BackboneDistiller
    from ultralytics_convmixer.pretrained.timm_import import build_trunk
    from ultralytics_convmixer.pretrained.timm_source import read_source

    state, trunk = read_source(small_teacher(tmp_path))
    teacher = build_trunk(state, trunk, patch=trunk.patch)
    train, _ = find_images(coco8_images(tmp_path_factory))
    hyp = type("Hyp", (), dict(scale=0.5, fliplr=0.5, hsv_h=0.015, hsv_s=0.7, hsv_v=0.4))
    batch = UnlabeledImages.collate_fn([UnlabeledImages(train, 64, False, hyp)[i] for i in range(4)])
    img = batch["img"].float() / 255
    with torch.no_grad():
        features = teacher(torch.nn.functional.interpolate(img, size=(56, 56), mode="bilinear"))
    torch.manual_seed(0)
    model = BackboneDistiller(build_model("yolov8n-convmixer.yaml", "detect"), trunk.dim, [0, 1, 2], loss).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(8):  # the same batch each step
        loss, _ = model({"img": img, "teacher": features})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item() / len(img))
    assert losses[-1] < 0.7 * losses[0], losses  # it learns: the loss falls by over 30% in 8 steps


def test_only_the_backbone_and_the_projections_get_gradients(tmp_path):
    from ultralytics_convmixer.integration.checkpoints import build_model
    from ultralytics_convmixer.integration.distill_trainer import BackboneDistiller

    model = BackboneDistiller(build_model("yolov8n-convmixer.yaml", "detect"), 32, [0, 2], "cosine")
    loss, items = model({"img": torch.rand(2, 3, 64, 64), "teacher": torch.randn(2, 32, 8, 8)})
    loss.backward()
    trained = {
        name.split(".")[0] + "." + name.split(".")[2] for name, p in model.named_parameters() if p.grad is not None
    }
    assert trained == {"student.0", "head.0", "head.1"}  # layer 0 and both projections; neck and head untouched
    assert isinstance(model.head, DistillHead) and len(model.head.projections) == 2


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """``ultralytics-convmixer distill`` on coco8's images, as a user runs it: the folder, the output, the stdout."""
    folder = tmp_path_factory.mktemp("distill")
    teacher = small_teacher(folder)
    argv = [teacher, "--images", coco8_images(tmp_path_factory), "--out", folder / "distilled.pt", *TINY]
    result = run(cli_command("distill", *argv, f"project={folder / 'runs'}"), cwd=folder, check=True)
    return folder, result.stdout


@pytest.mark.slow
def test_the_command_writes_the_student_and_a_run_it_can_resume(distilled):
    folder, stdout = distilled
    assert f"wrote {folder / 'distilled.pt'}" in stdout and "held-out cosine similarity" in stdout
    rows = (folder / "runs" / "train" / "results.csv").read_text().splitlines()
    assert rows[0].split(",")[2:5] == ["train/feat_loss", "train/cos_sim", "metrics/cosine"] and len(rows) == 3
    checkpoint = torch.load(folder / "distilled.pt", map_location="cpu", weights_only=False)
    assert type(checkpoint["model"]).__name__ == "DetectionModel"  # the student, without the projections
    assert checkpoint["convmixer_import"]["distill"]["teacher"] == str(folder / "teacher.pth")


@pytest.mark.slow
def test_the_distilled_backbone_carries_into_a_segment_training_and_loads_fresh(distilled, tmp_path_factory, tmp_path):
    from ultralytics import YOLO

    folder, _ = distilled
    student = YOLO(str(folder / "distilled.pt")).model.model[0].state_dict()
    started = {}
    model = YOLO("yolov8n-convmixer-seg.yaml")
    model.add_callback(  # copies: the training updates the parameters in place
        "on_pretrain_routine_end",
        lambda t: started.update({k: v.clone() for k, v in t.model.model[0].state_dict().items()}),
    )
    data = real_dataset(tmp_path_factory, "coco8-seg")
    model.train(data=str(data), pretrained=str(folder / "distilled.pt"), project=str(tmp_path), name="seg",
                **TRAIN_ONE_EPOCH)  # fmt: skip
    assert started.keys() == student.keys() and all(torch.equal(started[k], v.float()) for k, v in student.items())
    code = f"""
        import json
        from ultralytics import YOLO
        model = YOLO({str(folder / "distilled.pt")!r})
        result = model.predict({str(next((data.parent / "images" / "val").glob("*.jpg")))!r}, imgsz=64, device="cpu")
        print(json.dumps([model.task, type(model.model.model[0]).__name__, len(result[0].boxes)]))
        """
    loaded = run_python(code, env={"ULTRALYTICS_SAFE_LOAD": "1"}, check=True)
    task, backbone, _ = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert (task, backbone) == ("detect", "ConvMixerBackbone")


@pytest.mark.slow
def test_a_killed_distillation_resumes_from_its_last_checkpoint(tmp_path_factory, tmp_path):
    images, teacher = coco8_images(tmp_path_factory), small_teacher(tmp_path)
    code = f"""
        import os, signal
        from ultralytics_convmixer.pretrained import distill as d
        def die_in_second_epoch(trainer):
            if trainer.epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        class Killed(d.TimmDistillationTrainer):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.add_callback("on_train_batch_end", die_in_second_epoch)
        d.TimmDistillationTrainer = Killed
        d.distill({str(teacher)!r}, images={str(images)!r}, out={str(tmp_path / "s.pt")!r}, epochs=3, imgsz=64,
                  batch=4, device="cpu", plots=False, project={str(tmp_path / "runs")!r})
        """
    assert run_python(code).returncode == -signal.SIGKILL
    last = tmp_path / "runs" / "train" / "weights" / "last.pt"
    assert len((tmp_path / "runs" / "train" / "results.csv").read_text().splitlines()) == 2  # epoch 1 only
    assert not (tmp_path / "s.pt").exists()
    resumed = run(cli_command("distill", "--resume", last), check=True)
    assert "Resuming training" in resumed.stdout + resumed.stderr and (tmp_path / "s.pt").is_file()
    assert len((tmp_path / "runs" / "train" / "results.csv").read_text().splitlines()) == 4  # epochs 1 to 3


def bad_input(tmp_path, capsys, *argv) -> str:
    """Run ``distill`` with ``argv`` in this process; assert it fails as a user error and wrote nothing."""
    from ultralytics_convmixer.cli import main

    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["distill", *map(str, argv), "project=" + str(tmp_path / "runs"), *TINY]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no output
    return capsys.readouterr().err.strip()


def test_a_teacher_that_is_not_a_convmixer_is_named_by_its_first_tensor_that_does_not_fit(tmp_path_factory, tmp_path,
                                                                                          capsys):  # fmt: skip
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "resnet.pth")
    error = bad_input(tmp_path, capsys, tmp_path / "resnet.pth", "--images", coco8_images(tmp_path_factory), "--out",
                      tmp_path / "s.pt")  # fmt: skip
    assert "first tensor 'conv1.weight' (64, 3, 7, 7) does not fit" in error


def test_a_student_whose_layer_0_is_no_convmixer_backbone_is_named(tmp_path_factory, tmp_path, capsys):
    error = bad_input(tmp_path, capsys, small_teacher(tmp_path), "--student", "yolov8n.yaml", "--images",
                      coco8_images(tmp_path_factory), "--out", tmp_path / "s.pt")  # fmt: skip
    assert "--student yolov8n.yaml: layer 0 is Conv, not a ConvMixerBackbone" in error


def test_a_folder_without_readable_images_is_named(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_text("not a picture")
    error = bad_input(tmp_path, capsys, small_teacher(tmp_path), "--images", tmp_path / "photos", "--out",
                      tmp_path / "s.pt")  # fmt: skip
    assert f"--images {tmp_path / 'photos'}: none of its first 1 images could be read" in error
    (tmp_path / "photos" / "a.jpg").unlink()
    error = bad_input(tmp_path, capsys, tmp_path / "teacher.pth", "--images", tmp_path / "photos", "--out",
                      tmp_path / "s.pt")  # fmt: skip
    assert f"--images {tmp_path / 'photos'}: no images (" in error


def test_an_existing_output_is_kept_without_force(tmp_path_factory, tmp_path, capsys):
    (tmp_path / "s.pt").write_bytes(b"a model the user keeps")
    error = bad_input(tmp_path, capsys, small_teacher(tmp_path), "--images", coco8_images(tmp_path_factory), "--out",
                      tmp_path / "s.pt")  # fmt: skip
    assert f"--out {tmp_path / 's.pt'} exists; pass --force (Python: force=True) to overwrite it" in error
    assert (tmp_path / "s.pt").read_bytes() == b"a model the user keeps"


def test_python_errors_are_the_documented_types(tmp_path_factory, tmp_path):
    from ultralytics_convmixer import distill

    with pytest.raises(DistillError, match="--images is required"):
        distill(small_teacher(tmp_path), out=tmp_path / "s.pt")
    (tmp_path / "notes.pth").write_text("text")
    with pytest.raises(TimmImportError, match="notes.pth: not a checkpoint torch or safetensors can read"):
        distill(tmp_path / "notes.pth", images=coco8_images(tmp_path_factory), out=tmp_path / "s.pt")
    assert not (tmp_path / "s.pt").exists()


def test_a_ddp_worker_builds_the_teacher_and_student_from_the_arguments_alone(tmp_path_factory, tmp_path):
    """Ultralytics starts DDP ranks as fresh interpreters from a generated script: run that script's model setup."""
    from ultralytics.utils.dist import generate_ddp_file

    from ultralytics_convmixer.pretrained.distill import DEFAULTS, TimmDistillationTrainer

    images, teacher = str(coco8_images(tmp_path_factory)), str(small_teacher(tmp_path))
    args = dict(DEFAULTS, model="yolov8n-convmixer.yaml", data=images, imgsz=64, device="cpu", project=str(tmp_path),
                teacher=teacher, distill_out="s.pt")  # fmt: skip
    script = Path(generate_ddp_file(TimmDistillationTrainer(overrides=args)))
    try:
        code = script.read_text()
        assert "trainer.train()" in code
        script.write_text(code.replace("trainer.train()", "trainer.setup_model(); m = trainer.model; "
                                       "print('RANK', type(m).__name__, trainer.teacher_dim, m.levels)"))  # fmt: skip
        result = run([sys.executable, script], check=True)
        assert "RANK BackboneDistiller 32 [0, 1, 2]" in result.stdout
    finally:
        script.unlink(missing_ok=True)
        script.with_suffix(".pt").unlink(missing_ok=True)


def test_levels_and_losses_the_head_does_not_take_are_named(tmp_path_factory, tmp_path, capsys):
    images, teacher = coco8_images(tmp_path_factory), small_teacher(tmp_path)
    argv = [teacher, "--images", images, "--out", tmp_path / "s.pt"]
    assert "--levels: levels must be some of P3, P4, P5" in bad_input(tmp_path, capsys, *argv, "--levels", "P6")
    with pytest.raises(DistillError, match="--loss must be one of cosine, mse, both, got 'l1'"):
        from ultralytics_convmixer import distill

        distill(teacher, images=images, out=tmp_path / "s.pt", loss="l1")

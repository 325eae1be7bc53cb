"""Checkpoints written by ultralytics-convmixer 0.1.0, whose modules had other paths, load, predict, validate, resume
and export, in a fresh process with Ultralytics' safe loading.

The test writes them itself, as 0.1.0 did: in a child process each plugin class reports its 0.1.0 module path, and each
layer pickles its BatchNorm order as 0.1.0's string attribute. A check on the written file proves it references only
the old paths.
"""

import json
import pickletools
import zipfile

import pytest

from ultralytics_convmixer.integration.legacy import MOVED

from conftest import TRAIN_ONE_EPOCH, last_epoch_metrics, run_python

pytestmark = pytest.mark.slow

# In the child that writes the checkpoints: the plugin's classes as 0.1.0 named and pickled them.
AS_0_1_0 = """
import os, signal
import ultralytics_convmixer.integration.registration as registration
from ultralytics_convmixer.integration.legacy import MOVED
from ultralytics_convmixer.nn.modules import ConvNormAct

old_path = {new: old for old, new in MOVED.items()}
for cls in registration.SAFE_GLOBALS:
    cls.__module__ = old_path.get(cls.__module__, cls.__module__)

def state_of_0_1_0(layer):  # the order as a string attribute, no flags
    state = {k: v for k, v in layer.__dict__.items() if k not in ("bn_first", "add_before_act")}
    return {**state, "order": layer.order}

ConvNormAct.__getstate__ = state_of_0_1_0

def die_in_second_epoch(trainer):
    if trainer.epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)
"""

# In a fresh process with ULTRALYTICS_SAFE_LOAD=1: everything a user does with a best.pt or last.pt.
USE_IT = """
import json, sys
import numpy as np, onnxruntime as ort, torch
from ultralytics import YOLO

weights, data, image = sys.argv[1:4]
model = YOLO(weights)
result = model.predict(image, imgsz=64, conf=0.0, device="cpu", verbose=False)[0]
metrics = model.val(data=data, imgsz=64, batch=4, device="cpu", plots=False, verbose=False)
exported = YOLO(weights).export(format="onnx", imgsz=64, device="cpu")
x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
reference = YOLO(weights).model.float().fuse(verbose=False).eval()
reference.model[-1].export, reference.model[-1].format = True, "onnx"  # the head's output as exported
with torch.no_grad():
    expected = reference(x)
expected = (expected[0] if isinstance(expected, (list, tuple)) else expected).numpy()
session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
YOLO(weights).train(resume=True)
print(json.dumps({
    "backbone": type(model.model.model[0]).__name__,
    "boxes": len(result.boxes),
    "map": metrics.box.map,
    "export_error": float(np.abs(got - expected).max() / max(1.0, np.abs(expected).max())),
}))
"""


def write_killed_run(tmp_path, source: str, data, import_timm_first: bool = False):
    """Train ``source`` as 0.1.0 did, killed in its second epoch: its last.pt, as a user of 0.1.0 holds it."""
    code = AS_0_1_0
    if import_timm_first:  # the import-timm checkpoint, also written with 0.1.0's paths, is what is trained
        code += f"""
import torch
from timm.models.convmixer import ConvMixer
from ultralytics_convmixer.pretrained.timm_import import import_timm
torch.manual_seed(0)
import_timm(ConvMixer(dim=32, depth=2, kernel_size=9, patch_size=7, num_classes=10), scale="n", out={source!r})
"""
    code += f"""
from ultralytics import YOLO
model = YOLO({source!r})
model.add_callback("on_train_batch_end", die_in_second_epoch)
model.train(data={str(data)!r}, project={str(tmp_path)!r}, name="old", **{{**{TRAIN_ONE_EPOCH!r}, "epochs": 2}})
"""
    killed = run_python(code)
    assert killed.returncode == -9, killed.stderr[-3000:]
    return tmp_path / "old" / "weights" / "last.pt"


def pickled_globals(checkpoint) -> set:
    """Every class and function a ``torch.save`` file references, read off its pickle (protocol 2: GLOBAL opcodes)."""
    with zipfile.ZipFile(checkpoint) as archive:
        data = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def assert_only_old_paths(checkpoint) -> None:
    """The file references the plugin's classes by their 0.1.0 paths and by no other."""
    ours = [name for name in pickled_globals(checkpoint) if name.startswith("ultralytics_convmixer.")]
    assert "ultralytics_convmixer.modules.ConvMixerBackbone" in ours
    assert all(name.rpartition(".")[0] in MOVED for name in ours), ours


@pytest.mark.parametrize("source", ["yolov8n-convmixer.yaml", "yolo26n-convmixer.yaml", "import-timm"])
def test_a_0_1_0_checkpoint_loads_predicts_validates_exports_and_resumes(coco8, tmp_path, source):
    if source == "import-timm":
        pytest.importorskip("timm", reason="timm is not installed: pip install 'ultralytics-convmixer[timm]'")
        imported = tmp_path / "imported-0.1.0.pt"
        last = write_killed_run(tmp_path, str(imported), coco8, import_timm_first=True)
        assert_only_old_paths(imported)
    else:
        last = write_killed_run(tmp_path, source, coco8)
    assert_only_old_paths(last)
    image = next((coco8.parent / "images" / "val").glob("*.jpg"))
    recorded_map = last_epoch_metrics(tmp_path / "old")["metrics/mAP50-95(B)"]  # the epoch last.pt holds
    used = run_python(USE_IT, last, coco8, image, env={"ULTRALYTICS_SAFE_LOAD": "1"}, check=True)
    report = json.loads(used.stdout.strip().splitlines()[-1])
    assert report["backbone"] == "ConvMixerBackbone" and report["boxes"] > 0
    assert report["map"] == pytest.approx(recorded_map, abs=2e-3)
    assert report["export_error"] < 1e-4
    assert last_epoch_metrics(tmp_path / "old")["epoch"] == 2  # resumed, and trained the epoch the kill cut short

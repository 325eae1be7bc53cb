"""Assertions the tests share: exports compute what PyTorch does, checkpoints load and predict alike, training ran."""

import inspect
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import last_epoch_metrics, run_python


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


def prediction_summary(result) -> dict:
    """Every output of an Ultralytics ``Results`` (boxes, masks, probs, ...) as its shape and its first 64 values."""
    summary = {}
    for key in ("boxes", "masks", "probs", "keypoints", "obb", "semantic_mask", "depth"):
        value = getattr(result, key, None)
        if value is not None:
            data = value.data.float().cpu()
            summary[key] = [list(data.shape), [round(v, 4) for v in data.flatten()[:64].tolist()]]
    return summary


def predict_in_fresh_process(weights: Path, image: Path, imgsz: int = 64, **predict_args) -> dict:
    """Load ``weights`` in a fresh process with Ultralytics' safe loading and predict ``image`` (conf 0).

    Returns the model's task, layer-0 and head class names and :func:`prediction_summary` of the result; fails the
    test with the child's output if the process fails.
    """
    code = f"""
        import json
        from ultralytics import YOLO
        {textwrap.indent(inspect.getsource(prediction_summary), " " * 8).strip()}
        model = YOLO({str(weights)!r})
        r = model.predict({str(image)!r}, imgsz={imgsz}, conf=0.0, device="cpu", verbose=False, **{predict_args!r})[0]
        layers = model.model.model
        print(json.dumps([model.task, type(layers[0]).__name__, type(layers[-1]).__name__, prediction_summary(r)]))
        """
    result = run_python(code, env={"ULTRALYTICS_SAFE_LOAD": "1"}, timeout=300, check=True)
    task, backbone, head, summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {"task": task, "backbone": backbone, "head": head, "summary": summary}


def assert_same_predictions(fresh: dict, weights: Path, image: Path, imgsz: int = 64, **predict_args) -> None:
    """Assert that ``fresh`` (:func:`predict_in_fresh_process`) is what ``weights`` predicts in this process."""
    from ultralytics import YOLO

    result = YOLO(str(weights)).predict(str(image), imgsz=imgsz, conf=0.0, device="cpu", verbose=False, **predict_args)
    here = json.loads(json.dumps(prediction_summary(result[0])))
    assert here and fresh["summary"].keys() == here.keys(), (fresh["summary"].keys(), here.keys())
    for key, (shape, values) in here.items():
        assert fresh["summary"][key][0] == shape, key
        assert np.allclose(fresh["summary"][key][1], values, rtol=1e-3, atol=1e-3), key


def assert_trained_backbone(weights: Path) -> None:
    """Assert that training ran batches through the whole ConvMixer backbone of ``weights``.

    A BatchNorm is built with running mean 0 and variance 1; each training batch moves both. One that has not moved
    sits in a part of the backbone no batch reached.
    """
    import torch
    from ultralytics import YOLO

    norms = [m for m in YOLO(str(weights)).model.model[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms, f"{weights}: no BatchNorm in layer 0"
    unmoved = [i for i, bn in enumerate(norms) if bn.running_mean.abs().max() == 0 or (bn.running_var == 1).all()]
    assert not unmoved, f"{weights}: BatchNorms {unmoved} of {len(norms)} in layer 0 kept their initial statistics"


def assert_metrics_reproduce(weights: Path, data: Path, run_dir: Path, columns, **val_args) -> None:
    """Assert that validating ``weights`` in this process gives the metrics its run recorded last (``columns``)."""
    from ultralytics import YOLO

    recorded = last_epoch_metrics(run_dir)
    results = YOLO(str(weights)).val(data=str(data), device="cpu", plots=False, verbose=False, **val_args)
    again = {k.strip(): float(v) for k, v in results.results_dict.items()}
    for column in columns:
        assert again[column] == pytest.approx(recorded[column], abs=2e-3), (column, again[column], recorded[column])

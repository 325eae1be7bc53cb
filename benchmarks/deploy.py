"""Stock yolov8n against yolov8n-convmixer in every Ultralytics export format: export, outputs, mAP and CPU latency.

For each format (and precision: fp32, fp16, INT8, ONNX with dynamic shapes, LiteRT weight-only INT8), in one
process: both models are exported with Ultralytics' exporter (INT8 calibrated on the ``--data`` val split, every image,
batch 1), loaded with Ultralytics' ``AutoBackend`` (the runtime ``predict`` and ``val`` use) and

- their raw outputs compared with PyTorch's on ``--check-images`` val images: the largest absolute difference, and the
  largest over the repository's export tolerance (``tests/checks.py``: 1e-4 of each output channel's range + 1e-6);
- validated on the val split (mAP50-95, with its change against the PyTorch model);
- timed at batch 1 on one letterboxed val image, the two models taking turns run by run, ``--runs`` runs after
  ``--warmup``, in ``--repeats`` repeats with fresh backends and the order of turns reversed every other repeat: each
  latency is the median of the repeats' medians with their range, the ratio the median of the repeats' ratios
  (ONNX Runtime sessions with spinning off, as ``compare`` times them, and ncnn with OpenMP block time 0).

A format that fails records the first line of its error and the script goes on. Models: ``--stock`` and
``--convmixer`` checkpoints, or by default the README's quick-start recipe (shapes-easy, 10 epochs, 160 px, batch 16,
CPU, seed 0), trained once into ``WORKDIR/trained`` and reused; ``--untrained`` builds both from YAML instead.
Install the exporters first; ``YOLO_AUTOINSTALL=false`` keeps Ultralytics from installing any (docs/deploy.md).

    python benchmarks/deploy.py --json deploy.json                        # every format, trained models
    python benchmarks/deploy.py --formats onnx openvino --runs 50 --repeats 7
    python benchmarks/deploy.py --untrained --formats torchscript onnx --imgsz 64 --data coco8.yaml
"""

import argparse
import contextlib
import csv
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import torch

from ultralytics_convmixer.compare.timing import interleaved_medians

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, ultralytics_log, write_json  # noqa: E402

MODELS = {"stock": "yolov8n", "convmixer": "yolov8n-convmixer"}
RECIPE = dict(data="shapes-easy.yaml", epochs=10, imgsz=160, batch=16, device="cpu", seed=0)  # README quick start
FP32, FP16, INT8 = ("fp32", {}), ("fp16", {"quantize": 16}), ("int8", {"quantize": 8})
VARIANTS = {  # format: [(variant, export arguments)]; formats not listed export once with their defaults
    "torchscript": [FP32, FP16],
    "onnx": [FP32, ("fp32 dynamic", {"dynamic": True}), FP16, INT8],
    "openvino": [FP32, FP16, INT8],
    "ncnn": [FP32, FP16],
    "mnn": [FP32, FP16, ("int8 weights", {"quantize": 8})],
    "litert": [FP32, FP16, INT8, ("w8a32", {"quantize": "w8a32"})],
    **dict.fromkeys(("edgetpu", "imx", "axelera", "deepx", "hailo", "xilinx"), [INT8]),  # INT8 only
    "qnn": [("w8a16", {"quantize": "w8a16"})],  # Ultralytics' choice when unset
    **dict.fromkeys(("rknn", "ascend"), [("fp16", {})]),  # their default precision
}
FORMATS = ("torchscript", "onnx", "openvino", "ncnn", "mnn", "paddle", "litert", "saved_model", "pb", "executorch",
           "coreml", "coreai", "tfjs", "edgetpu", "engine", "imx", "rknn", "axelera", "deepx", "qnn", "hailo",
           "ascend", "xilinx")  # fmt: skip
EXPORT_ONLY = {  # formats that export here but whose runtime cannot run on this machine
    "coreml": "runtime needs macOS",
    "coreai": "runtime needs macOS 26 on Apple silicon",
    "deepx": "runtime needs a DEEPX NPU and DX-Runtime",
    "qnn": "runtime needs a Snapdragon HTP",
}
NOTES = {  # why a format cannot run here, where Ultralytics' own error does not say it
    "tfjs": "deprecated since Ultralytics 8.4.83, which exports LiteRT for format=tfjs (see litert)",
    "edgetpu": "needs Google's edgetpu_compiler (not on PyPI) and a Coral Edge TPU to run",
    "engine": "TensorRT needs an NVIDIA GPU",
    "imx": "Sony IMX500; Ultralytics runs it with torch<2.12 and Java 17",
    "rknn": "Rockchip NPU; rknn-toolkit2 pins torch<=2.4, numpy<=1.26.4, protobuf<=4.25.4",
    "axelera": "Axelera Metis; its SDK is on Axelera's own index, not PyPI",
    "hailo": "the Hailo Dataflow Compiler is not on PyPI; Hailo NPU",
    "ascend": "the CANN toolkit (atc) is not on PyPI; Ascend NPU",
    "xilinx": "Quark's INT8 ONNX runs here on ONNX Runtime's CPU provider; a Versal NPU needs the Vitis AI EP",
}
RUNTIMES = ("ultralytics", "torch", "onnx", "onnxruntime", "openvino", "nncf", "litert-torch", "ai-edge-litert",
            "ai-edge-quantizer", "ncnn", "pnnx", "mnn", "paddlepaddle", "x2paddle", "tensorflow", "onnx2tf",
            "executorch", "coremltools", "amd-quark")  # fmt: skip


def first_line(error: BaseException, warnings: tuple = ()) -> str:
    """The first line of an error, ANSI colours removed, with the requirements Ultralytics found missing before it."""
    if isinstance(error, ChildError):
        return str(error)
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    line = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".strip().rstrip(":")
    missing = [m.group(1) for w in warnings if (m := re.search(r"requirements? (\[.*?\]) not found", w))]
    return line + (f" (missing {', '.join(missing)})" if missing else "")


def attempt(record: dict, step: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; on an error record its first line under ``record["errors"][step]`` and return None."""
    with ultralytics_log(logging.WARNING) as warnings:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - one format's failure must not stop the others
            record.setdefault("errors", {})[step] = first_line(e, tuple(warnings))
            return None


def trained_weights(model: str, workdir: Path) -> Path:
    """``best.pt`` of the quick-start recipe for ``model``, trained into ``workdir/trained/<model>`` unless done."""
    run = workdir / "trained" / model
    best, results = run / "weights" / "best.pt", run / "results.csv"
    if best.is_file() and results.is_file():
        with open(results) as f:
            if len(list(csv.DictReader(f))) >= RECIPE["epochs"]:
                return best
    from ultralytics import YOLO

    YOLO(f"{model}.yaml").train(**RECIPE, project=str(run.parent), name=model, exist_ok=True, plots=False)
    return best


def untrained_weights(model: str, workdir: Path, data: str) -> Path:
    """An untrained ``model`` built from its YAML with the classes of ``data``, saved as a checkpoint."""
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    names = check_det_dataset(data)["names"]
    yolo = YOLO(f"{model}.yaml")
    yolo.model = DetectionModel(f"{model}.yaml", nc=len(names), verbose=False)
    yolo.model.names = names
    path = workdir / "untrained" / f"{model}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(path)
    return path


def val_images(data: str, imgsz: int, n: int) -> torch.Tensor:
    """The first ``n`` val images of ``data`` (sorted by name), letterboxed to ``imgsz``: float RGB BCHW in [0, 1]."""
    import cv2
    from ultralytics.data.augment import LetterBox
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    val = check_det_dataset(data)["val"]
    files = sorted(f for root in (val if isinstance(val, list) else [val]) for f in Path(root).rglob("*")
                   if f.suffix[1:].lower() in IMG_FORMATS)[:n]  # fmt: skip
    letterbox = LetterBox((imgsz, imgsz), auto=False)
    images = [letterbox(image=cv2.imread(str(f)))[..., ::-1].transpose(2, 0, 1) for f in files]
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).float() / 255


def onnx2tf_sample(folder: Path, data: str) -> None:
    """Put a stand-in for onnx2tf's sample calibration file in ``folder``: 20 val images of ``data`` at 128 px.

    Ultralytics' TensorFlow exports download ``calibration_image_sample_data_20x128x128x3_float32.npy`` from GitHub
    into the working directory unless it is there, also for fp32; onnx2tf reads it only to calibrate INT8 without data.
    """
    sample = folder / "calibration_image_sample_data_20x128x128x3_float32.npy"
    if not sample.is_file():
        np.save(sample, val_images(data, 128, 20).permute(0, 2, 3, 1).numpy())


def export(weights: Path, fmt: str, kwargs: dict, out: Path, imgsz: int, data: str) -> str:
    """Export ``weights`` with Ultralytics' exporter into ``out`` (INT8 exports calibrated on ``data``)."""
    from ultralytics import YOLO
    from ultralytics.engine.exporter import export_formats

    out.mkdir(parents=True, exist_ok=True)
    yolo = YOLO(str(weights))
    yolo.model.pt_path = str(out / f"{out.name}.pt")  # the exporter names its output after this
    arguments = dict(zip(export_formats()["Argument"], export_formats()["Arguments"])).get(fmt, [])
    extra = {"data": data} if "data" in arguments else {}  # formats that calibrate take it; others reject it
    if fmt in {"saved_model", "pb", "edgetpu"}:
        onnx2tf_sample(out, data)
    os.chdir(out)  # a child process (export_isolated): files exporters write to the working directory land here
    return yolo.export(format=fmt, imgsz=imgsz, device="cpu", verbose=False, **extra, **kwargs)


def _export_child(connection: Any, *args: Any) -> None:
    """Run :func:`export` (in a child process) and send back ``("ok", path)`` or ``("error", first line)``."""
    with ultralytics_log(logging.WARNING) as warnings:
        try:
            connection.send(("ok", export(*args)))
        except Exception as e:  # noqa: BLE001 - reported by the parent
            connection.send(("error", first_line(e, tuple(warnings))))


class ChildError(Exception):
    """An export's error, already reduced to its first line in the child process."""


def export_isolated(*args: Any) -> str:
    """:func:`export` in a child process, so that a converter that crashes the interpreter fails only its format."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_export_child, args=(sender, *args))
    process.start()
    sender.close()
    try:
        status, value = receiver.recv()
    except EOFError:
        status, value = "error", None
    process.join()
    if status == "ok":
        return value
    raise ChildError(value or f"the export process died (exit code {process.exitcode})")


def backend(path: str) -> Any:
    """Ultralytics' ``AutoBackend`` for a checkpoint or an exported model, on CPU in fp32."""
    from ultralytics.nn.autobackend import AutoBackend

    return AutoBackend(path, device=torch.device("cpu"), fp16=False, verbose=False).eval()


def output_tensors(output: Any) -> list:
    """Every tensor or array of a model's output, depth first, as float32 tensors (copies: backends reuse buffers)."""
    if isinstance(output, (torch.Tensor, np.ndarray)):
        return [torch.as_tensor(output).detach().float().clone()]
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else []
    return [t for item in items for t in output_tensors(item)]


def run(model: Any, im: torch.Tensor) -> list:
    """One forward pass of an ``AutoBackend`` (inference mode) and its output tensors."""
    with torch.inference_mode():
        return output_tensors(model(im))


def output_error(path: str, reference: list, images: torch.Tensor) -> dict:
    """Largest difference of ``path``'s outputs from PyTorch's (``reference``): absolute and over tests' tolerance."""
    model, worst_abs, worst_rel = backend(path), 0.0, 0.0
    for im, expected in zip(images.split(1), reference):
        for out in run(model, im):
            match = [e for e in expected if e.shape == out.shape]
            if not match:
                raise ValueError(f"output {tuple(out.shape)} not among PyTorch's {[tuple(e.shape) for e in expected]}")
            diff = (out - match[0]).abs()
            dims = tuple(i for i in range(out.ndim) if i != 1)
            tolerance = 1e-4 * match[0].abs().amax(dim=dims, keepdim=True) + 1e-6  # tests/checks.py's
            worst_abs, worst_rel = max(worst_abs, diff.max().item()), max(worst_rel, (diff / tolerance).max().item())
    return {"max_abs_err": worst_abs, "err_over_tolerance": worst_rel}


def val_map(path: str, data: str, imgsz: int, project: Path) -> float:
    """mAP50-95 of ``path`` on the val split of ``data`` at batch 1 and a square ``imgsz``, as exported models run.

    ``rect=False`` for every model: a ``.pt`` model is otherwise validated on rectangular batches padded by half a
    stride (192 px for 160 px images: quick-start ConvMixer 0.232 there, 0.241 at 160 px), exports at ``imgsz``.
    """
    from ultralytics import YOLO

    metrics = YOLO(path, task="detect").val(data=data, imgsz=imgsz, batch=1, rect=False, device="cpu", plots=False,
                                            verbose=False, project=str(project), name="val", exist_ok=True)  # fmt: skip
    return float(metrics.box.map)


@contextlib.contextmanager
def onnxruntime_without_spinning():
    """Open ONNX Runtime sessions with intra-op spinning off inside the block, as ``compare`` times them.

    Two sessions taking turns on a small CPU otherwise each keep their idle threads spinning while the other runs
    (``ultralytics_convmixer.compare.timing.onnx_session``); Ultralytics' ``AutoBackend`` takes no session options.
    """
    try:
        import onnxruntime
    except ImportError:
        yield
        return
    original = onnxruntime.InferenceSession

    def session(path: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        sess_options = sess_options or onnxruntime.SessionOptions()
        sess_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return original(path, sess_options, *args, **kwargs)

    onnxruntime.InferenceSession = session
    try:
        yield
    finally:
        onnxruntime.InferenceSession = original


def latency(paths: dict, image: torch.Tensor, args: argparse.Namespace) -> dict:
    """Batch-1 latency of both models taking turns, ``args.repeats`` times with fresh backends (ms, ratio)."""
    per_repeat = {name: [] for name in paths}
    for repeat in range(max(1, args.repeats)):
        order = list(paths)[:: -1 if repeat % 2 else 1]
        with onnxruntime_without_spinning():
            models = {name: backend(paths[name]) for name in order}
        for model in models.values():
            net = getattr(model.backend, "net", None)  # ncnn's threads otherwise busy-wait 20 ms after each run
            if hasattr(getattr(net, "opt", None), "openmp_blocktime"):
                net.opt.openmp_blocktime = 0
        steps = [{"b1": (lambda m=models[name]: run(m, image), lambda: None)} for name in order]
        for name, medians in zip(order, interleaved_medians(steps, args.runs, args.warmup)):
            per_repeat[name].append(medians["b1"])
        del models, steps
    stock, convmixer = per_repeat["stock"], per_repeat["convmixer"]
    ratios = [c / s for s, c in zip(stock, convmixer)]
    result = {f"{name}_ms": statistics.median(ms) for name, ms in per_repeat.items()}
    result.update({f"{name}_ms_range": [min(ms), max(ms)] for name, ms in per_repeat.items()})
    return {**result, "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
            "repeat_ms": per_repeat}  # fmt: skip


def measure_model(fmt: str, variant: str, kwargs: dict, name: str, context: dict, args: argparse.Namespace) -> tuple:
    """Export, check and validate one model; returns its record and the path of a model that runs (or None)."""
    record, weights, tag = {}, context["weights"][name], f"{fmt}-{variant.replace(' ', '-')}"
    if fmt == "tfjs":
        return {"exported": False, "errors": {"export": NOTES["tfjs"]}}, None
    if fmt == "pytorch":
        path = str(weights)
    else:
        out = Path(args.workdir) / "exports" / tag / MODELS[name]
        path = attempt(record, "export", lambda: export_isolated(weights, fmt, kwargs, out, args.imgsz, args.data))
    record["exported"] = path is not None
    if path is None or fmt in EXPORT_ONLY:
        return record, None
    record["path"] = str(path)
    error = attempt(record, "run", lambda: output_error(path, context["reference"][name], context["images"]))
    if error is None:
        return record, None
    record.update(error)
    if not args.no_val:
        project = Path(args.workdir) / "val" / f"{tag}-{name}"
        record["map50_95"] = attempt(record, "val", lambda: val_map(path, args.data, args.imgsz, project))
        base = context["map"].get(name)
        if record["map50_95"] is not None and base is not None:
            record["map_change"] = record["map50_95"] - base
    return record, path


def measure(fmt: str, variant: str, kwargs: dict, context: dict, args: argparse.Namespace) -> dict:
    """Both models in one format and precision, then their latency when both run; returns the row (see main)."""
    row = {"format": fmt, "variant": variant, "args": kwargs, "note": NOTES.get(fmt), "models": {}, "latency": None}
    paths = {}
    for name in context["weights"]:
        row["models"][name], path = measure_model(fmt, variant, kwargs, name, context, args)
        if path is not None:
            paths[name] = path
    if len(paths) == 2:
        row["latency"] = attempt(row, "latency", lambda: latency(paths, context["images"][:1], args))
    return row


def status(row: dict) -> str:
    """The "exported" cell: yes, export only, or no with the reason (per model where they differ)."""
    models = row["models"]
    if all(m.get("exported") for m in models.values()):
        return f"yes, export only ({EXPORT_ONLY[row['format']]})" if row["format"] in EXPORT_ONLY else "yes"
    cells = {n: "yes" if m.get("exported") else f"no: {m.get('errors', {}).get('export')}" for n, m in models.items()}
    if len(set(cells.values())) == 1:
        return next(iter(cells.values()))
    return "; ".join(f"{'ConvMixer' if n == 'convmixer' else n} {cell}" for n, cell in cells.items())


def problems(row: dict) -> Optional[str]:
    """The "notes" cell: errors after export (run, val, latency) and the format's note."""
    notes = [f"{n} {step}: {e}" for n, m in row["models"].items() for step, e in m.get("errors", {}).items()
             if step != "export"]  # fmt: skip
    notes += [f"latency: {e}" for e in row.get("errors", {}).values()]
    if row["note"] and not status(row).endswith(row["note"]):
        notes.append(row["note"])
    return "; ".join(notes) or None


def markdown(rows: list) -> str:
    """One Markdown table for the rows of one format."""

    def model(name: str, key: str) -> Callable[[dict], Any]:
        return lambda r: r["models"].get(name, {}).get(key)

    def map_cell(name: str) -> Callable[[dict], Optional[str]]:
        def cell(r: dict) -> Optional[str]:
            m = r["models"].get(name, {})
            if m.get("map50_95") is None:
                return None
            change = m.get("map_change") if r["format"] != "pytorch" else None
            return f"{m['map50_95']:.3f}" + (f" ({change:+.3f})" if change is not None else "")

        return cell

    def ms_cell(name: str) -> Callable[[dict], Optional[str]]:
        def cell(r: dict) -> Optional[str]:
            lat = r["latency"]
            return None if not lat else f"{lat[f'{name}_ms']:.2f} ({{:.2f}}-{{:.2f}})".format(*lat[f"{name}_ms_range"])

        return cell

    def ratio(r: dict) -> Optional[str]:
        lat = r["latency"]
        return None if not lat else f"{lat['ratio']:.2f}x ({lat['ratio_range'][0]:.2f}-{lat['ratio_range'][1]:.2f})"

    columns = [("variant", "variant"), ("exported", status),
               ("max abs err stock", model("stock", "max_abs_err"), "{:.2g}"),
               ("ConvMixer", model("convmixer", "max_abs_err"), "{:.2g}"),
               ("mAP50-95 stock", map_cell("stock")), ("ConvMixer", map_cell("convmixer")),
               ("ms stock", ms_cell("stock")), ("ms ConvMixer", ms_cell("convmixer")), ("ConvMixer / stock", ratio),
               ("notes", lambda r: (problems(r) or "").replace("|", "/") or None)]  # fmt: skip
    return markdown_table(rows, columns)


def versions() -> dict:
    """Versions of Python, the machine and the installed runtimes (absent ones left out)."""
    found = {"python": platform.python_version(), "machine": platform.processor() or platform.machine()}
    with contextlib.suppress(OSError):
        model = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        found["machine"] = f"{model[0].split(':', 1)[1].strip()}, {os.cpu_count()} cores" if model else found["machine"]
    for name in RUNTIMES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), help="export formats (PyTorch always runs)")
    parser.add_argument("--stock", type=Path, help="trained stock yolov8n checkpoint (default: train it)")
    parser.add_argument("--convmixer", type=Path, help="trained yolov8n-convmixer checkpoint (default: train it)")
    parser.add_argument("--untrained", action="store_true", help="models built from their YAMLs, no training")
    parser.add_argument("--data", default=RECIPE["data"], help="val split: outputs, mAP, INT8 calibration")
    parser.add_argument("--imgsz", type=int, default=RECIPE["imgsz"])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model and repeat")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="timings with fresh backends, order alternated")
    parser.add_argument("--check-images", type=int, default=8, help="val images the outputs are compared on")
    parser.add_argument("--no-val", action="store_true", help="skip mAP")
    parser.add_argument("--json", type=Path, help="write meta and rows here after every row")
    parser.add_argument("--resume", action="store_true", help="keep the rows --json already has, measure the rest")
    parser.add_argument("--workdir", default="runs/deploy", help="exports, trained models, val runs")
    args = parser.parse_args(argv)
    unknown = [f for f in args.formats if f not in FORMATS and f != "pytorch"]
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {' '.join(FORMATS)}")
    args.workdir = str(Path(args.workdir).resolve())  # exports run in their own folders: make paths absolute
    args.data = str(Path(args.data).resolve()) if Path(args.data).is_file() else args.data  # else a packaged name
    args.stock, args.convmixer = (p.resolve() if p else None for p in (args.stock, args.convmixer))
    return args


def models(args: argparse.Namespace) -> dict:
    """Checkpoint per model: given, untrained, or trained by the quick-start recipe (cached)."""
    workdir, given = Path(args.workdir), {"stock": args.stock, "convmixer": args.convmixer}
    if args.untrained:
        return {name: untrained_weights(model, workdir, args.data) for name, model in MODELS.items()}
    return {name: given[name] or trained_weights(model, workdir) for name, model in MODELS.items()}


def main(argv: Optional[list] = None) -> list:
    """Measure every requested format; print a table per format; write JSON after every row. Returns the rows."""
    args = parse_args(argv)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "argv": sys.argv[1:], **versions()}
    meta.update({k: getattr(args, k) for k in ("data", "imgsz", "runs", "warmup", "repeats", "check_images")})
    weights = models(args)
    meta["weights"] = {name: str(path) for name, path in weights.items()}
    images = val_images(args.data, args.imgsz, args.check_images)
    reference = {name: [run(backend(str(w)), im) for im in images.split(1)] for name, w in weights.items()}
    context, rows, tables = {"weights": weights, "images": images, "reference": reference, "map": {}}, [], []
    print(f"# deploy.py: {meta['date']}, {meta['machine']}, imgsz {args.imgsz}, ultralytics {meta['ultralytics']}")
    done = json.loads(args.json.read_text())["rows"] if args.resume and args.json and args.json.is_file() else []
    done = {(row["format"], row["variant"]): row for row in done}
    for fmt in dict.fromkeys(["pytorch", *args.formats]):
        fmt_rows = []
        for variant, kwargs in VARIANTS.get(fmt, [FP32]):
            fmt_rows.append(done.get((fmt, variant)) or measure(fmt, variant, kwargs, context, args))
            if fmt == "pytorch":
                context["map"] = {n: m.get("map50_95") for n, m in fmt_rows[-1]["models"].items()}
            rows.append(fmt_rows[-1])
            if args.json:
                write_json(args.json, {"meta": meta, "rows": rows})
        tables.append(f"## {fmt}\n\n{markdown(fmt_rows)}")
        print(f"\n{tables[-1]}", flush=True)
    print("\n# Summary\n", *tables, sep="\n\n")
    return rows


if __name__ == "__main__":
    main()

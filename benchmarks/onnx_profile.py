"""Where ONNX Runtime spends its CPU time in a packaged ConvMixer detect model and in stock YOLOv8 of the same scale.

Both models, and any ConvMixer YAMLs that ``--models`` adds (named ``yolov8-NAME.yaml`` as for ``models.py
--variants``, the scale letter then inserted, or already named at the scale), are exported as ``yolo export``
does (fixed size, batch 1), opened with ONNX Runtime's per-node profiler (spinning off, as in ``compare``), run in
turns, and each node's kernel time over the timed runs (warm-up runs left out) is summed by operator type and by part
of the model (backbone: the YAML's ``backbone`` rows; neck and head: the rest), and convolutions also by kind
(pointwise 1x1, depthwise, non-overlapping patch, dense k x k) with the GFLOP/s each kind achieves. Wall times are
noisy on a shared machine; the kernel-time split says which part and which operators make a difference, which the
wall time cannot.

    python benchmarks/onnx_profile.py --scale m --imgsz 640 --runs 6
    python benchmarks/onnx_profile.py --scale m --models benchmarks/ablations/yolov8-convmixer-p4heavy.yaml
"""

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import onnx
from ultralytics import YOLO

from ultralytics_convmixer.compare.timing import export_onnx, interleaved_medians, onnx_session, onnx_step

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules: shared helpers, models.py's naming
from common import markdown_table, write_json  # noqa: E402
from models import scaled_name  # noqa: E402

# Activations ONNX Runtime's CPU provider fuses into the convolution before them (SiLU is not one: it runs apart).
FUSED_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid")


def conv_kinds(path: Path) -> dict:
    """Map each Conv of an ONNX file, by node name and by output name, to ``(kind, GFLOPs)`` at its fixed input size.

    ONNX Runtime names the convolutions it moves to its blocked layout after their output (``<output>_nchwc``), others
    after the node, so both names are keys; a convolution that absorbed the activation after it (ReLU, say) is named
    after that activation's output, which is a key too.
    """
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*graph.value_info, *graph.output)}
    weight_shapes = {w.name: w.dims for w in graph.initializer}
    consumers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    kinds = {}
    for node in graph.node:
        if node.op_type != "Conv" or node.output[0] not in shapes:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        _, c_in_per_group, kh, kw = weight_shapes[node.input[1]]
        kernel, strides = (kh, kw), tuple(attrs.get("strides", (1, 1)))
        if attrs.get("group", 1) > 1 and c_in_per_group == 1:
            kind = f"depthwise {kh}x{kw}"
        elif kernel == (1, 1):
            kind = "pointwise 1x1"
        elif strides == kernel:
            kind = f"patch {kh}x{kw}"
        else:
            kind = f"dense {kh}x{kw}"
        out = shapes[node.output[0]]
        gflops = 2 * out[0] * out[1] * out[2] * out[3] * c_in_per_group * kh * kw / 1e9
        kinds[node.name] = kinds[node.output[0]] = (kind, gflops)
        after = consumers[node.output[0]]
        if len(after) == 1 and after[0].op_type in FUSED_ACTIVATIONS:
            kinds[after[0].output[0]] = (kind, gflops)
    return kinds


def at_scale(yaml_path: str, scale: str) -> str:
    """Name ``dir/yolov8-NAME.yaml`` at a scale, as ``models.py --variants`` does; other names are already scaled."""
    try:
        return scaled_name(yaml_path, scale)
    except ValueError:
        return yaml_path  # already named at a scale, e.g. yolov8m-convmixer-p4heavy.yaml


def kernel_times(profile: list, backbone_rows: int, runs: int, convs: dict | None = None) -> dict:
    """Sum the node kernel times of a profile's last ``runs`` runs (ms per run) by operator type and part of the model.

    With ``convs`` (from ``conv_kinds``) also Conv kernel time and GFLOPs per kind of convolution, under ``"convs"``.
    """
    by_op, by_part = collections.Counter(), collections.Counter()
    by_kind = collections.defaultdict(lambda: {"ms": 0.0, "gflops": 0.0})
    # Only the last ``runs`` runs count: the first ones also allocate buffers and pack weights.
    starts = sorted(e["ts"] for e in profile if e.get("cat") == "Session" and e["name"] == "model_run")
    first_timed = starts[-runs] if len(starts) >= runs else 0
    for event in profile:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time") or event["ts"] < first_timed:
            continue
        ms = event["dur"] / 1000 / runs
        layer = event["name"].split("/")[1] if event["name"].count("/") > 1 else ""  # "/model.12/cv1/conv/Conv..."
        index = int(layer.split(".")[1]) if layer.startswith("model.") else None
        part = "other" if index is None else "backbone" if index < backbone_rows else "neck+head"
        by_op[event["args"]["op_name"]] += ms
        by_part[part] += ms
        node = event["name"][: -len("_kernel_time")]
        kind, gflops = (convs or {}).get(node.removesuffix("_nchwc"), (None, 0.0))
        if kind:
            by_kind[kind]["ms"] += ms
            by_kind[kind]["gflops"] += gflops / runs  # per run, like ms
    result = {"total": sum(by_part.values()), "parts": dict(by_part), "ops": dict(by_op)}
    if convs is not None:
        result["convs"] = {k: {**v, "gflop_per_s": v["gflops"] / v["ms"] * 1000} for k, v in by_kind.items() if v["ms"]}
    return result


def profile(names: list, imgsz: int, runs: int, warmup: int) -> list:
    """Return per model ``{"model", "wall_ms", "total", "parts", "ops", "convs"}`` (kernel times in ms per run)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [YOLO(name) for name in names]
        paths = [export_onnx(m, Path(tmp) / Path(n).with_suffix(".onnx").name, imgsz, dynamic=False)
                 for m, n in zip(models, names)]  # fmt: skip
        sessions = [onnx_session(p, profile_prefix=str(p.with_suffix(""))) for p in paths]
        steps = [{"onnx": (onnx_step(s, imgsz, 1), lambda: None)} for s in sessions]
        walls = interleaved_medians(steps, runs, warmup)
        for name, model, path, session, wall in zip(names, models, paths, sessions, walls):
            events = json.loads(Path(session.end_profiling()).read_text())
            row = kernel_times(events, len(model.model.yaml["backbone"]), runs, conv_kinds(path))
            rows.append({"model": name, "wall_ms": wall["onnx"], **row})
    return rows


def markdown(rows: list, top: int = 6) -> str:
    """One table: wall time, kernel time in total, per part and for the slowest operator types, with ratios to stock."""
    stock, others = rows[0], rows[1:]
    ops = sorted({op for r in rows for op in r["ops"]}, key=lambda op: -max(r["ops"].get(op, 0) for r in rows))
    keys = [("wall (median)", "wall_ms", None), ("kernels: total", "total", None)]
    keys += [(f"kernels: {part}", "parts", part) for part in ("backbone", "neck+head", "other")]
    keys += [(f"op: {op}", "ops", op) for op in ops[:top]]
    table = [
        {"label": label, "ms": [r[key] if sub is None else r[key].get(sub, 0.0) for r in rows]}
        for label, key, sub in keys
    ]
    columns = [("ms per run", "label"), (stock["model"], lambda t: t["ms"][0], "{:.1f}")]
    for i, r in enumerate(others, 1):
        columns.append((r["model"], lambda t, i=i: t["ms"][i], "{:.1f}"))
        columns.append(("ratio", lambda t, i=i: t["ms"][i] / t["ms"][0] if t["ms"][0] else None, "{:.2f}x"))
    return markdown_table(table, columns)


def conv_markdown(rows: list) -> str:
    """Convolutions by kind: kernel time, GFLOPs and achieved GFLOP/s per model."""
    kinds = sorted(
        {k for r in rows for k in r["convs"]}, key=lambda k: -max(r["convs"].get(k, {}).get("ms", 0) for r in rows)
    )
    table = [{"kind": kind, "convs": [r["convs"].get(kind) for r in rows]} for kind in kinds]
    columns = [("convolutions", "kind")]
    for i, r in enumerate(rows):
        for header, key, fmt in ((f"{r['model']}: ms", "ms", "{:.1f}"), ("GFLOPs", "gflops", "{:.2f}"),
                                 ("GFLOP/s", "gflop_per_s", "{:.0f}")):  # fmt: skip
            columns.append((header, lambda t, i=i, key=key: (t["convs"][i] or {}).get(key), fmt))
    return markdown_table(table, columns)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="n")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=[], help="other ConvMixer YAMLs: yolov8-NAME.yaml or at scale")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    packaged = [f"yolov8{args.scale}.yaml", f"yolov8{args.scale}-convmixer.yaml"]
    names = packaged + [at_scale(m, args.scale) for m in args.models]
    rows = profile(names, args.imgsz, args.runs, args.warmup)
    print(markdown(rows), conv_markdown(rows), sep="\n\n")
    if args.json:
        write_json(args.json, rows)

"""The report of ``compare``: a Markdown table with ratios to the first model, a CSV of raw numbers, and a plot.

Columns, in the table's order (how each is measured is documented where it is measured):

- ``params (M)``, ``GFLOPs``: the model's size (:mod:`.profile`).
- the task's accuracy columns (``mAP50(B)``, ``mAP50-95(B)``, ..., ``accuracy_top1``/``accuracy_top5``,
  ``mIoU``/``pixel_acc`` or ``delta1``/``abs_rel``/``rmse``), ``s/epoch`` and ``peak mem (MB)``: measured by training
  (:mod:`.runs`); empty for untrained models (``--no-train``).
- ``PyTorch b<N> (ms)`` and ``ONNX b<N> (ms)``: latency at each batch size measured (:mod:`.profile`); the columns
  follow the batch sizes, so a CPU comparison has batch 1 columns only unless ``--batches`` asks for more.

The CSV has one row per model with raw numbers (params as a count, times in s or ms, memory in MB), every metric a
model reported (precision and recall too), the device, ONNX Runtime provider, weights and run folder.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from .data import DataSpec
from .profile import RUNTIMES, WARMUP_RUNS, latency_key

# Metric columns shown in the Markdown table, per task (the CSV also has precision and recall).
TABLE_METRICS = {
    "detect": ["mAP50(B)", "mAP50-95(B)"],
    "obb": ["mAP50(B)", "mAP50-95(B)"],
    "segment": ["mAP50(B)", "mAP50-95(B)", "mAP50(M)", "mAP50-95(M)"],
    "pose": ["mAP50(B)", "mAP50-95(B)", "mAP50(P)", "mAP50-95(P)"],
    "classify": ["accuracy_top1", "accuracy_top5"],
    "semantic": ["mIoU", "pixel_acc"],
    "depth": ["delta1", "abs_rel", "rmse"],  # the CSV also has delta2, delta3 and silog
}
# Accuracy plotted against latency and GFLOPs, per task (higher is better for each).
PLOT_METRIC = {
    "detect": "mAP50-95(B)",
    "obb": "mAP50-95(B)",
    "segment": "mAP50-95(M)",
    "pose": "mAP50-95(P)",
    "classify": "accuracy_top1",
    "semantic": "mIoU",
    "depth": "delta1",
}
CSV_HEAD = ["model", "source", "task", "params", "gflops", "imgsz"]
CSV_TRAINING = ["epochs", "s_per_epoch", "train_wall_s", "peak_gpu_mem_mb", "peak_rss_mb"]
CSV_END = ["device", "onnx_provider", "weights", "run_dir"]
_LATENCY_KEY = re.compile(r"^(?:pt|onnx)_b(\d+)_ms$")


def latency_batches(rows: list[dict[str, Any]]) -> list[int]:
    """Return the batch sizes the rows' latency was measured at (``latency_batches``, or read from their keys).

    Args:
        rows (list[dict[str, Any]]): One result per model.

    Returns:
        (list[int]): Batch sizes, ascending.
    """
    batches = {int(b) for r in rows for b in r.get("latency_batches", ())}
    batches |= {int(m.group(1)) for r in rows for m in map(_LATENCY_KEY.match, r) if m}
    return sorted(batches)


def latency_columns(batches: list[int]) -> list[tuple[str, str]]:
    """Return ``(row key, table header)`` of each latency column: PyTorch at each batch size, then ONNX.

    Args:
        batches (list[int]): Batch sizes measured.

    Returns:
        (list[tuple[str, str]]): Such as ``("pt_b1_ms", "PyTorch b1 (ms)")``.
    """
    return [(latency_key(rt, b), f"{label} b{b} (ms)") for rt, label in RUNTIMES for b in batches]


def _fmt(x: Any, digits: int | None = None) -> str:
    if x is None or x == "":
        return ""
    if digits is not None:
        return f"{x:.{digits}f}"
    ax = abs(x)
    return f"{x:.0f}" if ax >= 100 else f"{x:.1f}" if ax >= 10 else f"{x:.2f}" if ax >= 1 else f"{x:.3g}"


def _cell(x: Any, base: Any = None, digits: int | None = None) -> str:
    """Format a number, followed by its ratio to ``base`` when there is one."""
    text = _fmt(x, digits)
    return f"{text} ({x / base:.2f}×)" if text and base else text


def _peak_mem(row: dict[str, Any]) -> float | None:
    return row.get("peak_gpu_mem_mb") if row.get("peak_gpu_mem_mb") is not None else row.get("peak_rss_mb")


def metric_columns(rows: list[dict[str, Any]], task: str) -> list[str]:
    """Return the metric columns of the CSV: the table's for the task, then any other metric a model reported.

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.

    Returns:
        (list[str]): Metric names.
    """
    cols = list(TABLE_METRICS[task])
    for row in rows:
        cols += [k for k in row.get("metrics", {}) if k not in cols]
    return cols


def markdown_table(rows: list[dict[str, Any]], task: str) -> str:
    """Return the comparison as a Markdown table, with ratios against the first model (the baseline).

    Args:
        rows (list[dict[str, Any]]): One result per model (see :func:`~.command.compare`).
        task (str): The models' task.

    Returns:
        (str): The table.
    """
    metrics, latency = TABLE_METRICS[task], latency_columns(latency_batches(rows))
    header = ["model", "params (M)", "GFLOPs", *metrics, "s/epoch", "peak mem (MB)", *(h for _, h in latency)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for i, r in enumerate(rows):
        b = rows[0] if i else {}  # no ratios on the baseline's own row
        cells = [
            r["name"],
            _cell(r["params"] / 1e6, b and b["params"] / 1e6, 2),
            _cell(r["gflops"], b.get("gflops")),
            *(_fmt(r.get("metrics", {}).get(m), 3) for m in metrics),
            _cell(r.get("s_per_epoch"), b.get("s_per_epoch")),
            _cell(_peak_mem(r), b and _peak_mem(b), 0),
            *(_cell(r.get(k), b.get(k)) for k, _ in latency),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv_value(x: Any) -> Any:
    return float(f"{x:.6g}") if isinstance(x, float) else x


def write_csv(rows: list[dict[str, Any]], task: str, path: Path) -> None:
    """Write one CSV row per model with raw numbers (params as a count, times in s or ms, memory in MB).

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.
        path (Path): The CSV file.
    """
    metrics = metric_columns(rows, task)
    tail = CSV_TRAINING + [k for k, _ in latency_columns(latency_batches(rows))] + CSV_END
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*CSV_HEAD, *metrics, *tail])
        for r in rows:
            values = {**r, "model": r["name"], "train_wall_s": r.get("wall_s"), "run_dir": r.get("save_dir")}
            cells = [values.get(k) for k in CSV_HEAD] + [r.get("metrics", {}).get(m) for m in metrics]
            w.writerow([_csv_value(x) for x in cells + [values.get(k) for k in tail]])


def plot(rows: list[dict[str, Any]], task: str, path: Path) -> None:
    """Plot accuracy against PyTorch latency at the smallest batch measured and against GFLOPs, a point per model.

    Without accuracy (``--no-train``) parameters are plotted instead.

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.
        path (Path): The PNG file.
    """
    from matplotlib.figure import Figure

    metric = PLOT_METRIC[task]
    accuracy = all(r.get("metrics", {}).get(metric) is not None for r in rows)
    ys = [r["metrics"][metric] if accuracy else r["params"] / 1e6 for r in rows]
    ylabel = metric if accuracy else "params (M)  (not trained: no accuracy)"
    batch = (latency_batches(rows) or [1])[0]
    fig = Figure(figsize=(11, 4.5), tight_layout=True)
    axes = fig.subplots(1, 2)
    xlabels = (f"PyTorch latency, batch {batch} (ms)", "GFLOPs")
    for ax, key, xlabel in zip(axes, (latency_key("pt", batch), "gflops"), xlabels):
        for x, y, r in zip((r.get(key) for r in rows), ys, rows):
            if x is not None and y is not None:
                ax.scatter([x], [y], s=40)
                ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
        ax.margins(x=0.25, y=0.2)  # room for the labels
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{ylabel.split()[0]} vs latency ({rows[0].get('device_name', '')})")
    axes[1].set_title(f"{ylabel.split()[0]} vs GFLOPs (imgsz {rows[0].get('imgsz')})")
    fig.savefig(path, dpi=120)


def _warmup_text(row: dict[str, Any]) -> str:
    """Say how many warm-up runs the latencies had: ``3 warm-up runs``, or ``3 warm-up runs (1 at batch 32)``."""
    counts = sorted((row.get("warmup_runs") or {}).items())
    if not counts:
        return f"{WARMUP_RUNS} warm-up runs"
    first = counts[0][1]
    other = [f"{n} at batch {b}" for b, n in counts if n != first]
    return f"{first} warm-up runs" + (f" ({', '.join(other)})" if other else "")


def notes(rows: list[dict[str, Any]], task: str, data: DataSpec, args: dict[str, Any], trained: bool) -> str:
    """Return the lines under the table: task, data, device, training arguments, and how the numbers were taken.

    Args:
        rows (list[dict[str, Any]]): One result per model.
        task (str): The models' task.
        data (DataSpec): The dataset.
        args (dict[str, Any]): Training arguments.
        trained (bool): Whether the models were trained.

    Returns:
        (str): A Markdown list.
    """
    r = rows[0]
    gpu = any(x.get("peak_gpu_mem_mb") is not None for x in rows)
    mem = "torch.cuda.max_memory_allocated during training" if gpu else "peak RSS of the training process"
    shown = " ".join(f"{k}={v}" for k, v in args.items())
    lines = [
        f"task: {task}; data: {data.arg}; imgsz: {r.get('imgsz')}; latency device: {r.get('device_name')}"
        f"; ONNX Runtime provider: {r.get('onnx_provider') or 'n/a'}",
        f"training arguments: {shown}" if trained else "not trained (--no-train): accuracy, time and memory are empty",
        f"ratios (×) are against the first model, {r['name']}; latency is the median of {r.get('latency_runs')} runs"
        f" after {_warmup_text(r)}, the models taking turns" + (f"; peak mem is {mem}." if trained else "."),
    ]
    checks = [(x["name"], c) for x in rows for c in x.get("dwconv_checks") or []]
    if checks:
        failed = [f"{name}: {c['dtype']} {c['layout']} {c['shape']} k{c['k']} ({c['failed']})" for name, c in checks
                  if c["failed"]]  # fmt: skip
        lines.append(f"Triton depthwise self-check during training: {len(checks)} cases, {len(failed)} failed"
                     + (f": {'; '.join(failed)}" if failed else ""))  # fmt: skip
    return "\n".join(f"- {ln}" for ln in lines)

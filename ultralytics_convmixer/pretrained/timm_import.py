"""Import a timm ConvMixer (the paper's ImageNet weights) into an Ultralytics YOLO checkpoint.

The paper's checkpoints are published through timm: ``convmixer_768_32.in1k`` (ReLU, kernel 7, patch 7),
``convmixer_1024_20_ks9_p14.in1k`` and ``convmixer_1536_20.in1k`` (GELU, kernel 9, patches 14 and 7). A timm ConvMixer
is a patch-embedding stem (conv -> act -> BN) and ``depth`` blocks ``residual(depthwise conv -> act -> BN)`` then
``pointwise conv -> act -> BN``: exactly :class:`~ultralytics_convmixer.nn.modules.ConvMixerBlock` with
``shortcut=False`` and the paper's ``conv-act-bn`` order. :func:`import_timm` builds a YOLO model whose
``ConvMixerBackbone`` (``isotropic8`` or ``isotropic16``) has that trunk, copies every timm tensor but the ImageNet
classifier into it by value (biases and BatchNorm statistics as they are), and writes an Ultralytics checkpoint.

Two changes make the trunk a YOLO backbone, both exact where they can be:

- Input normalization: timm feeds ``(x - mean) / std`` (ImageNet's by default), YOLO feeds ``x`` in [0, 1]. The stem
  has no padding, so the normalization folds into its weights and bias exactly.
- Stride: YOLO needs strides 8, 16, 32. Patch 7 becomes 8 and patch 14 becomes 16 by resizing the stem kernel
  (:mod:`~ultralytics_convmixer.pretrained.patch_resize`); the trunk then sees what timm's saw on the image resized
  by 8/7.

The neck and head are the packaged YOLOv8 ones at the stock scale whose model is nearest in GFLOPs (or the scale
asked for); the pyramid to P3/P4/P5 and everything after the trunk start from random weights.

timm is needed only for a timm model name (``pip install 'ultralytics-convmixer[timm]'``); files and instances are
read without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from ..integration.resources import FAMILY_TASKS, SCALES, TASK_SUFFIXES, model_yaml
from .options import DEFAULT_RESIZE, TimmImportError, check_output
from .patch_resize import RESIZE_METHODS, resize_kernel
from .timm_source import ACT_ASSUMED, TrunkConfig, is_classifier, read_source, tensor_layout

__all__ = [
    "ImportResult",
    "TimmImportError",
    "TrunkConfig",
    "build_trunk",
    "import_timm",
    "read_source",
    "write_model_yaml",
]

# The imported models take the packaged YOLOv8 necks and heads (the neck is sized to the trunk by YOLOv8's scales).
IMPORT_TASKS = FAMILY_TASKS["yolov8"]


@dataclass
class ImportResult:
    """What :func:`import_timm` built.

    Attributes:
        model (nn.Module): The Ultralytics model (eval mode, float32).
        config (TrunkConfig): The trunk read off the source.
        task (str): The model's task.
        scale (str): The stock YOLOv8 scale of the neck and head.
        loaded (List[str]): timm tensor names copied into the model.
        left_out (Dict[str, str]): timm tensor names not copied, with the reason.
        checkpoint (Path | None): The file written, if any.
    """

    model: nn.Module
    config: TrunkConfig
    task: str
    scale: str
    loaded: List[str] = field(default_factory=list)
    left_out: Dict[str, str] = field(default_factory=dict)
    checkpoint: Optional[Path] = None

    def summary(self) -> str:
        """Say what was loaded, changed, left out and written, as ``ultralytics-convmixer import-timm`` prints it."""
        c = self.config
        params = sum(p.numel() for p in self.model.parameters()) / 1e6
        lines = [
            f"{c.source}: {c.describe()}",
            *([f"  {ACT_ASSUMED.format('--act relu')}"] if c.act_assumed else []),
            f"  loaded {len(self.loaded)} timm tensors by value into model.0 (ConvMixerBackbone): stem (conv, BN) and "
            f"trunk blocks 0-{c.depth - 1} (depthwise and pointwise conv with bias, BN with running statistics)",
            f"  stem conv: input mean {_fmt(c.mean)} / std {_fmt(c.std)} folded into its weights and bias"
            + (f"; kernel {c.patch}x{c.patch} resized to {c.stride}x{c.stride}" if c.patch != c.stride else ""),
        ]
        lines += [f"  left out {name}: {why}" for name, why in self.left_out.items()]
        head = "classify" if self.task == "classify" else f"{self.task} neck and head"
        lines.append(f"  new (random init): the P3/P4/P5 pyramid of model.0, then the YOLOv8{self.scale} {head}")
        where = f"wrote {self.checkpoint}" if self.checkpoint else "not saved"
        lines.append(f"  {where}: task {self.task}, nc {self.model.yaml['nc']}, {params:.1f}M parameters")
        return "\n".join(lines)


def _fmt(values: Tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


# ----------------------------------------------------------------------------------------------------------------------
# Converting the tensors
# ----------------------------------------------------------------------------------------------------------------------
def fold_input_normalization(
    weight: torch.Tensor, bias: torch.Tensor, mean: Tuple[float, ...], std: Tuple[float, ...]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold ``(x - mean) / std`` into an unpadded conv: ``conv(x; w', b') == conv((x - mean) / std; w, b)``.

    Exact only without padding: a padded border would see ``-mean / std`` instead of 0.

    Args:
        weight (torch.Tensor): Conv weight ``(out, in, k, k)``.
        bias (torch.Tensor): Conv bias ``(out,)``.
        mean (Tuple[float, ...]): Per-input-channel mean, ``in`` values.
        std (Tuple[float, ...]): Per-input-channel standard deviation, ``in`` values.

    Returns:
        (Tuple[torch.Tensor, torch.Tensor]): ``w'`` and ``b'``, in the dtypes of ``weight`` and ``bias``.
    """
    m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    w = weight.to(torch.float64) / s
    b = bias.to(torch.float64) - (w * m).sum(dim=(1, 2, 3))
    return w.to(weight.dtype), b.to(bias.dtype)


def trunk_state_dict(
    state: Dict[str, torch.Tensor], trunk: TrunkConfig, patch: Optional[int] = None, resize: str = DEFAULT_RESIZE
) -> Dict[str, torch.Tensor]:
    """Rename the timm tensors to ``ConvMixerBackbone``'s, with the stem conv folded and resized to ``patch``.

    Args:
        state (Dict[str, Tensor]): The timm state dict (checked by :func:`read_trunk`).
        trunk (TrunkConfig): Its shape.
        patch (int | None): Patch size of the result's stem; None: the YOLO stride ``trunk.stride``.
        resize (str): Kernel resize method, a key of ``patch_resize.RESIZE_METHODS``.

    Returns:
        (Dict[str, Tensor]): Keys ``stem.*`` and ``trunk.*``, as in ``ConvMixerBackbone.state_dict()``.
    """
    if resize not in RESIZE_METHODS:
        raise TimmImportError(f"resize must be one of {sorted(RESIZE_METHODS)}, got {resize!r}")
    layout = tensor_layout(trunk)
    ours = {layout[name][0]: t.clone() for name, t in state.items() if name in layout}
    w, b = fold_input_normalization(state["stem.0.weight"], state["stem.0.bias"], trunk.mean, trunk.std)
    ours["stem.conv.weight"] = resize_kernel(w, patch or trunk.stride, resize)
    ours["stem.conv.bias"] = b
    return ours


def build_trunk(
    state: Dict[str, torch.Tensor], trunk: TrunkConfig, patch: Optional[int] = None, resize: str = DEFAULT_RESIZE
) -> nn.Module:
    """Build the trunk alone, as the imported backbone has it: stem and blocks, taking [0, 1] images.

    At ``patch=trunk.patch`` it computes timm's ``forward_features`` of the normalized image; at the default (the
    YOLO stride) it is the backbone's trunk. Used to check and measure the import (``benchmarks/patch_resize.py``).

    Args:
        state (Dict[str, Tensor]): The timm state dict.
        trunk (TrunkConfig): Its shape.
        patch (int | None): Patch size of the stem; None: ``trunk.stride``.
        resize (str): Kernel resize method for a patch size other than timm's.

    Returns:
        (nn.Module): ``stem`` then ``trunk``, in eval mode.
    """
    from collections import OrderedDict

    from ..nn.modules import ConvMixerBlock, FixedEpsBatchNorm2d, PatchEmbed
    from ..nn.options import PAPER_ORDER

    norm = FixedEpsBatchNorm2d
    blocks = (ConvMixerBlock(trunk.dim, trunk.kernel, trunk.act, False, PAPER_ORDER, norm) for _ in range(trunk.depth))
    module = nn.Sequential(
        OrderedDict(
            stem=PatchEmbed(trunk.in_chans, trunk.dim, patch or trunk.stride, trunk.act, PAPER_ORDER, norm),
            trunk=nn.Sequential(*blocks),
        )
    )
    _fill(module, trunk_state_dict(state, trunk, patch, resize), "")
    return module.eval()


def _fill(module: nn.Module, tensors: Dict[str, torch.Tensor], prefix: str) -> None:
    """Copy converted tensors into ``module``: each onto one of its shape, and every stem and trunk tensor filled.

    A failure here is a planner or module change, not the user's input, hence RuntimeError.
    """
    own = module.state_dict()
    for name, t in tensors.items():
        if name not in own or own[name].shape != t.shape:
            raise RuntimeError(f"{prefix}{name}: no tensor of shape {tuple(t.shape)} in the built backbone")
    unfilled = [
        f"{prefix}{name}"
        for name in own
        if name.split(".")[0] in {"stem", "trunk"} and not name.endswith("num_batches_tracked") and name not in tensors
    ]
    if unfilled:
        raise RuntimeError(f"the import left {len(unfilled)} trunk tensors of the built backbone unset: {unfilled}")
    module.load_state_dict(tensors, strict=False)


# ----------------------------------------------------------------------------------------------------------------------
# The YOLO model
# ----------------------------------------------------------------------------------------------------------------------
def model_dict(
    trunk: TrunkConfig, task: str, scale: str, nc: Optional[int] = None, depth: Optional[int] = None
) -> Dict[str, Any]:
    """Return the imported model's dict: the packaged YOLOv8 ``task`` YAML with the trunk as its backbone row.

    The dict keeps only ``scale`` of the packaged ``scales``, so the neck, head and pyramid are that scale's; the
    trunk's width and depth are taken as written. For classify, only the pyramid level at the trunk's stride is
    built, and the head reads it (no resampling before the global pool).

    Args:
        trunk (TrunkConfig): The trunk.
        task (str): One of :data:`IMPORT_TASKS`.
        scale (str): Stock YOLOv8 scale of the neck and head.
        nc (int | None): Class count (default: the packaged YAML's).
        depth (int | None): Blocks of the trunk (default ``trunk.depth``; fewer only to count FLOPs per block).

    Returns:
        (Dict[str, Any]): The model dict, as a model YAML parses, for ``integration.checkpoints.build_model``.
    """
    import yaml  # PyYAML, a dependency of Ultralytics

    packaged = model_yaml(f"yolov8-convmixer{TASK_SUFFIXES[task]}.yaml")
    d = yaml.safe_load(packaged.read_text(encoding="utf-8"))
    channels = list(d["backbone"][0][3][0])
    if task == "classify":  # the Index row's level moves to the trunk's stride, the other levels are not built
        index_row = next(row for row in d["backbone"] + d["head"] if row[2] == "Index" and row[0] == 0)
        level = (8, 16, 32).index(trunk.stride)
        channels = [channels[index_row[3][1]] if i == level else 0 for i in range(3)]
        index_row[3] = [channels[level], level]
    d["backbone"][0] = [
        -1,
        1,
        "ConvMixerBackbone",
        [channels, trunk.depth if depth is None else depth, trunk.kernel, trunk.design, trunk.act, False,
         "conv-act-bn", trunk.dim],
    ]  # fmt: skip
    d["scales"], d["scale"] = {scale: d["scales"][scale]}, scale
    d["nc"] = d["nc"] if nc is None else nc
    d["yaml_file"] = f"yolov8{scale}-convmixer{trunk.dim}-{trunk.depth}{TASK_SUFFIXES[task]}.yaml"
    return d


def _imgsz(task: str) -> int:
    return 224 if task == "classify" else 640


def _gflops(model: nn.Module, imgsz: int) -> float:
    from ultralytics.utils.torch_utils import get_flops

    gflops = get_flops(model, imgsz)
    if not gflops or gflops <= 0:  # get_flops returns 0 when thop is missing or its profiling fails
        raise TimmImportError(
            "cannot count GFLOPs to choose the scale of the neck and head (Ultralytics' get_flops returned 0: thop "
            "is missing or profiling failed); pass --scale (Python: scale='n', 's', 'm', 'l' or 'x')"
        )
    return gflops


def nearest_scale(trunk: TrunkConfig, task: str) -> str:
    """Return the stock YOLOv8 scale nearest in GFLOPs to the imported model with that scale's neck and head.

    Ratios are compared on a log scale at 640 px (classify 224 px). The trunk's FLOPs are counted by Ultralytics'
    counter on one- and two-block trunks, so no full-depth candidate is built.

    Args:
        trunk (TrunkConfig): The imported trunk.
        task (str): One of :data:`IMPORT_TASKS`.

    Returns:
        (str): A letter of ``resources.SCALES``.

    Raises:
        TimmImportError: If the GFLOPs cannot be counted (then the scale must be given).
    """
    from ..integration.checkpoints import build_model

    imgsz = _imgsz(task)
    one, two = (_gflops(build_model(model_dict(trunk, task, "n", depth=k), task), imgsz) for k in (1, 2))
    blocks = (trunk.depth - 1) * (two - one)

    def distance(scale: str) -> float:
        ours = _gflops(build_model(model_dict(trunk, task, scale, depth=1), task), imgsz) + blocks
        stock = _gflops(build_model(f"yolov8{scale}{TASK_SUFFIXES[task]}.yaml", task), imgsz)
        return abs(math.log(ours / stock))

    return min(SCALES, key=distance)


def _load_trunk(model: nn.Module, state: Dict[str, torch.Tensor], trunk: TrunkConfig, resize: str) -> List[str]:
    """Convert the timm tensors and copy them into layer 0 of ``model``; return the timm names loaded."""
    tensors = trunk_state_dict(state, trunk, resize=resize)
    _fill(model.model[0], tensors, "model.0.")
    layout = tensor_layout(trunk)
    return [name for name in state if name in layout and layout[name][0] in tensors]


def import_timm(
    source: Union[str, Path, nn.Module],
    task: str = "detect",
    out: Optional[Union[str, Path]] = None,
    nc: Optional[int] = None,
    act: Optional[str] = None,
    scale: Optional[str] = None,
    resize: str = DEFAULT_RESIZE,
    force: bool = False,
) -> ImportResult:
    """Turn a timm ConvMixer into an Ultralytics YOLO model and, with ``out``, a checkpoint to fine-tune from.

    Args:
        source (str | Path | nn.Module): A timm model name (``convmixer_1024_20_ks9_p14.in1k``), a timm checkpoint
            file (``.pth``, ``.pt``, ``.bin``, ``.safetensors``, ``.pth.tar``) or a folder with one (see
            :func:`~ultralytics_convmixer.pretrained.timm_source.read_source`), or a ``timm.create_model(...)``
            ConvMixer.
        task (str): ``detect``, ``segment``, ``pose``, ``obb`` or ``classify``.
        out (str | Path | None): Checkpoint to write; None writes nothing.
        nc (int | None): Class count (default: the packaged YAML's, e.g. 80 for detect).
        act (str | None): Activation of a bare checkpoint file (default ``gelu``, which the result then says it
            assumed); one of ``resources.ACTIVATION_NAMES``.
        scale (str | None): Stock YOLOv8 scale of the neck and head (default: :func:`nearest_scale`).
        resize (str): Stem kernel resize method (``pi`` or ``bilinear``).
        force (bool): Overwrite ``out`` if it exists.

    Returns:
        (ImportResult): The model and what was loaded; ``result.summary()`` says it in words.

    Examples:
        >>> from ultralytics_convmixer import import_timm
        >>> import_timm("convmixer_768_32.in1k", task="detect", out="yolo-convmixer768-in1k.pt")
    """
    if task not in IMPORT_TASKS:
        raise TimmImportError(f"unknown task {task!r}; choose from {', '.join(IMPORT_TASKS)}")
    if scale is not None and scale not in tuple(SCALES):  # a letter, not any substring of SCALES
        raise TimmImportError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise TimmImportError(f"nc must be a positive integer, got {nc!r}")
    out = None if out is None else check_output(out, force, TimmImportError)
    state, trunk = read_source(source, act)
    from ..integration.checkpoints import build_model, save_checkpoint

    scale = scale or nearest_scale(trunk, task)
    model = build_model(model_dict(trunk, task, scale, nc), task)
    loaded = _load_trunk(model, state, trunk, resize)
    model.eval()
    result = ImportResult(model, trunk, task, scale, loaded)
    result.left_out = {
        name: f"timm's classifier head {tuple(t.shape)}; the YOLO {task} head replaces it"
        for name, t in state.items()
        if is_classifier(name)
    }
    if out is not None:
        save_checkpoint(model, out, task, _imgsz(task), _record(result, resize))
        result.checkpoint = out
    return result


def _record(result: ImportResult, resize: str) -> Dict[str, Any]:
    """Return what the checkpoint keeps about its import (plain types, for Ultralytics' safe loading)."""
    c = result.config
    return {
        "source": c.source,
        "trunk": {"dim": c.dim, "depth": c.depth, "kernel": c.kernel, "patch": c.patch, "act": c.act},
        "act_assumed": c.act_assumed,
        "stride": c.stride,
        "input_mean": list(c.mean),
        "input_std": list(c.std),
        "stem_resize": resize if c.patch != c.stride else None,
        "scale": result.scale,
        "loaded": len(result.loaded),
        "left_out": dict(result.left_out),
    }


def write_model_yaml(result: ImportResult, path: Union[str, Path]) -> Path:
    """Write the imported model's architecture as a model YAML: the same model, to train from scratch or edit.

    Args:
        result (ImportResult): What :func:`import_timm` returned.
        path (str | Path): The YAML file; name it with the scale letter (``yolov8l-...yaml``) to match its ``scales``.

    Returns:
        (Path): The file written.
    """
    import yaml  # PyYAML, a dependency of Ultralytics

    def flow(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("...\n").strip()

    lines = [f"# YOLOv8{result.scale} {result.task} on {result.config.describe()}, from {result.config.source}"]
    for key, value in result.model.yaml.items():
        if key in {"backbone", "head"}:
            lines += [f"{key}:", *(f"  - {flow(row)}" for row in value)]
        elif key == "scales":
            lines += [f"{key}:", *(f"  {s}: {flow(v)}" for s, v in value.items())]
        elif key not in {"yaml_file", "channels", "scale"}:  # Ultralytics sets these when it loads the file
            lines.append(f"{key}: {flow(value)}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

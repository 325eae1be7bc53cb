"""Import a timm ConvMixer (the paper's ImageNet weights) into an Ultralytics YOLO checkpoint.

The paper's checkpoints are published through timm: ``convmixer_768_32.in1k`` (ReLU, kernel 7, patch 7),
``convmixer_1024_20_ks9_p14.in1k`` and ``convmixer_1536_20.in1k`` (GELU, kernel 9, patches 14 and 7). A timm ConvMixer
is a patch-embedding stem (conv -> act -> BN) and ``depth`` blocks ``residual(depthwise conv -> act -> BN)`` then
``pointwise conv -> act -> BN``: exactly :class:`~ultralytics_convmixer.modules.ConvMixerBlock` with
``shortcut=False`` and the paper's ``conv-act-bn`` order. :func:`import_timm` builds a YOLO model whose
``ConvMixerBackbone`` (``isotropic8`` or ``isotropic16``) has that trunk, copies every timm tensor but the ImageNet
classifier into it by value (biases and BatchNorm statistics as they are), and writes an Ultralytics checkpoint.

Two changes make the trunk a YOLO backbone, both exact where they can be:

- Input normalization: timm feeds ``(x - mean) / std`` (ImageNet's by default), YOLO feeds ``x`` in [0, 1]. The stem
  has no padding, so the normalization folds into its weights and bias exactly.
- Stride: YOLO needs strides 8, 16, 32. Patch 7 becomes 8 and patch 14 becomes 16 by resizing the stem kernel
  (:mod:`~ultralytics_convmixer.patch_resize`); the trunk then sees what timm's saw on the image resized by 8/7.

The neck and head are the packaged YOLOv8 ones at the stock scale whose model is nearest in GFLOPs (or the scale
asked for); the pyramid to P3/P4/P5 and everything after the trunk start from random weights.

timm is needed only for a timm model name (``pip install 'ultralytics-convmixer[timm]'``); files and instances are
read without it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .patch_resize import DEFAULT_RESIZE, RESIZE_METHODS
from .resources import TASK_SUFFIXES, TASKS, model_yaml

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm's IMAGENET_DEFAULT_MEAN, what the paper's weights were trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
SCALES = "nslmx"
ACTIVATION_NAMES = {nn.GELU: "gelu", nn.ReLU: "relu", nn.SiLU: "silu", nn.Hardswish: "hardswish"}
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for in a Hugging Face repo, in this order


class TimmImportError(ValueError):
    """A source, task or output the import cannot take; the message names it and what to do."""


@dataclass(frozen=True)
class TrunkConfig:
    """The shape of a ConvMixer trunk, as read off a timm model or checkpoint.

    Args:
        dim (int): Width.
        depth (int): Number of blocks.
        kernel (int): Depthwise kernel size.
        patch (int): Patch size of the stem (its stride in timm).
        act (str): Activation name.
        in_chans (int): Image channels.
        mean (tuple): Per-channel input mean the weights expect (on [0, 1] images).
        std (tuple): Per-channel input standard deviation.
        source (str): Where it came from, for messages.
    """

    dim: int
    depth: int
    kernel: int
    patch: int
    act: str = "gelu"
    in_chans: int = 3
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    source: str = ""

    @property
    def stride(self) -> int:
        """The YOLO stride the trunk runs at: 8 for patches up to 11 (the paper's 7), else 16 (its 14)."""
        return 8 if self.patch < 12 else 16

    @property
    def design(self) -> str:
        """The ``ConvMixerBackbone`` design with this trunk's stride."""
        return f"isotropic{self.stride}"

    def describe(self) -> str:
        """One line: ``ConvMixer-768/32, kernel 7, patch 7 -> stride 8, relu``."""
        shape = f"ConvMixer-{self.dim}/{self.depth}, kernel {self.kernel}"
        return f"{shape}, patch {self.patch} -> stride {self.stride}, {self.act}"


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
# Reading the source
# ----------------------------------------------------------------------------------------------------------------------
def _layout(dim: int, depth: int, kernel: int, patch: int, in_chans: int) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Every tensor of a timm ConvMixer but its head: timm name -> (name in ConvMixerBackbone, shape)."""
    layout: Dict[str, Tuple[str, Tuple[int, ...]]] = {}

    def conv(timm_name: str, ours: str, shape: Tuple[int, ...]) -> None:
        layout[f"{timm_name}.weight"], layout[f"{timm_name}.bias"] = (f"{ours}.weight", shape), (f"{ours}.bias", (dim,))

    def norm(timm_name: str, ours: str) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{timm_name}.{name}"] = (f"{ours}.{name}", (dim,))
        layout[f"{timm_name}.num_batches_tracked"] = (f"{ours}.num_batches_tracked", ())

    conv("stem.0", "stem.conv", (dim, in_chans, patch, patch))
    norm("stem.2", "stem.bn")
    for i in range(depth):
        conv(f"blocks.{i}.0.fn.0", f"trunk.{i}.dw.conv", (dim, 1, kernel, kernel))
        norm(f"blocks.{i}.0.fn.2", f"trunk.{i}.dw.bn")
        conv(f"blocks.{i}.1", f"trunk.{i}.pw.conv", (dim, dim, 1, 1))
        norm(f"blocks.{i}.3", f"trunk.{i}.pw.bn")
    return layout


def _is_head(name: str) -> bool:
    return name.split(".")[0] == "head"


def read_trunk(state: Dict[str, torch.Tensor], source: str, **config: Any) -> TrunkConfig:
    """Read a ConvMixer's shape off a timm state dict and check that every tensor fits it.

    Args:
        state (Dict[str, Tensor]): A timm ConvMixer's ``state_dict``.
        source (str): Its name or file, for messages.
        **config (Any): ``act``, ``mean``, ``std`` of the :class:`TrunkConfig`.

    Returns:
        (TrunkConfig): The trunk.

    Raises:
        TimmImportError: Naming the first tensor that does not fit a ConvMixer, with both shapes.
    """
    first = next(iter(state.items()), None)
    stem = state.get("stem.0.weight")
    if first is None:
        raise TimmImportError(f"{source}: holds no tensors")
    if stem is None or stem.ndim != 4 or stem.shape[-1] != stem.shape[-2]:
        name, t = first
        raise TimmImportError(
            f"{source}: not a timm ConvMixer checkpoint: its first tensor '{name}' {tuple(t.shape)} does not fit "
            "(a ConvMixer starts with 'stem.0.weight' of shape (dim, 3, patch, patch))"
        )
    depth = 0
    while f"blocks.{depth}.0.fn.0.weight" in state:
        depth += 1
    if depth == 0:
        raise TimmImportError(f"{source}: not a timm ConvMixer checkpoint: it has no 'blocks.0.0.fn.0.weight'")
    dim, in_chans, patch = stem.shape[0], stem.shape[1], stem.shape[-1]
    kernel = state["blocks.0.0.fn.0.weight"].shape[-1]
    trunk = TrunkConfig(dim, depth, kernel, patch, in_chans=in_chans, source=source, **config)
    _check_fits(state, trunk)
    return trunk


def _check_fits(state: Dict[str, torch.Tensor], trunk: TrunkConfig) -> None:
    layout = _layout(trunk.dim, trunk.depth, trunk.kernel, trunk.patch, trunk.in_chans)
    what = f"ConvMixer-{trunk.dim}/{trunk.depth} (kernel {trunk.kernel}, patch {trunk.patch})"
    for name, t in state.items():
        if _is_head(name):
            continue
        if name not in layout:
            raise TimmImportError(f"{trunk.source}: tensor '{name}' {tuple(t.shape)} is not part of a {what}")
        if tuple(t.shape) != layout[name][1]:
            raise TimmImportError(
                f"{trunk.source}: tensor '{name}' has shape {tuple(t.shape)}, but a {what} needs {layout[name][1]}"
            )
    missing = [n for n in layout if n not in state and not n.endswith("num_batches_tracked")]
    if missing:
        raise TimmImportError(f"{trunk.source}: tensor '{missing[0]}' {layout[missing[0]][1]} of a {what} is missing")


def _state_dict(obj: Any, source: str) -> Dict[str, torch.Tensor]:
    """Return a loaded checkpoint's tensors: the dict itself or its ``state_dict``/``model`` entry, no ``module.``."""
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TimmImportError(f"{source}: not a checkpoint of tensors (a state dict); got {type(obj).__name__}")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def _load_file(path: Path) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file's tensors without running any code from it (weights_only / safetensors)."""
    if not path.is_file():
        raise TimmImportError(f"checkpoint file not found: {path}")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise TimmImportError(f"{path}: reading .safetensors needs safetensors: pip install safetensors") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        first = " ".join(str(e).split())[:200]
        raise TimmImportError(f"{path}: not a checkpoint torch or safetensors can read ({first})") from None
    return _state_dict(obj, str(path))


def _from_module(model: nn.Module, source: str, act: Optional[str]) -> Tuple[Dict[str, torch.Tensor], TrunkConfig]:
    if type(model).__name__ != "ConvMixer" or not isinstance(getattr(model, "stem", None), nn.Sequential):
        raise TimmImportError(f"{source}: not a timm ConvMixer (got {type(model).__name__})")
    model_act = ACTIVATION_NAMES.get(type(model.stem[1]))
    if model_act is None:
        raise TimmImportError(f"{source}: activation {type(model.stem[1]).__name__} has no plugin counterpart")
    if act is not None and act != model_act:
        raise TimmImportError(f"{source} uses {model_act}; act={act!r} contradicts it (leave it out)")
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return state, read_trunk(state, source, act=model_act, mean=mean, std=std)


def _import_timm(why: str):
    try:
        import timm
    except ImportError:
        raise TimmImportError(
            f"{why} needs timm: pip install 'ultralytics-convmixer[timm]' (or pass a checkpoint file instead)"
        ) from None
    return timm


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("YOLO_OFFLINE", "HF_HUB_OFFLINE"))


def _cached_hub_file(repo: str) -> Optional[str]:
    """Return the path of a timm weights file of ``repo`` in the Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in HUB_FILES:
        path = try_to_load_from_cache(repo, name)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def _from_timm_name(name: str, act: Optional[str]) -> Tuple[Dict[str, torch.Tensor], TrunkConfig]:
    """Create a pretrained timm model by name: from the Hugging Face cache, else downloaded (unless offline)."""
    timm = _import_timm(f"the timm model name '{name}'")
    convmixers = timm.list_models("convmixer*", pretrained=True)
    if name not in convmixers and name not in {n.split(".")[0] for n in convmixers}:
        known = "an unknown timm name" if not timm.is_model(name) else "not a ConvMixer"
        raise TimmImportError(f"'{name}' is {known}; the timm ConvMixers are {', '.join(convmixers)}")
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id or f"timm/{name}"
    cached = _cached_hub_file(repo)
    if cached is None and _offline():
        raise TimmImportError(_download_hint(name, repo, "offline (YOLO_OFFLINE or HF_HUB_OFFLINE is set)"))
    try:
        overlay = {"file": cached} if cached else None
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as e:  # noqa: BLE001 - no network, no hub access, a broken cache: all end here
        raise TimmImportError(_download_hint(name, repo, " ".join(str(e).split())[:200])) from None
    return _from_module(model, name, act)


def _download_hint(name: str, repo: str, why: str) -> str:
    act = " --act relu" if "768_32" in name else ""
    return (
        f"cannot get the weights of timm model '{name}': {why}. On a machine with internet, fetch "
        f"https://huggingface.co/{repo}/resolve/main/{HUB_FILES[0]} and either pass that file as SOURCE "
        f"(ultralytics-convmixer import-timm {HUB_FILES[0]}{act} ...) or put it in this machine's Hugging Face cache "
        f"(`hf download {repo}` there, then copy ~/.cache/huggingface/hub here)"
    )


def read_source(source: Union[str, Path, nn.Module], act: Optional[str] = None) -> Tuple[Dict, TrunkConfig]:
    """Read a timm ConvMixer from a model name, a checkpoint file or a model instance.

    Args:
        source (str | Path | nn.Module): ``convmixer_768_32.in1k``, ``model.safetensors``, or a timm ConvMixer.
        act (str | None): Activation of a bare checkpoint file (``gelu`` if None); a name or instance has its own.

    Returns:
        (Tuple[dict, TrunkConfig]): The timm state dict and the trunk's shape.
    """
    if isinstance(source, nn.Module):
        return _from_module(source, f"timm {type(source).__name__} instance", act)
    path = Path(str(source)).expanduser()
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or path.exists():
        state = _load_file(path)
        return state, read_trunk(state, str(path), act=act or "gelu")
    return _from_timm_name(str(source), act)


# ----------------------------------------------------------------------------------------------------------------------
# Converting the tensors
# ----------------------------------------------------------------------------------------------------------------------
def fold_input_normalization(
    weight: torch.Tensor, bias: torch.Tensor, mean: Tuple[float, ...], std: Tuple[float, ...]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold ``(x - mean) / std`` into an unpadded conv: ``conv(x; w', b') == conv((x - mean) / std; w, b)``."""
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
    layout = _layout(trunk.dim, trunk.depth, trunk.kernel, trunk.patch, trunk.in_chans)
    ours = {layout[name][0]: t.clone() for name, t in state.items() if name in layout}
    w, b = fold_input_normalization(state["stem.0.weight"], state["stem.0.bias"], trunk.mean, trunk.std)
    ours["stem.conv.weight"] = RESIZE_METHODS[resize](w, patch or trunk.stride)
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

    from .modules import PAPER_ORDER, ConvMixerBlock, FixedEpsBatchNorm2d, PatchEmbed

    norm = FixedEpsBatchNorm2d
    blocks = (ConvMixerBlock(trunk.dim, trunk.kernel, trunk.act, False, PAPER_ORDER, norm) for _ in range(trunk.depth))
    module = nn.Sequential(
        OrderedDict(
            stem=PatchEmbed(trunk.in_chans, trunk.dim, patch or trunk.stride, trunk.act, PAPER_ORDER, norm),
            trunk=nn.Sequential(*blocks),
        )
    )
    module.load_state_dict(trunk_state_dict(state, trunk, patch, resize), strict=False)
    return module.eval()


# ----------------------------------------------------------------------------------------------------------------------
# The YOLO model
# ----------------------------------------------------------------------------------------------------------------------
def model_dict(trunk: TrunkConfig, task: str, scale: str, nc: Optional[int] = None, depth: Optional[int] = None):
    """Return the imported model's dict: the packaged YOLOv8 ``task`` YAML with the trunk as its backbone row.

    The dict keeps only ``scale`` of the packaged ``scales``, so the neck, head and pyramid are that scale's; the
    trunk's width and depth are taken as written. For classify, only the pyramid level at the trunk's stride is
    built, and the head reads it (no resampling before the global pool).

    Args:
        trunk (TrunkConfig): The trunk.
        task (str): One of ``resources.TASKS``.
        scale (str): Stock YOLOv8 scale of the neck and head.
        nc (int | None): Class count (default: the packaged YAML's).
        depth (int | None): Blocks of the trunk (default ``trunk.depth``; fewer only to count FLOPs per block).
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

    return get_flops(model, imgsz)


def nearest_scale(trunk: TrunkConfig, task: str) -> str:
    """Return the stock YOLOv8 scale nearest in GFLOPs to the imported model with that scale's neck and head.

    Ratios are compared on a log scale at 640 px (classify 224 px). The trunk's FLOPs are counted by Ultralytics'
    counter on one- and two-block trunks, so no full-depth candidate is built.
    """
    from .integration import build_model

    imgsz = _imgsz(task)
    one, two = (_gflops(build_model(model_dict(trunk, task, "n", depth=k), task), imgsz) for k in (1, 2))
    blocks = (trunk.depth - 1) * (two - one)

    def distance(scale: str) -> float:
        ours = _gflops(build_model(model_dict(trunk, task, scale, depth=1), task), imgsz) + blocks
        stock = _gflops(build_model(f"yolov8{scale}{TASK_SUFFIXES[task]}.yaml", task), imgsz)
        return abs(math.log(ours / stock))

    return min(SCALES, key=distance)


def _load_trunk(model: nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    """Copy the converted tensors into layer 0 of ``model``; every one must land on a tensor of the same shape."""
    backbone = model.model[0]
    own = backbone.state_dict()
    for name, t in tensors.items():
        if name not in own or own[name].shape != t.shape:  # a planner or module change, not the user's input
            raise RuntimeError(f"model.0.{name}: no tensor of shape {tuple(t.shape)} in the built backbone")
    backbone.load_state_dict(tensors, strict=False)


def _check_out(out: Optional[Union[str, Path]], force: bool) -> Optional[Path]:
    if out is None:
        return None
    out = Path(out).expanduser()
    if out.suffix != ".pt":
        raise TimmImportError(f"--out must be a .pt file (an Ultralytics checkpoint), got {out}")
    if out.exists() and not force:
        raise TimmImportError(f"{out} exists; pass --force (Python: force=True) to overwrite it")
    if not out.parent.is_dir():
        raise TimmImportError(f"{out}: folder {out.parent} does not exist")
    return out


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
            file (``.pth``, ``.pt``, ``.bin``, ``.safetensors``) or a ``timm.create_model(...)`` ConvMixer.
        task (str): ``detect``, ``segment``, ``pose``, ``obb`` or ``classify``.
        out (str | Path | None): Checkpoint to write; None writes nothing.
        nc (int | None): Class count (default: the packaged YAML's, e.g. 80 for detect).
        act (str | None): Activation of a bare checkpoint file (default ``gelu``).
        scale (str | None): Stock YOLOv8 scale of the neck and head (default: :func:`nearest_scale`).
        resize (str): Stem kernel resize method (``pi`` or ``bilinear``).
        force (bool): Overwrite ``out`` if it exists.

    Returns:
        (ImportResult): The model and what was loaded; ``result.summary()`` says it in words.

    Examples:
        >>> from ultralytics_convmixer import import_timm
        >>> import_timm("convmixer_768_32.in1k", task="detect", out="yolo-convmixer768-in1k.pt")
    """
    if task not in TASKS:
        raise TimmImportError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if scale is not None and scale not in SCALES:
        raise TimmImportError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise TimmImportError(f"nc must be a positive integer, got {nc!r}")
    out = _check_out(out, force)
    state, trunk = read_source(source, act)
    from .integration import build_model, save_checkpoint

    scale = scale or nearest_scale(trunk, task)
    model = build_model(model_dict(trunk, task, scale, nc), task)
    _load_trunk(model, trunk_state_dict(state, trunk, resize=resize))
    model.eval()
    result = ImportResult(model, trunk, task, scale)
    layout = _layout(trunk.dim, trunk.depth, trunk.kernel, trunk.patch, trunk.in_chans)
    result.loaded = [name for name in state if name in layout]
    result.left_out = {
        name: f"timm's classifier head {tuple(t.shape)}; the YOLO {task} head replaces it"
        for name, t in state.items()
        if _is_head(name)
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

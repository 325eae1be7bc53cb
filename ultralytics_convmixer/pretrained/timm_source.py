"""Read a timm ConvMixer: from a timm model name, a checkpoint file or a model instance, checked tensor by tensor.

A timm ConvMixer's tensors are ``stem.0`` (patch conv), ``stem.2`` (BN), and per block ``blocks.i.0.fn.0``
(depthwise conv), ``blocks.i.0.fn.2`` (BN), ``blocks.i.1`` (pointwise conv), ``blocks.i.3`` (BN), then ``head`` (the
classifier). :func:`read_source` returns them with the trunk's shape (:class:`TrunkConfig`); anything else is refused
with the first tensor that does not fit. timm itself is imported only for a model name.

A bare checkpoint file does not record its activation: it is read as GELU (two of the paper's three models) unless
``act`` says otherwise, and the import says that it assumed it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..nn.modules import ACTIVATION_MODULES
from ..nn.options import ACTIVATIONS
from .options import TimmImportError

__all__ = ["TimmImportError", "TrunkConfig", "is_classifier", "read_source", "read_trunk", "tensor_layout"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm's IMAGENET_DEFAULT_MEAN, what the paper's weights were trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".pth.tar")  # .pth.tar: timm's train.py
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for in a Hugging Face repo, in this order
DEFAULT_ACT = "gelu"
# What the import says of a bare file's activation; ``{}`` is how to pass another (``--act relu``, ``act='relu'``).
ACT_ASSUMED = (
    f"activation {DEFAULT_ACT} assumed (a bare checkpoint file does not record it; pass {{}} for convmixer_768_32)"
)
_ACTIVATION_OF = {
    module: name for name, module in ACTIVATION_MODULES.items()
}  # nn.GELU -> "gelu", as a timm model has it
_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # torch's errors highlight their advice in terminal colours


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
        act_assumed (bool): ``act`` is the default, not read off the source (a bare checkpoint file).
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
    act_assumed: bool = False

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


# ----------------------------------------------------------------------------------------------------------------------
def tensor_layout(trunk: TrunkConfig) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Map every tensor of a timm ConvMixer but its head to its name in ``ConvMixerBackbone`` and its shape.

    Args:
        trunk (TrunkConfig): The trunk's shape.

    Returns:
        (Dict[str, Tuple[str, Tuple[int, ...]]]): timm name -> (name in ``ConvMixerBackbone``, shape), in
            ``state_dict`` order.
    """
    dim, depth, kernel, patch, in_chans = trunk.dim, trunk.depth, trunk.kernel, trunk.patch, trunk.in_chans
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


def is_classifier(name: str) -> bool:
    """Return whether a timm ConvMixer tensor belongs to its classifier (``head``), which the import leaves out.

    Args:
        name (str): A timm tensor name such as ``head.weight``.

    Returns:
        (bool): True for the classifier's tensors.
    """
    return name.split(".")[0] == "head"


def read_trunk(state: Dict[str, torch.Tensor], source: str, **config: Any) -> TrunkConfig:
    """Read a ConvMixer's shape off a timm state dict and check that every tensor fits it.

    Args:
        state (Dict[str, Tensor]): A timm ConvMixer's ``state_dict``.
        source (str): Its name or file, for messages.
        **config (Any): ``act``, ``mean``, ``std``, ``act_assumed`` of the :class:`TrunkConfig`.

    Returns:
        (TrunkConfig): The trunk.

    Raises:
        TimmImportError: Naming the first tensor that does not fit a ConvMixer, with both shapes, or the channel
            count, mean and std of a model that does not take RGB images.
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
    if not trunk.in_chans == len(trunk.mean) == len(trunk.std) == 3:  # YOLO feeds RGB; the stem folds mean and std
        raise TimmImportError(
            f"{source}: the import takes models of RGB images (in_chans 3, a mean and std of 3 values each); got "
            f"in_chans {trunk.in_chans}, mean {trunk.mean}, std {trunk.std}"
        )
    _check_fits(state, trunk)
    return trunk


def _check_fits(state: Dict[str, torch.Tensor], trunk: TrunkConfig) -> None:
    layout = tensor_layout(trunk)
    what = f"ConvMixer-{trunk.dim}/{trunk.depth} (kernel {trunk.kernel}, patch {trunk.patch})"
    for name, t in state.items():
        if is_classifier(name):
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
    entry = obj
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            entry = obj[key]
            break
    if not isinstance(entry, dict) or not entry or not all(isinstance(v, torch.Tensor) for v in entry.values()):
        raise TimmImportError(
            f"{source}: not a state dict (a dict of tensors, itself or under 'state_dict' or 'model'); {_describe(obj)}"
        )
    return {re.sub(r"^module\.", "", k): v for k, v in entry.items()}  # as saved from DataParallel / DDP


def _describe(obj: Any) -> str:
    """Say what a loaded checkpoint is, for an error: its type, or a dict's top-level keys."""
    if not isinstance(obj, dict):
        return f"got {type(obj).__name__}"
    keys = list(obj)
    shown = ", ".join(repr(k) for k in keys[:12]) + (f", ... ({len(keys)} keys)" if len(keys) > 12 else "")
    return f"got a dict with keys {shown}" if keys else "got an empty dict"


def _reason(e: BaseException) -> str:
    """Return an exception's own reason on one line, at most 200 characters, without colour codes or torch's advice."""
    text = _ANSI_CODE.sub("", str(e))
    text = text.split("WeightsUnpickler error:")[-1].split("Check the documentation of torch.load")[0]
    return " ".join(text.split())[:200] or type(e).__name__


def _checkpoint_file(path: Path) -> Path:
    """Return the file to read for ``path``: the file itself, or a folder's timm weights file (a hub download)."""
    if path.is_dir():
        for name in HUB_FILES:
            if (path / name).is_file():
                return path / name
        raise TimmImportError(f"{path} is a folder without {' or '.join(HUB_FILES)}")
    if not path.is_file():
        raise TimmImportError(f"checkpoint file not found: {path}")
    return path


def _load_file(path: Path) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file's tensors without running any code from it (safetensors, or torch's weights_only)."""
    obj = _load_safetensors(path) if path.suffix.lower() == ".safetensors" else _load_pickle(path)
    return _state_dict(obj, str(path))


def _load_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise TimmImportError(f"{path}: reading .safetensors needs safetensors: pip install safetensors") from None
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        raise TimmImportError(f"{path}: not a .safetensors file safetensors can read ({_reason(e)})") from None


def _namespace_allowed():
    """Allow ``argparse.Namespace`` in a weights-only load: in the ``with`` block (torch 2.5+), or for the process."""
    if hasattr(torch.serialization, "safe_globals"):
        return torch.serialization.safe_globals([argparse.Namespace])
    torch.serialization.add_safe_globals([argparse.Namespace])  # torch 2.4
    return contextlib.nullcontext()


def _load_pickle(path: Path) -> Any:
    unreadable = f"{path}: not a checkpoint torch or safetensors can read"
    try:
        with _namespace_allowed():  # timm's train.py saves its args beside them
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", _ANSI_CODE.sub("", str(e)))
        if unsupported is None:
            raise TimmImportError(f"{unreadable} ({_reason(e)})") from None
        raise TimmImportError(
            f"{path}: holds pickled objects other than tensors (unsupported global {unsupported[1]}), which are not "
            "loaded because unpickling them can run code; save the weights alone, "
            "torch.save(model.state_dict(), 'weights.pth'), and pass that file"
        ) from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        raise TimmImportError(f"{unreadable} ({_reason(e)})") from None


def _from_module(model: nn.Module, source: str, act: Optional[str]) -> Tuple[Dict[str, torch.Tensor], TrunkConfig]:
    if type(model).__name__ != "ConvMixer" or not isinstance(getattr(model, "stem", None), nn.Sequential):
        raise TimmImportError(f"{source}: not a timm ConvMixer (got {type(model).__name__})")
    model_act = _ACTIVATION_OF.get(type(model.stem[1]))
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
        raise TimmImportError(_download_hint(name, repo, _reason(e))) from None
    return _from_module(model, name, act)


def _download_hint(name: str, repo: str, why: str) -> str:
    act = " --act relu" if "768_32" in name else ""
    return (
        f"cannot get the weights of timm model '{name}': {why}. On a machine with internet, fetch "
        f"https://huggingface.co/{repo}/resolve/main/{HUB_FILES[0]} and either pass that file as SOURCE "
        f"(ultralytics-convmixer import-timm {HUB_FILES[0]}{act} ...) or put it in this machine's Hugging Face cache "
        f"(`hf download {repo}` there, then copy ~/.cache/huggingface/hub here)"
    )


def _is_file_source(source: Union[str, Path]) -> bool:
    """Whether a source names a file or folder rather than a timm model: a path, by its type, shape or existence."""
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    looks_like_path = os.sep in text or "/" in text or text.lower().endswith(CHECKPOINT_SUFFIXES)
    return looks_like_path or Path(text).expanduser().exists()


def read_source(source: Union[str, Path, nn.Module], act: Optional[str] = None) -> Tuple[Dict, TrunkConfig]:
    """Read a timm ConvMixer from a model name, a checkpoint file or folder, or a model instance.

    A Path, or a string with a folder separator or a checkpoint suffix (or naming an existing file or folder), is a
    file; a folder is read through the timm weights file in it (``model.safetensors`` or ``pytorch_model.bin``, as
    ``hf download`` leaves them). Any other string is a timm model name.

    Args:
        source (str | Path | nn.Module): ``convmixer_768_32.in1k``, ``model.safetensors``, or a timm ConvMixer.
        act (str | None): Activation of a bare checkpoint file (``gelu`` if None, with a warning that it was
            assumed); a name or instance has its own.

    Returns:
        (Tuple[dict, TrunkConfig]): The timm state dict and the trunk's shape.

    Raises:
        TimmImportError: For an unknown ``act``, or a source that cannot be read or is not a timm ConvMixer.
    """
    if act is not None and act not in ACTIVATIONS:
        raise TimmImportError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
    if isinstance(source, nn.Module):
        return _from_module(source, f"timm {type(source).__name__} instance", act)
    if not _is_file_source(source):
        return _from_timm_name(str(source), act)
    path = _checkpoint_file(Path(source).expanduser())
    state = _load_file(path)
    trunk = read_trunk(state, str(path), act=act or DEFAULT_ACT, act_assumed=act is None)
    if trunk.act_assumed:  # a ReLU model read as GELU computes other features, and nothing else would say so
        note = ACT_ASSUMED.format("act='relu'")
        warnings.warn(f"{path}: {note}", stacklevel=2)
    return state, trunk

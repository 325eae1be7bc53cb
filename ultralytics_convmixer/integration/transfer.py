"""What a pretrained checkpoint gives a ConvMixer backbone, and a warning when it gives less than all of it.

Ultralytics' ``pretrained=`` (``BaseModel.load``) copies every tensor whose name and shape match and reports the count
for the whole model ("Transferred 168/373 items"). A checkpoint of another family, scale or backbone design matches
few or none of the backbone's tensors, and the training then starts its backbone from random weights without saying
so. ``registration`` wraps ``BaseModel.load`` with :func:`warn_if_backbone_missed`, which says it and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from torch import nn

from ..nn.modules import ConvMixerBackbone


def _source_model(weights) -> nn.Module:
    """Return the model inside what ``BaseModel.load`` takes: a checkpoint dict (EMA first) or a model."""
    return (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights


def _layer0(model: nn.Module) -> Optional[nn.Module]:
    layers = getattr(model, "model", None)
    return layers[0] if isinstance(layers, nn.Sequential) and len(layers) else None


def _blocks_per_level(backbone: ConvMixerBackbone) -> List[int]:
    """ConvMixer blocks per level (a hierarchical level is its patch-merging conv, then the blocks)."""
    if backbone.design == "hierarchical":
        return [len(level) - 1 for level in backbone.levels]
    return [len(backbone.trunk)]


def _describe(model: nn.Module) -> str:
    """One line on a model's layer 0: its YAML and scale, and what the backbone is made of."""
    yaml = getattr(model, "yaml", None) or {}
    origin = f"{Path(yaml.get('yaml_file', 'a model')).name} at scale '{yaml.get('scale') or '-'}'"
    backbone = _layer0(model)
    if not isinstance(backbone, ConvMixerBackbone):
        return f"{origin}, whose layer 0 is a {type(backbone).__name__}"
    levels = ", ".join(f"{c} channels x {n} blocks" for c, n in zip(backbone.out_channels, _blocks_per_level(backbone)))
    return f"{origin}, a {backbone.design} ConvMixerBackbone of {levels}"


def _reason(source: nn.Module, target: nn.Module) -> str:
    """Why ``source``'s layer 0 does not fit ``target``'s ConvMixerBackbone: another design, or family or scale."""
    theirs, ours = _layer0(source), _layer0(target)
    if not isinstance(theirs, ConvMixerBackbone):
        kind = "another backbone design"
    elif theirs.design != ours.design:
        kind = f"another backbone design ({theirs.design}, not {ours.design})"
    else:
        kind = "another family or scale"
    return f"it is {_describe(source)}; this model is {_describe(target)}: {kind}"


def warn_if_backbone_missed(model: nn.Module, weights, warn) -> None:
    """Warn through ``warn`` when ``weights`` give ``model``'s ConvMixerBackbone (layer 0) fewer than all its tensors.

    Args:
        model (nn.Module): An Ultralytics model after ``model.load(weights)``.
        weights (dict | nn.Module): What it loaded, a checkpoint dict or a model (``pt_path`` names its file).
        warn (Callable[[str], None]): Where the warning goes (Ultralytics' ``LOGGER.warning``).
    """
    if not isinstance(_layer0(model), ConvMixerBackbone):
        return
    source = _source_model(weights)
    available = source.state_dict()
    # BatchNorm batch counters are scalars that every checkpoint "fits": they say nothing of the backbone
    ours = {k: v for k, v in model.state_dict().items() if k.startswith("model.0.") and "num_batches" not in k}
    fitting = [k for k, v in ours.items() if k in available and available[k].shape == v.shape]
    if len(fitting) == len(ours):
        return
    file = getattr(source, "pt_path", None) or "the pretrained weights"
    got = "none" if not fitting else f"only {len(fitting)}"
    warn(
        f"{file}: {got} of the {len(ours)} tensors of this model's ConvMixerBackbone (layer 0) are in it, so the "
        f"backbone starts {'from random weights' if not fitting else 'partly from random weights'}; "
        f"{_reason(source, model)}. Pretrain at this model's family and scale (a -cls model of it, or distill)."
    )

"""String options of the ConvMixer modules and of distillation; the argument checks the modules and the planner share.

Torch-free, so that the command line can offer the names without importing torch. Each check returns the value it
accepts and raises a ``ValueError`` naming the argument; the YAML planner adds the file, layer and module.
"""

from typing import List, Literal, Tuple, get_args

Activation = Literal["gelu", "silu", "relu", "hardswish"]
Order = Literal["conv-act-bn", "conv-bn-act", "conv-bn-add-act"]
"""Where each layer's BatchNorm sits, and where a block adds its residual:

- ``conv-act-bn``: the paper's, ``BN(act(conv(x)))``, the residual added after the BatchNorm;
- ``conv-bn-act``: YOLOv8's ``Conv``, ``act(BN(conv(x)))``, so the BatchNorm folds into the convolution;
- ``conv-bn-add-act``: ResNet's, ``act(residual + BN(conv(x)))``, which ONNX Runtime fuses into one CPU kernel.
"""
Design = Literal["hierarchical", "isotropic16", "isotropic8"]

DistillLoss = Literal["cosine", "mse", "both"]  # ``nn.distill``'s losses

ACTIVATIONS: Tuple[str, ...] = get_args(Activation)
ORDERS: Tuple[str, ...] = get_args(Order)
DISTILL_LOSSES: Tuple[str, ...] = get_args(DistillLoss)
DISTILL_LEVELS = ("P3", "P4", "P5")  # a ConvMixerBackbone's outputs, strides 8, 16 and 32, that distillation can teach
DEFAULT_DISTILL_LEVELS, DEFAULT_DISTILL_LOSS = ",".join(DISTILL_LEVELS), "cosine"
DESIGNS: Tuple[str, ...] = get_args(Design)
PAPER_ORDER: Order = "conv-act-bn"
DESIGN_ALIASES = {"isotropic": "isotropic16"}
ISOTROPIC_STRIDES = {"isotropic16": 16, "isotropic8": 8}  # an isotropic trunk's stride, which is its patch size


def check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_ints(name: str, values, length: int, minimum: int = 1) -> List[int]:
    """Return ``values`` as a list if it holds ``length`` integers >= ``minimum`` (one per level P3, P4, P5)."""
    if not isinstance(values, (list, tuple)) or len(values) != length:
        raise ValueError(f"{name} must be a list of {length} integers (P3, P4, P5), got {values!r}")
    return [check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values)]


def check_kernel(name: str, k) -> int:
    """Return ``k`` if it is an odd kernel size >= 3 (odd so that "same" padding keeps the feature-map size)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 3 (padding k // 2 keeps the size), got {k!r}")
    return k


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (YAML ``true``/``false``), else raise a ValueError naming the argument."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_activation(act) -> Activation:
    """Return the activation name ``act`` stands for (any case) if it is one of ``ACTIVATIONS``."""
    if not isinstance(act, str) or act.lower() not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    return act.lower()


def check_order(order) -> Order:
    """Return ``order`` if it is one of ``ORDERS``."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
    return order


def check_design(design) -> Design:
    """Return the design ``design`` stands for (an alias resolved) if it is one of ``DESIGNS``."""
    design = DESIGN_ALIASES.get(design, design) if isinstance(design, str) else design
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {list(DESIGNS)} (or 'isotropic'), got {design!r}")
    return design

"""The plan of a model YAML's rows: plugin rows sized and built like native rows, before ``parse_model`` runs.

Ultralytics' ``parse_model`` knows only its own modules: a row of an unknown module gets no input channels and no
width scaling. :class:`Planner` walks the rows once, tracking each layer's output channels by parse_model's rules
(read off the installed release where they differ between releases), builds every plugin row with its real input
channels, scaled output channels and depth-scaled repeats, and checks the ``Index`` rows that select levels of a
``ConvMixerBackbone``. ``integration`` hands the plan to parse_model.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
from typing import Any, Callable, Dict, List

from torch import nn

from ..nn import modules as cm
from ..nn.options import check_int, check_ints

# The plugin modules, by the name a YAML row gives.
PLUGIN_MODULES: Dict[str, type] = {
    "ConvMixerBlock": cm.ConvMixerBlock,
    "PatchEmbed": cm.PatchEmbed,
    "ConvMixerStage": cm.ConvMixerStage,
    "ConvMixerBackbone": cm.ConvMixerBackbone,
}
# YAML arguments each plugin module takes after the injected input channels (n is injected for ConvMixerStage).
YAML_ARGS = {
    "ConvMixerBlock": ["k", "act", "shortcut", "order"],
    "PatchEmbed": ["c2", "p", "act", "order"],
    "ConvMixerStage": ["c2", "k", "act", "shortcut", "order"],
    "ConvMixerBackbone": ["channels", "depths", "k", "design", "act", "shortcut", "order", "dim"],
}
# Native modules whose first argument is an output channel count scaled by width (parse_model's ``base_modules``;
# Classify's stays the class count).
SCALED_NATIVE = (
    "Classify Conv ConvTranspose GhostConv Bottleneck GhostBottleneck SPP SPPF C2fPSA C2PSA DWConv Focus BottleneckCSP "
    "C1 C2 C2f C3k2 RepNCSPELAN4 ELAN1 ADown AConv SPPELAN C2fAttn C3 C3TR C3Ghost DWConvTranspose2d C3x RepC3 PSA "
    "SCDown C2fCIB A2C2f nn.ConvTranspose2d"
).split()


# Native modules whose output channels parse_model sets in ways the planner does not follow (lists, heads).
CHANNELS_NOT_MODELLED = {"CBLinear", "AIFI", "RTDETRDecoder", "ImagePoolingAttn"}
# Native modules with a channel rule of their own in parse_model that _plan_native_row follows case by case.
CHANNELS_MODELLED = {"Concat", "HGStem", "HGBlock", "ResNetLayer", "CBFuse", "Index", "TorchVision"}
# Heads (no row reads their output) and modules whose output channels are their input's, parse_model's default.
CHANNELS_AS_INPUT = {
    "nn.BatchNorm2d",
    *("Detect WorldDetect YOLOEDetect v10Detect Segment YOLOESegment Pose OBB Classify".split()),
    *("Segment26 YOLOESegment26 Pose26 OBB26 SemanticSegment Depth".split()),
}
# Every module parse_model gives a rule of its own, as far as the planner knows (a guard test reads parse_model's
# source: a release that adds one fails there, before a user's YAML meets it).
KNOWN_TO_PARSE_MODEL = {*SCALED_NATIVE, *CHANNELS_NOT_MODELLED, *CHANNELS_MODELLED, *CHANNELS_AS_INPUT}
# What a model YAML may name that the oldest supported Ultralytics lacks (YOLO26 and its tasks), with the first
# release that has it: an older one gets an error naming that release instead of a failure deep in parse_model.
ULTRALYTICS_SINCE = {
    "end2end": ("8.4.0", "YOLO26's end-to-end heads"),  # a top-level YAML key
    "reg_max": ("8.4.0", "YOLO26's box regression setting"),
    "Segment26": ("8.4.0", "YOLO26"),
    "Pose26": ("8.4.0", "YOLO26"),
    "OBB26": ("8.4.0", "YOLO26"),
    "SemanticSegment": ("8.4.52", "the semantic task"),
    "Depth": ("8.4.104", "the depth task"),
}


@functools.cache
def _keeps_nc_channels_unscaled(parse: Callable) -> bool:
    """Whether this Ultralytics leaves a row unscaled by width when its channels equal ``nc`` (8.3 does, 8.4 not).

    Asked of the original ``parse_model`` itself, with a one-layer model, rather than read off a version number.
    """
    d = {"nc": 16, "depth_multiple": 1.0, "width_multiple": 0.5, "backbone": [[-1, 1, "Conv", [16, 3]]], "head": []}
    layers, _ = parse(d, 3, verbose=False)
    return layers[0].conv.out_channels == 16


class PlanError(ValueError):
    """A plugin row of a model YAML is wrong; the message names the file, layer, module and argument."""


def _release(version: str) -> tuple:
    """``"8.4.190"`` -> ``(8, 4, 190)``, for comparing releases."""
    return tuple(int(x) for x in version.split(".")[:3] if x.isdigit())


def check_release(d: dict, file: str) -> None:
    """Fail with the Ultralytics release a model dict's keys or modules need, where the installed one is older.

    Args:
        d (dict): The model dict (a parsed model YAML).
        file (str): Its file, for the message.

    Raises:
        PlanError: Naming the file, the key or layer, the release it needs and the installed one.
    """
    from ultralytics import __version__

    rows = [row for row in d.get("backbone", []) + d.get("head", []) if isinstance(row, (list, tuple)) and len(row) > 2]
    needs = [(key, f"'{key}:'") for key in d if key in ULTRALYTICS_SINCE]
    needs += [(row[2], f"layer {i} ({row[2]})") for i, row in enumerate(rows) if row[2] in ULTRALYTICS_SINCE]
    for name, what in needs:
        since, feature = ULTRALYTICS_SINCE[name]
        if _release(__version__) < _release(since):
            raise PlanError(
                f"{file}: {what} needs Ultralytics {since} or newer ({feature}); this is Ultralytics {__version__}: "
                f"pip install -U 'ultralytics>={since}'"
            )


def _literal(a):
    """Evaluate a YAML string argument the way parse_model does for literals, leaving names such as ``gelu`` alone."""
    if isinstance(a, str):
        try:
            return ast.literal_eval(a)
        except (ValueError, SyntaxError):
            return a
    return a


class Planner:
    """Walk the YAML rows once, tracking each layer's output channels as parse_model does, and build plugin rows."""

    def __init__(self, d: dict, ch_in: int, parse: Callable):
        """Plan the rows of model dict ``d`` for ``ch_in`` image channels; ``parse`` is Ultralytics' own parse_model."""
        import ultralytics.nn.tasks as tasks

        self.parse = parse

        self.tasks, self.file = tasks, d.get("yaml_file", "<model dict>")
        self.nc = d.get("nc")
        self.scale, self.depth, self.width, self.max_channels = self._scaling(d, self.file)
        self.rows: List[list] = []
        self.built: Dict[int, nn.Module] = {}
        self.names: Dict[int, str] = {}
        self.table: Dict[str, str] = {}
        self.channels: List[Any] = []  # output channels per layer: int, list (multi-output backbone) or None
        self.written_levels: Dict[int, list] = {}  # ConvMixerBackbone layer -> its channels as the YAML writes them
        check_release(d, self.file)
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
            inputs = [ch_in] if i == 0 else self.channels
            self._check_module_name(i, m)
            if m in PLUGIN_MODULES:
                c2 = self._plan_plugin_row(i, f, n, m, list(args), inputs)
            else:
                c2 = self._plan_native_row(i, f, n, m, args, inputs)
            self.channels.append(c2)

    @staticmethod
    def _scaling(d: dict, file: str):
        """Scale, depth, width and max_channels as parse_model picks them (no scale: the first of ``scales``)."""
        depth, width, max_channels = d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")
        scales, scale = d.get("scales"), d.get("scale") or ""
        if scales and scale and scale not in scales:  # parse_model would fail with a bare KeyError
            raise PlanError(f"{file}: scale '{scale}' (from the file name) is not one of its scales {list(scales)}")
        if scales:
            scale = scale or next(iter(scales))
            depth, width, max_channels = scales[scale]
        return scale, depth, width, max_channels

    def _where(self, i: int, m: str) -> str:
        return f"{self.file}: layer {i} ({m})"

    def _scale_channels(self, c: int) -> int:
        return self.tasks.make_divisible(min(c, self.max_channels) * self.width, 8)

    def _scale_depth(self, n: int) -> int:
        return max(round(n * self.depth), 1) if n > 1 else n

    def _check_module_name(self, i: int, m) -> None:
        """Unknown names get a ValueError with a suggestion instead of parse_model's bare ``KeyError``."""
        if not isinstance(m, str):
            raise PlanError(f"{self.file}: layer {i}: module must be a name, got {m!r}")
        if m.startswith(("nn.", "torchvision.ops.")) or m in vars(self.tasks):
            return
        close = difflib.get_close_matches(m, [*PLUGIN_MODULES, *vars(self.tasks)], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise PlanError(f"{self.file}: layer {i}: unknown module {m!r}{hint}")

    def _input_channels(self, i: int, f, m: str, inputs: list) -> int:
        if isinstance(f, bool) or not isinstance(f, int):
            raise PlanError(f"{self._where(i, m)}: from must be a single layer index (one input), got {f!r}")
        if not -len(inputs) <= f < len(inputs):
            raise PlanError(f"{self._where(i, m)}: from={f} points to no earlier layer")
        c1 = inputs[f]
        if isinstance(c1, list):
            raise PlanError(
                f"{self._where(i, m)}: from={f} is a multi-output ConvMixerBackbone; select one level with an Index row"
            )
        if c1 is None:
            raise PlanError(f"{self._where(i, m)}: cannot tell the channels of its input (from={f})")
        return c1

    def _plan_plugin_row(self, i: int, f, n, m: str, args: list, inputs: list):
        cls, names = PLUGIN_MODULES[m], YAML_ARGS[m]
        where = self._where(i, m)
        c1 = self._input_channels(i, f, m, inputs)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PlanError(f"{where}: repeats (n) must be an integer >= 1, got {n!r}")
        if len(args) > len(names):
            raise PlanError(f"{where}: takes at most {len(names)} arguments {names}, got {len(args)}: {args}")
        kwargs = dict(zip(names, (_literal(a) for a in args)))
        missing = [k for k in names if k in {"c2", "channels"} and k not in kwargs]  # output channels are required
        if missing:
            raise PlanError(f"{where}: missing argument {missing[0]} (arguments: {names})")
        n_ = self._scale_depth(n)
        written_levels = kwargs.get("channels")  # _build replaces it with the scaled list
        try:
            module = self._build(m, cls, c1, n, n_, kwargs)
        except (ValueError, TypeError) as e:
            raise PlanError(f"{where}: {e}") from None
        if m == "ConvMixerBackbone":
            self.written_levels[i] = written_levels
        last = module[-1] if isinstance(module, nn.Sequential) else module
        c2 = module.out_channels if m == "ConvMixerBackbone" else last.c2
        shown = [c1, *(kwargs[k] for k in inspect.signature(cls).parameters if k in kwargs)]
        self.built[i], self.names[i] = module, m
        self.rows.append([f, 1, "Index", [0 if isinstance(c2, list) else c2, 0]])
        np_ = sum(p.numel() for p in module.parameters())
        prefix = f"{i:>3}{f!s:>20}"
        self.table[prefix] = f"{prefix}{n_:>3}{np_:10.0f}  {cls.__module__ + '.' + m:<44} {shown!s:<30}"
        return c2

    def _build(self, m: str, cls: type, c1: int, n: int, n_: int, kwargs: dict) -> nn.Module:
        """Scale channel and depth arguments in ``kwargs`` in place, then build the module (n_ blocks for a block)."""
        if "c2" in kwargs:
            kwargs["c2"] = self._scale_channels(check_int("c2", kwargs["c2"]))
        if m == "ConvMixerBackbone":
            self._scale_backbone_args(kwargs)
        if m in {"PatchEmbed", "ConvMixerBackbone"} and n != 1:
            raise ValueError(f"repeats (n) must be 1 for {m}, got {n}")
        if "n" in inspect.signature(cls).parameters:  # a stage takes its (depth-scaled) block count, as C2f does
            kwargs["n"] = n_
        if m == "ConvMixerBlock" and n_ > 1:
            return nn.Sequential(*(cls(c1, **kwargs) for _ in range(n_)))
        return cls(c1, **kwargs)

    def _scale_backbone_args(self, kwargs: dict) -> None:
        """Scale a ConvMixerBackbone's level channels (0: not built) and per-level depths in place.

        An isotropic trunk given by its width (``dim``) and one block count keeps them as written at every scale: a
        pretrained trunk has one size, and only its pyramid and the neck follow the scale.
        """
        kwargs["channels"] = [self._scale_channels(c) for c in check_ints("channels", kwargs["channels"], 3, 0)]
        depths = kwargs.get("depths")
        if isinstance(depths, (list, tuple)):
            kwargs["depths"] = [self._scale_depth(x) for x in check_ints("depths", depths, 3, 0)]

    def _plan_native_row(self, i: int, f, n, m: str, args: list, inputs: list):
        """Record a native row's output channels; rewrite Index rows that select a ConvMixerBackbone level."""
        row = [f, n, m, list(args)]
        self.rows.append(row)
        source = inputs[f] if isinstance(f, int) and -len(inputs) <= f < len(inputs) else None
        if m in {"Index", "TorchVision"}:
            if isinstance(source, list) and m == "Index":
                return self._plan_index_row(i, f, row, source)
            return _literal(args[0]) if args else None
        if isinstance(source, list) or (
            isinstance(f, list) and any(isinstance(inputs[x], list) for x in f if -len(inputs) <= x < len(inputs))
        ):
            raise PlanError(
                f"{self._where(i, m)}: takes the list output of a ConvMixerBackbone; select a level with an Index row"
            )
        args = [self.nc if a == "nc" else _literal(a) for a in args]
        a0 = args[0] if args else None
        if m in SCALED_NATIVE:
            if not isinstance(a0, int):
                return None
            unscaled = m == "Classify" or (a0 == self.nc and _keeps_nc_channels_unscaled(self.parse))
            return a0 if unscaled else self._scale_channels(a0)
        if m == "Concat":
            chans = [inputs[x] for x in f] if isinstance(f, list) else [None]
            return sum(chans) if all(isinstance(c, int) for c in chans) else None
        if m in {"HGStem", "HGBlock"} and len(args) > 1:
            return args[1]
        if m == "ResNetLayer" and len(args) > 3 and isinstance(args[1], int):
            return args[1] if args[3] else args[1] * 4
        if m == "CBFuse" and isinstance(f, list) and f and -len(inputs) <= f[-1] < len(inputs):
            return inputs[f[-1]]
        if m in CHANNELS_NOT_MODELLED:
            return None  # a plugin row reading this layer gets "cannot tell the channels" instead of a wrong guess
        return source  # parse_model's default: output channels = input channels

    def _plan_index_row(self, i: int, f: int, row: list, levels: List[int]) -> int:
        where = self._where(i, "Index")
        args = [_literal(a) for a in row[3]]
        level = args[1] if len(args) > 1 else 0
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(levels):
            raise PlanError(f"{where}: index must be 0..{len(levels) - 1} (P3..P5) of the backbone, got {level!r}")
        actual = levels[level]
        if not actual:
            raise PlanError(f"{where}: selects P{level + 3} of the ConvMixerBackbone, which is not built (0 channels)")
        written = args[0] if args else None
        # The YAML author writes unscaled channels, as everywhere else; the real (scaled) number is accepted too.
        if (
            isinstance(written, bool)
            or not isinstance(written, int)
            or actual not in {written, self._scale_channels(written)}
        ):
            backbone = f % len(self.channels)
            at_scale = f" at scale '{self.scale}'" if self.scale else ""
            raise PlanError(
                f"{where}: selects P{level + 3} of the ConvMixerBackbone (layer {backbone}), which has {actual} "
                f"channels{at_scale}, but the row says {written!r}; write {self.written_levels[backbone][level]}, that "
                "level's channels as the backbone row gives them (before scaling, so the row fits every scale)"
            )
        row[3] = [actual, level]
        return actual

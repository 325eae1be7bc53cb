"""Deterministic, offline "shapes" datasets for the Ultralytics tasks, generated locally from a seed.

Every image shows 0-8 geometric shapes of 13 classes on a textured, noisy background with clutter (lines, arcs,
scribbles, irregular blobs) that belongs to no class. Shapes are rotated, coloured and textured, range from about 2% to
50% of the image side and occlude each other; distractors may also be drawn over them. Labels describe what is seen:

* ``detect``: ``cls cx cy w h``, the tight box of the visible pixels.
* ``segment``: ``cls x1 y1 x2 y2 ...``, the contour of the visible pixels. Fragments split apart by an occluder and
  holes left by one are joined into one polygon by zero-width bridges (as Ultralytics' ``merge_multi_segment`` does);
  rasterised with ``cv2.fillPoly`` like Ultralytics does, it gives back the visible mask to within a pixel.
* ``pose``: the detect box plus ``K = 5`` keypoints ``x y v`` (see :data:`KPT_NAMES` and :data:`FLIP_IDX`).
* ``obb``: ``cls x1 y1 ... x4 y4``, the object's own rotated frame (amodal), corners clockwise on screen from the
  object's own top-left corner. OBB scenes keep every shape inside the image.
* ``classify``: ``<split>/<class>/<index>.jpg``, one large shape near the centre per image.
* ``semantic``: ``masks/<split>/<index>.png``, the image's size, one 8-bit class id per pixel: the shape seen there;
  the background and clutter are class ``len(classes)``, named ``background`` (last, where Ultralytics puts the
  background it adds to polygon labels); 255 (ignored) where a shape too hidden to get a label shows.
* ``depth``: ``depth/<split>/<index>.png``, 16-bit depth in millimetres (``depth_scale: 1000``) of a known synthetic
  scene: the background a tilted plane at 8-20 m, each shape a plate facing the camera at 1.5-7.5 m, nearer the
  later it is painted (so nearer shapes occlude farther ones), clutter painted on the surface behind it, no invalid
  (0) pixels. :mod:`ultralytics_convmixer.shapes_labels` details the scene and writes every label file.

Objects whose visible part is under 30% of their area (or under 12 pixels) get no label. Each image draws from its own
``numpy`` generator seeded with ``(seed, split, index)``, so the output is byte-identical whatever the number of
workers, a larger set extends a smaller one, and the detect, segment, pose, semantic and depth sets of one seed share
their images (the depth scene is drawn after the image is painted).

Keypoints: each shape is drawn in its own frame (y down, the frame is the shape's bounding box before rotation). The
keypoints are the outermost outline points along the frame's four diagonals, top-left, top-right, bottom-right,
bottom-left, then the frame centre. Every class is mirror-symmetric about its vertical axis, so a horizontal flip of
the image turns an object into the same class with the opposite rotation and its top-left point into the flipped
object's top-right point: ``FLIP_IDX = [1, 0, 3, 2, 4]``. Rotations stay within the class's rotational symmetry
(a square turns by less than 45 degrees either way, a circle never), so the frame, and hence every keypoint, can be
told from the image. Visibility: 2 seen, 1 covered by a later layer, 0 outside the image (written as ``0 0 0``).

That is the ``standard`` preset. The ``easy`` preset (:data:`PRESETS`) draws 5 of the classes, 1-4 objects per image
from 15% to 45% of the image side, and little clutter: a set a small model learns from scratch in minutes on a CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .resources import TASKS
from .shapes_labels import DEPTH_SCALE, IGNORE, LABEL_DIRS, poly_mask, write_labels

CLASSES = (  # alphabetical, so that the classify folders sort into the same indices
    "arrow",
    "circle",
    "cross",
    "diamond",
    "ellipse",
    "heart",
    "hexagon",
    "pentagon",
    "semicircle",
    "square",
    "star",
    "trapezoid",
    "triangle",
)
KPT_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left", "centre")
FLIP_IDX = (1, 0, 3, 2, 4)  # horizontal flip: left and right swap, the centre stays
MARKER = ".complete"  # JSON manifest, written last: a dataset without it is incomplete
VERSION = 1  # bump when the output for a given seed changes
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Preset:
    """How hard a shapes set is: its classes, how large and how many objects, and how much clutter.

    Attributes:
        classes (tuple[str, ...]): Shape names of :data:`CLASSES`, in label order.
        size (tuple[float, float]): Range of an object's side over the image side (log-uniform; not classify).
        objects (tuple[int, int]): Objects per image, inclusive (3% of images have none; not classify).
        clutter (tuple[int, int]): Clutter items per image, inclusive, mostly behind the objects.
        classify_clutter (tuple[int, int]): Clutter items behind the one large shape of a classify image, inclusive.
    """

    classes: tuple[str, ...]
    size: tuple[float, float]
    objects: tuple[int, int]
    clutter: tuple[int, int]
    classify_clutter: tuple[int, int]


PRESETS = {
    "standard": Preset(CLASSES, (0.02, 0.5), (1, 8), (2, 11), (2, 9)),
    # Five shapes that differ in outline, large and few per image, little clutter: a from-scratch model learns it in
    # minutes on a CPU (the README's quick start).
    "easy": Preset(("circle", "cross", "square", "star", "triangle"), (0.15, 0.45), (1, 4), (0, 3), (0, 3)),
}


# ----------------------------------------------------------------------------------------------------------- shapes
def _ngon(n: int, start_deg: float, radius: float = 0.5) -> np.ndarray:
    a = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    return radius * np.stack([np.cos(a), np.sin(a)], 1)


def _unit_shape(name: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Return a shape's outline in its own frame (y down, mirror-symmetric in x) and its rotational symmetry order.

    The outline is centred on its bounding box and scaled so that the longer side of that box is 1. Order 0 means
    any rotation maps the shape onto itself (circle).
    """
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    if name == "circle":
        p, order = _ngon(64, 0), 0
    elif name == "ellipse":
        p, order = np.stack([np.cos(t), rng.uniform(0.35, 0.7) * np.sin(t)], 1), 2
    elif name == "square":
        p, order = _ngon(4, 45), 4
    elif name == "diamond":
        r = rng.uniform(0.45, 0.75)
        p, order = [[0, -1], [r, 0], [0, 1], [-r, 0]], 2
    elif name == "triangle":
        p, order = _ngon(3, -90), 3
    elif name == "pentagon":
        p, order = _ngon(5, -90), 5
    elif name == "hexagon":
        p, order = _ngon(6, 0), 6
    elif name == "star":
        p, order = _ngon(10, -90), 5
        p[1::2] *= rng.uniform(0.38, 0.5)
    elif name == "cross":
        w = rng.uniform(0.15, 0.2)
        p = np.array([[-w, -0.5], [w, -0.5], [w, -w], [0.5, -w], [0.5, w], [w, w], [w, 0.5], [-w, 0.5], [-w, w]])
        p, order = np.concatenate([p, [[-0.5, w], [-0.5, -w], [-w, -w]]]), 4
    elif name == "arrow":
        head, shaft = rng.uniform(0.3, 0.45), rng.uniform(0.1, 0.16)
        p = [[0, -0.5], [head, 0], [shaft, 0], [shaft, 0.5], [-shaft, 0.5], [-shaft, 0], [-head, 0]]
        p, order = np.array(p), 1
    elif name == "heart":
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        p, order = np.stack([x, y], 1), 1
    elif name == "semicircle":
        a = np.linspace(np.pi, 2 * np.pi, 33)
        p, order = np.stack([np.cos(a), np.sin(a)], 1), 1
    elif name == "trapezoid":
        top, h = rng.uniform(0.45, 0.7), rng.uniform(0.5, 0.8)
        p, order = np.array([[-top, -h], [top, -h], [1, h], [-1, h]]), 1
    else:
        raise ValueError(f"unknown shape {name!r}")
    p = np.asarray(p, dtype=np.float64)
    p -= (p.min(0) + p.max(0)) / 2
    return p / (p.max(0) - p.min(0)).max(), order


def _outermost_along(poly: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Return the farthest point where the ray from the origin in direction ``d`` crosses the closed outline."""
    a, e = poly, np.roll(poly, -1, 0) - poly

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    den = cross(d, e)
    ok = np.abs(den) > 1e-12
    t = np.where(ok, cross(a, e) / np.where(ok, den, 1), -1.0)
    u = np.where(ok, cross(a, d) / np.where(ok, den, 1), -1.0)
    t = np.where((u >= -1e-9) & (u <= 1 + 1e-9), t, -1.0)
    return d * t.max()


class _Object:
    """One shape instance: outline, rotated frame corners (TL, TR, BR, BL) and keypoints, in pixels.

    Pixel coordinates put pixel centres on integers; ``theta`` turns clockwise on screen (y points down).
    """

    def __init__(self, cls: int, unit: np.ndarray, size: float, theta: float, centre: np.ndarray):
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -s], [s, c]]) * size
        hw, hh = (unit.max(0) - unit.min(0)) / 2
        frame = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])  # TL, TR, BR, BL: clockwise on screen
        kpts = np.concatenate([[_outermost_along(unit, corner) for corner in frame], [[0.0, 0.0]]])
        self.cls, self.size = cls, size
        self.poly, self.frame, self.kpts = (x @ rot.T + centre for x in (unit, frame, kpts))
        x, y = self.poly.T
        self.area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _sample_object(
    cls: int, name: str, rng: np.random.Generator, n: int, size: tuple, inside: bool, centre=None
) -> _Object:
    """Draw shape ``name``, labelled ``cls``, whose size is a log-uniform fraction in ``size`` of the image side ``n``.

    The rotation stays within the shape's rotational symmetry. ``inside`` keeps the rotated frame in the image, else
    the centre may lie anywhere in the image (up to half the shape outside).
    """
    unit, order = _unit_shape(name, rng)
    px = n * np.exp(rng.uniform(np.log(size[0]), np.log(size[1])))
    theta = 0.0 if order == 0 else rng.uniform(-np.pi, np.pi) / order
    if centre is None:
        c, s = abs(np.cos(theta)), abs(np.sin(theta))
        hw, hh = (unit.max(0) - unit.min(0)) / 2
        half = px * np.array([c * hw + s * hh, s * hw + c * hh])  # half extent of the rotated frame
        lo, hi = (half, n - 1 - half) if inside else (np.zeros(2), np.full(2, n - 1.0))
        centre = rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi))
    return _Object(cls, unit, px, theta, centre)


# --------------------------------------------------------------------------------------------------------- painting
def _colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """Draw a random BGR colour, preferring one that stands out from ``avoid`` (a mean background colour)."""
    best, best_d = None, -1.0
    for _ in range(4):
        c = rng.integers(0, 256, 3).astype(np.float32)
        d = 0.0 if avoid is None else float(np.abs(c - avoid).sum())
        if avoid is None or d > 90:
            return c
        best, best_d = (c, d) if d > best_d else (best, best_d)
    return best


def _along(angle: float, h: int, w: int) -> np.ndarray:
    """Return the float32 (h, w, 1) coordinate of every pixel along the direction ``angle`` (radians)."""
    x, y = np.arange(w, dtype=np.float32)[None], np.arange(h, dtype=np.float32)[:, None]
    return (float(np.cos(angle)) * x + float(np.sin(angle)) * y)[..., None]


def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Return a float32 (h, w, 1) linear ramp from 0 to 1 along a random direction."""
    r = _along(rng.uniform(0, 2 * np.pi), h, w)
    return (r - r.min()) / max(float(r.max() - r.min()), 1.0)


def _stripes(rng: np.random.Generator, h: int, w: int, period: tuple[float, float]) -> np.ndarray:
    """Return a float32 (h, w, 1) 0/1 stripe pattern with a random angle, period, phase and duty cycle."""
    r = _along(rng.uniform(0, np.pi), h, w) * (2 * np.pi / rng.uniform(*period)) + rng.uniform(0, 2 * np.pi)
    return (np.sin(r) > rng.uniform(-0.5, 0.5)).astype(np.float32)


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return a float32 BGR background: gradient, low-frequency clouds, blurred blobs and optional stripes."""
    m = max(n // 4, 12)  # the smooth parts are made at 1/4 resolution, then upsampled
    c1, c2 = _colour(rng), _colour(rng)
    img = c1 + (c2 - c1) * _ramp(rng, m, m)
    if rng.random() < 0.7:  # low-frequency "clouds"
        g = int(rng.integers(3, 10))
        clouds = cv2.resize(rng.uniform(-1, 1, (g, g, 3)).astype(np.float32), (m, m), interpolation=cv2.INTER_CUBIC)
        img += clouds * rng.uniform(10, 50)
    if rng.random() < 0.6:  # blurred blobs
        blobs, alpha = np.zeros((m, m, 3), np.float32), np.zeros((m, m), np.float32)
        for _ in range(int(rng.integers(2, 9))):
            centre, axes = rng.integers(0, m, 2).tolist(), rng.integers(2, m // 3, 2).tolist()
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(blobs, centre, axes, angle, 0, 360, _colour(rng).tolist(), -1)
            cv2.ellipse(alpha, centre, axes, angle, 0, 360, 1.0, -1)
        k = float(rng.uniform(2.5, 6))
        a = cv2.GaussianBlur(alpha, (0, 0), k)[..., None] * rng.uniform(0.3, 0.9)
        img = img * (1 - a) + cv2.GaussianBlur(blobs, (0, 0), k) * a
    img = cv2.resize(img, (n, n), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.4:
        img += _stripes(rng, n, n, (4, 40)) * (rng.uniform(10, 60) * rng.choice([-1.0, 1.0], 3)).astype(np.float32)
    return img


def _fill(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Paint ``img`` where ``mask`` is set with a random solid, gradient or striped fill and an optional border."""
    x0, y0, w, h = cv2.boundingRect(mask)
    if not w:
        return
    crop, m = img[y0 : y0 + h, x0 : x0 + w], mask[y0 : y0 + h, x0 : x0 + w]
    c1 = _colour(rng, np.array(cv2.mean(crop, m)[:3], np.float32))
    kind = rng.random()
    if kind < 0.45:
        tex = np.broadcast_to(c1, (h, w, 3))
    else:
        c2 = np.clip(c1 + rng.normal(0, 60, 3), 0, 255).astype(np.float32)
        t = _ramp(rng, h, w) if kind < 0.75 else _stripes(rng, h, w, (3, 12))
        tex = c1 + (c2 - c1) * t
    np.copyto(crop, tex, where=m[..., None].astype(bool))
    if rng.random() < 0.35 and min(h, w) > 8:  # border
        inner = cv2.erode(m, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))
        np.copyto(crop, _colour(rng, c1), where=(m > inner)[..., None])


def _distractor(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return the uint8 mask of a clutter item: a line, an arc, a scribble or an irregular blob."""
    mask = np.zeros((n, n), np.uint8)
    kind, thick = rng.random(), int(rng.integers(1, 4))
    if kind < 0.3:
        p1, p2 = rng.integers(-n // 4, n * 5 // 4, (2, 2)).tolist()
        cv2.line(mask, p1, p2, 1, thick)
    elif kind < 0.55:
        axes = rng.integers(4, n // 2, 2).tolist()
        start = float(rng.uniform(0, 360))
        angle = float(rng.uniform(0, 360))
        cv2.ellipse(mask, rng.integers(0, n, 2).tolist(), axes, angle, start, start + rng.uniform(40, 270), 1, thick)
    elif kind < 0.8:
        walk = np.cumsum(rng.normal(0, n / 25, (int(rng.integers(4, 16)), 2)), 0) + rng.integers(0, n, 2)
        cv2.polylines(mask, [walk.round().astype(np.int32)], False, 1, thick)
    else:
        k = int(rng.integers(5, 12))
        r = n * np.exp(rng.uniform(np.log(0.02), np.log(0.15))) * rng.uniform(0.3, 1.0, k)
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        blob = np.stack([np.cos(a), np.sin(a)], 1) * r[:, None] + rng.integers(0, n, 2)
        cv2.fillPoly(mask, [blob.round().astype(np.int32)], 1)
    return mask


def _noise(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Return float32 zero-mean, unit-variance triangular noise (much faster than ``standard_normal``)."""
    u = np.frombuffer(rng.bytes(2 * int(np.prod(shape))), np.uint8).reshape(2, *shape)
    return (u[0].astype(np.float32) + u[1] - 255.0) * np.float32(1 / 104.4)


def _render(layers: list, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paint the layers (``_Object`` or distractor masks) back to front on a background.

    Returns:
        (tuple): The uint8 BGR image and, per layer, the bool mask of the pixels that later layers cover.
    """
    img = _background(rng, n)
    masks = [poly_mask(x.poly, n) if isinstance(x, _Object) else x for x in layers]
    for mask in masks:
        _fill(img, mask, rng)
    img += _noise(rng, img.shape) * rng.uniform(0, 12)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.0))
    covers, cover = [None] * len(masks), np.zeros((n, n), bool)
    for i in reversed(range(len(masks))):
        covers[i] = cover.copy()
        cover |= masks[i].astype(bool)
    return (np.clip(img, 0, 255, out=img) + 0.5).astype(np.uint8), covers


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _scene(
    task: str, rng: np.random.Generator, n: int, preset: Preset = PRESETS["standard"], cls: int = 0
) -> tuple[np.ndarray, list[_Object], list]:
    """Sample and render one image.

    Returns:
        (tuple): The image, its objects, and per object the bool mask of the pixels that later layers cover.
    """
    if task == "classify":
        centre = (n - 1) / 2 + rng.uniform(-0.08, 0.08, 2) * n
        objects = [_sample_object(cls, preset.classes[cls], rng, n, (0.3, 0.7), True, centre)]
        layers = [_distractor(rng, n) for _ in range(_count(rng, preset.classify_clutter))] + objects
        layers += [_distractor(rng, n) for _ in range(int(rng.integers(0, 3)))]  # over the shape
    else:
        k = 0 if rng.random() < 0.03 else _count(rng, preset.objects)
        objects = []
        for _ in range(k):
            cls, inside = int(rng.integers(len(preset.classes))), rng.random() < 0.8 or task == "obb"
            objects.append(_sample_object(cls, preset.classes[cls], rng, n, preset.size, inside))
        if rng.random() < 0.75:  # mostly large objects behind small ones
            objects.sort(key=lambda o: -o.size)
        layers = list(objects)
        for _ in range(_count(rng, preset.clutter)):  # clutter, mostly behind the objects
            i = 0 if rng.random() < 0.6 else int(rng.integers(0, len(layers) + 1))
            layers.insert(i, _distractor(rng, n))
    img, covers = _render(layers, rng, n)
    cover = {id(x): c for x, c in zip(layers, covers)}
    return img, objects, [cover[id(o)] for o in objects]


# --------------------------------------------------------------------------------------------------------- datasets
SPLITS = ("train", "val")


def _make_image(task: str, root: Path, split: str, index: int, imgsz: int, seed: int, preset: Preset) -> int:
    """Generate and write image ``index`` of ``split`` (and its label file); return the number of labels."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if task == "classify":
        cls = index % len(preset.classes)
        img, _, _ = _scene(task, rng, imgsz, preset, cls)
        cv2.imwrite(str(root / split / preset.classes[cls] / f"{index:06d}.jpg"), img, jpeg)
        return 1
    img, objects, covers = _scene(task, rng, imgsz, preset)
    cv2.imwrite(str(root / "images" / split / f"{index:06d}.jpg"), img, jpeg)
    return write_labels(task, root, split, f"{index:06d}", objects, covers, rng, imgsz, len(preset.classes))


def _read_manifest(root: Path) -> dict:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _remove_stale(root: Path, max_age_s: float = 3600.0) -> None:
    """Delete staging folders of interrupted generations of ``root`` that nothing has written to for a while."""
    for d in root.parent.glob(f".{root.name}.partial-*"):
        newest = max((Path(p).stat().st_mtime for p, _, _ in os.walk(d)), default=0.0)
        if time.time() - newest > max_age_s:
            shutil.rmtree(d, ignore_errors=True)


def _write_dataset(folder: Path, settings: dict[str, Any], workers: int) -> None:
    """Render every image and label of ``settings`` into the new ``folder``, then its manifest, last."""
    task, preset = settings["task"], PRESETS[settings["preset"]]
    n_train, n_val = settings["n_train"], settings["n_val"]
    dirs = ("images", LABEL_DIRS.get(task, "labels"))  # <dir>/<split>/<index>.jpg and its label file
    for split in SPLITS:
        subdirs = [Path(split, c) for c in preset.classes] if task == "classify" else [Path(x, split) for x in dirs]
        for d in subdirs:
            (folder / d).mkdir(parents=True)
    jobs = [(split, i) for split, n in zip(SPLITS, (n_train, n_val)) for i in range(n)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        counts = list(
            pool.map(lambda job: _make_image(task, folder, *job, settings["imgsz"], settings["seed"], preset), jobs)
        )
    manifest = {"generator": __name__, **settings, "names": list(preset.classes)}
    manifest["labels"] = {"train": sum(counts[:n_train]), "val": sum(counts[n_train:])}
    if task == "pose":
        manifest.update(kpt_names=list(KPT_NAMES), flip_idx=list(FLIP_IDX))
    elif task == "semantic":  # the names of the data YAML: the shapes, then the background
        manifest.update(names=[*preset.classes, "background"], ignore=IGNORE)
    elif task == "depth":
        manifest.update(names=["depth"], depth_scale=DEPTH_SCALE)
    (folder / MARKER).write_text(json.dumps(manifest, indent=2) + "\n")  # last: marks the dataset complete


def generate(
    task: str,
    root: Path | str,
    n_train: int = 3000,
    n_val: int = 500,
    imgsz: int = 320,
    seed: int = 0,
    workers: int = 2,
    preset: str = "standard",
) -> Path:
    """Generate a shapes dataset for ``task`` at ``root`` unless a complete one with these settings is already there.

    The dataset is written to a hidden staging folder next to ``root``, completed with a ``.complete`` manifest and
    only then renamed to ``root``, so an interrupted run never leaves a dataset that looks usable. A complete dataset
    made with other settings is replaced; any other non-empty folder at ``root`` is left alone (FileExistsError).

    Args:
        task (str): One of "detect", "segment", "pose", "obb", "classify", "semantic", "depth".
        root (Path | str): Dataset folder to create.
        n_train (int): Number of training images.
        n_val (int): Number of validation images.
        imgsz (int): Side of the square images in pixels.
        seed (int): Non-negative seed; equal settings give byte-identical images and labels.
        workers (int): Threads used to render images (the output does not depend on it).
        preset (str): A key of :data:`PRESETS`: ``standard`` (13 classes, small to large objects, much clutter) or
            ``easy`` (5 classes, large objects, little clutter).

    Returns:
        (Path): The absolute dataset root.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, not {preset!r}")
    if min(n_train, n_val, seed) < 0 or imgsz < 32:
        raise ValueError("n_train, n_val and seed must be >= 0 and imgsz >= 32")
    root = Path(root).expanduser().resolve()
    settings = dict(task=task, n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, preset=preset, version=VERSION)

    if _matches(root, settings):
        return root
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"'{root}' is a file; the dataset needs a folder there (delete it or pick another path)")
    if root.exists() and not (root / MARKER).is_file() and any(root.iterdir()):
        raise FileExistsError(f"'{root}' exists but is not a complete shapes dataset; delete it or pick another path")

    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    tmp = root.parent / f".{root.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        _write_dataset(tmp, settings, workers)
        if not _matches(root, settings):  # else another process finished the same dataset meanwhile: keep that one
            _replace(root, tmp, settings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _matches(folder: Path, settings: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a complete dataset made with ``settings``."""
    manifest = {"preset": "standard", **_read_manifest(folder)}  # no preset recorded: standard
    return all(manifest.get(k) == v for k, v in settings.items())


def _replace(root: Path, new: Path, settings: dict[str, Any]) -> None:
    """Move the complete dataset ``new`` to ``root``, setting aside and then deleting what ``root`` held."""
    old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
    if root.exists():
        root.rename(old)  # an empty folder or a complete dataset made with other settings
    try:
        new.rename(root)
    except OSError:
        if not _matches(root, settings):  # another process put the same dataset there first
            raise
    shutil.rmtree(old, ignore_errors=True)


def generate_from_yaml(data: dict[str, Any] | str | Path) -> Path:
    """Generate the dataset a data YAML describes: the ``download:`` hook of the ``datasets/shapes-*.yaml`` files.

    Ultralytics' ``check_det_dataset`` runs ``download:`` with ``yaml`` bound to the parsed YAML, whose ``path`` it
    has already made absolute. A relative ``path`` (a YAML file name or a dict loaded by hand) is resolved the way
    Ultralytics does it: as given if that exists, else under the ``datasets_dir`` of its settings.

    Args:
        data (dict | str | Path): The parsed data YAML or its file. Its ``generator`` mapping holds ``task`` and
            optionally ``n_train``, ``n_val``, ``imgsz``, ``seed``, ``workers`` and ``preset`` (see
            :func:`generate`).

    Returns:
        (Path): The absolute dataset root.
    """
    if not isinstance(data, dict):
        import yaml  # PyYAML, a dependency of Ultralytics

        data = {**yaml.safe_load(Path(data).read_text(encoding="utf-8")), "yaml_file": str(data)}
    options = dict(data.get("generator") or {})
    if "task" not in options:
        raise KeyError("the data YAML needs a 'generator:' mapping with a 'task' key")
    from .resources import dataset_root  # the one rule training and compare use too

    return generate(options.pop("task"), dataset_root(data, data.get("yaml_file", "")), **options)

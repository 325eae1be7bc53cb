"""Sampling and painting one shapes image: the classes, the difficulty presets, the background, clutter and noise.

See :mod:`ultralytics_convmixer.data.shapes` for what a scene holds; :func:`scene` returns the image, its objects and
what later layers cover of each, from which ``shapes_labels`` writes the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .shapes_geometry import ShapeObject, poly_mask, sample_object

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
    """Paint the layers (``ShapeObject`` or distractor masks) back to front on a background.

    Returns:
        (tuple): The uint8 BGR image and, per layer, the bool mask of the pixels that later layers cover.
    """
    img = _background(rng, n)
    masks = [poly_mask(x.poly, n) if isinstance(x, ShapeObject) else x for x in layers]
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


def scene(
    task: str, rng: np.random.Generator, n: int, preset: Preset = PRESETS["standard"], cls: int = 0
) -> tuple[np.ndarray, list[ShapeObject], list]:
    """Sample and render one image.

    Returns:
        (tuple): The image, its objects, and per object the bool mask of the pixels that later layers cover.
    """
    if task == "classify":
        centre = (n - 1) / 2 + rng.uniform(-0.08, 0.08, 2) * n
        objects = [sample_object(cls, preset.classes[cls], rng, n, (0.3, 0.7), True, centre)]
        layers = [_distractor(rng, n) for _ in range(_count(rng, preset.classify_clutter))] + objects
        layers += [_distractor(rng, n) for _ in range(int(rng.integers(0, 3)))]  # over the shape
    else:
        k = 0 if rng.random() < 0.03 else _count(rng, preset.objects)
        objects = []
        for _ in range(k):
            cls, inside = int(rng.integers(len(preset.classes))), rng.random() < 0.8 or task == "obb"
            objects.append(sample_object(cls, preset.classes[cls], rng, n, preset.size, inside))
        if rng.random() < 0.75:  # mostly large objects behind small ones
            objects.sort(key=lambda o: -o.size)
        layers = list(objects)
        for _ in range(_count(rng, preset.clutter)):  # clutter, mostly behind the objects
            i = 0 if rng.random() < 0.6 else int(rng.integers(0, len(layers) + 1))
            layers.insert(i, _distractor(rng, n))
    img, covers = _render(layers, rng, n)
    cover = {id(x): c for x, c in zip(layers, covers)}
    return img, objects, [cover[id(o)] for o in objects]

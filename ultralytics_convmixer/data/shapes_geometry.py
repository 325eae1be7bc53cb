"""The geometry of a shapes scene: each class's outline, a sampled shape instance, and its rasterised mask.

Pixel coordinates put pixel centres on integers; angles turn clockwise on screen (y points down). The painter
(``shapes_scene``) and the label writers (``shapes_labels``) both rasterise outlines with :func:`poly_mask`, so a label
never disagrees with the picture.
"""

from __future__ import annotations

import cv2
import numpy as np


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


class ShapeObject:
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


def sample_object(
    cls: int, name: str, rng: np.random.Generator, n: int, size: tuple, inside: bool, centre=None
) -> ShapeObject:
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
    return ShapeObject(cls, unit, px, theta, centre)


def poly_mask(poly: np.ndarray, n: int) -> np.ndarray:
    """Rasterise a pixel polygon to an (n, n) uint8 0/1 mask, as the painter fills a shape (1/16 pixel precision).

    Args:
        poly (np.ndarray): (N, 2) outline in pixels.
        n (int): Image side in pixels.

    Returns:
        (np.ndarray): The mask.
    """
    mask = np.zeros((n, n), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask

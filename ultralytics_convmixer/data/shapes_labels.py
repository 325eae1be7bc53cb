"""The labels of a rendered shapes scene, in each task's Ultralytics format, and the files that hold them.

:mod:`ultralytics_convmixer.data.shapes_scene` samples and paints a scene; this module turns its objects (painted
back to front) and, per object, the mask of what later layers cover into label rows (detect, segment, pose, obb), a
semantic mask or a depth map, all from the masks the painter filled, so that a label never disagrees with the picture.

Depth is a known synthetic scene seen through a pinhole camera, in metres:

* The background is a tilted plane. Its inverse depth is affine in the pixel coordinates (that is what makes a plane
  under a pinhole camera): it runs from a near edge at 8-12 m to a far edge at 14-20 m along a random direction.
* Each shape is a plate facing the camera (one depth over its whole outline) at 1.5-7.5 m. The later a shape is
  painted, the nearer it is, by at least :data:`PLATE_GAP_M`: painting order is occlusion order, so every pixel shows
  the nearest surface there.
* Clutter is paint on the surface behind it: it changes colours, not depth.

Every pixel is valid (no 0). The scene's numbers are drawn from the image's own generator after the image is
painted, so a depth set has the same images as the segment set of its seed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .shapes_geometry import ShapeObject, poly_mask

MIN_VISIBLE = 0.3  # objects less visible than this (fraction of their area) get no label
MIN_PIXELS = 12
IGNORE = 255  # semantic mask value Ultralytics leaves out of the loss and the metrics
DEPTH_SCALE = 1000  # uint16 PNG value per metre: millimetres, Ultralytics' default depth_scale
PLANE_NEAR_M, PLANE_FAR_M = (8.0, 12.0), (14.0, 20.0)  # ranges of the background plane's near and far edges
PLATE_M = (1.5, 7.5)  # range of the shapes' depths
PLATE_GAP_M = 0.25  # least depth step from a shape to the next one painted, so that the order survives rounding
LABEL_DIRS = {"semantic": "masks", "depth": "depth"}  # the others: labels/<split>/<index>.txt


def _labelled(obj: ShapeObject, visible: np.ndarray) -> bool:
    """Whether enough of an object shows (its uint8 0/1 ``visible`` mask) for it to get a label."""
    return bool(cv2.countNonZero(visible) >= max(MIN_PIXELS, MIN_VISIBLE * obj.area))


# ----------------------------------------------------------------------------------------------------- label rows
def _bridge(parts: list[np.ndarray]) -> np.ndarray:
    """Join contours into one polygon by zero-width bridges between closest points, in the order given.

    Under the even-odd fill rule of ``cv2.fillPoly`` (which Ultralytics uses to rasterise polygons) a bridged hole stays
    a hole and bridged fragments stay apart.
    """
    merged = parts[0]
    for part in parts[1:]:
        d = ((merged[:, None].astype(np.int64) - part[None]) ** 2).sum(-1)
        i, j = np.unravel_index(int(d.argmin()), d.shape)
        merged = np.concatenate([merged[: i + 1], part[j:], part[: j + 1], merged[i:]])
    return merged


def _visible_polygon(visible: np.ndarray) -> np.ndarray | None:
    """Trace a visible mask, holes included, as one (N, 2) pixel polygon; None if nothing sizeable is visible.

    Fragments under 5% of the largest one and holes under 4 pixels are skipped.
    """
    contours, tree = cv2.findContours(visible.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    area = [cv2.contourArea(c) for c in contours]
    outer = sorted((i for i, t in enumerate(tree[0]) if t[3] < 0), key=lambda i: -area[i])
    parts = []
    for i in outer:
        if area[i] >= max(4.0, 0.05 * area[outer[0]]):
            holes = [j for j, t in enumerate(tree[0]) if t[3] == i and area[j] >= 4.0]
            rings = [cv2.approxPolyDP(contours[j], 0.7, True).reshape(-1, 2) for j in [i, *holes]]
            if len(rings[0]) >= 3:
                parts += [r for r in rings if len(r) >= 3]
    return _bridge(parts) if parts else None


def _keypoints(obj: ShapeObject, cover: np.ndarray, n: int) -> np.ndarray:
    """Return (K, 3) keypoints ``x y v`` in pixels: v=2 seen, 1 covered by a later layer, 0 outside the image."""
    out = np.zeros((len(obj.kpts), 3))
    for k, (x, y) in enumerate(obj.kpts):
        xi, yi = round(x), round(y)
        if 0 <= xi < n and 0 <= yi < n:
            out[k] = min(max(x, 0), n - 1), min(max(y, 0), n - 1), 1 if cover[yi, xi] else 2
    return out


def _label_rows(task: str, objects: list[ShapeObject], covers: list[np.ndarray], n: int) -> list[str]:
    """Return the label rows of one image in the Ultralytics format of ``task``."""
    rows = []
    for obj, cover in zip(objects, covers):
        visible = poly_mask(obj.poly, n) & ~cover  # uint8 0/1
        if not _labelled(obj, visible):
            continue  # (almost) hidden: no label
        if task == "obb":
            values = obj.frame.clip(0, n - 1)
        elif task == "segment":
            values = _visible_polygon(visible)
            if values is None:
                continue
        else:
            x0, y0, w, h = cv2.boundingRect(visible)  # pixel edges
            values = np.array([x0 + w / 2, y0 + h / 2, w, h])
        row = f"{obj.cls} " + " ".join(f"{v / n:.6f}" for v in np.ravel(values))
        if task == "pose":
            row += "".join(f" {x / n:.6f} {y / n:.6f} {v:.0f}" for x, y, v in _keypoints(obj, cover, n))
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ dense labels
def semantic_mask(
    objects: list[ShapeObject], covers: list[np.ndarray], n: int, background: int
) -> tuple[np.ndarray, int]:
    """Return the semantic mask of a scene: per pixel the class id of the shape seen there.

    Background and clutter pixels get ``background``. The visible pixels of a shape too hidden to get an instance label
    (see :data:`MIN_VISIBLE`) get :data:`IGNORE`: they are no background, but too little of the shape shows to tell
    its class.

    Args:
        objects (list[ShapeObject]): The scene's shapes, in painting order.
        covers (list[np.ndarray]): Per shape, the bool mask of the pixels later layers (shapes or clutter) cover.
        n (int): Image side in pixels.
        background (int): Class id of the background.

    Returns:
        (tuple[np.ndarray, int]): The (n, n) uint8 mask and the number of shapes labelled in it.
    """
    mask, labelled = np.full((n, n), background, np.uint8), 0
    for obj, cover in zip(objects, covers):
        visible = poly_mask(obj.poly, n) & ~cover  # visible masks of one scene never overlap
        seen = _labelled(obj, visible)
        mask[visible.astype(bool)] = obj.cls if seen else IGNORE
        labelled += seen
    return mask, labelled


def _plane(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return the float64 (n, n) depth in metres of a tilted plane seen through a pinhole camera."""
    near, far, angle = rng.uniform(*PLANE_NEAR_M), rng.uniform(*PLANE_FAR_M), rng.uniform(0, 2 * np.pi)
    x = np.arange(n, dtype=np.float64)
    r = np.cos(angle) * x[None, :] + np.sin(angle) * x[:, None]
    t = (r - r.min()) / (r.max() - r.min())  # 0 at the near edge, 1 at the far edge
    return 1.0 / (1.0 / near + (1.0 / far - 1.0 / near) * t)  # inverse depth is affine on a plane


def depth_map(objects: list[ShapeObject], rng: np.random.Generator, n: int) -> np.ndarray:
    """Return the depth map of a scene in millimetres (see the module docstring for the scene).

    Args:
        objects (list[ShapeObject]): The scene's shapes, in painting order.
        rng (np.random.Generator): The image's generator, after the image is painted.
        n (int): Image side in pixels.

    Returns:
        (np.ndarray): The (n, n) uint16 depth, metres times :data:`DEPTH_SCALE`, no zeros.
    """
    depth, k = _plane(rng, n), len(objects)
    far_to_near = np.sort(rng.uniform(PLATE_M[0], PLATE_M[1] - PLATE_GAP_M * max(k - 1, 0), k))[::-1]
    for obj, z in zip(objects, far_to_near + PLATE_GAP_M * np.arange(k)[::-1]):
        depth[poly_mask(obj.poly, n).astype(bool)] = z  # later shapes paint over earlier ones: the nearest shows
    return np.round(depth * DEPTH_SCALE).astype(np.uint16)


def write_labels(
    task: str,
    root: Path,
    split: str,
    stem: str,
    objects: list[ShapeObject],
    covers: list[np.ndarray],
    rng: np.random.Generator,
    n: int,
    nc: int,
) -> int:
    """Write the label file of one image of a detect, segment, pose, obb, semantic or depth set.

    Args:
        task (str): The dataset's task.
        root (Path): Dataset root.
        split (str): ``train`` or ``val``.
        stem (str): The image's file name without suffix.
        objects (list[ShapeObject]): The scene's shapes, in painting order.
        covers (list[np.ndarray]): Per shape, the bool mask of the pixels later layers cover.
        rng (np.random.Generator): The image's generator, after the image is painted (depth draws from it).
        n (int): Image side in pixels.
        nc (int): Number of shape classes, the id of the semantic background class.

    Returns:
        (int): The number of labels written: shapes labelled, or 1 per depth map.
    """
    folder = root / LABEL_DIRS.get(task, "labels") / split
    if task == "semantic":
        mask, count = semantic_mask(objects, covers, n, nc)
        cv2.imwrite(str(folder / f"{stem}.png"), mask)
        return count
    if task == "depth":
        cv2.imwrite(str(folder / f"{stem}.png"), depth_map(objects, rng, n))
        return 1
    rows = _label_rows(task, objects, covers, n)
    (folder / f"{stem}.txt").write_text("".join(f"{r}\n" for r in rows))
    return len(rows)

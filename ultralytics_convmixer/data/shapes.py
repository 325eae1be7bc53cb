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
  (0) pixels. :mod:`ultralytics_convmixer.data.shapes_labels` details the scene and writes every label file.

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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..integration.resources import TASKS, dataset_root
from .shapes_labels import DEPTH_SCALE, IGNORE, LABEL_DIRS, write_labels
from .shapes_scene import FLIP_IDX, KPT_NAMES, PRESETS, Preset, scene

MARKER = ".complete"  # JSON manifest, written last: a dataset without it is incomplete
VERSION = 1  # bump when the output for a given seed changes
JPEG_QUALITY = 90

SPLITS = ("train", "val")


def _make_image(task: str, root: Path, split: str, index: int, imgsz: int, seed: int, preset: Preset) -> int:
    """Generate and write image ``index`` of ``split`` (and its label file); return the number of labels."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if task == "classify":
        cls = index % len(preset.classes)
        img, _, _ = scene(task, rng, imgsz, preset, cls)
        cv2.imwrite(str(root / split / preset.classes[cls] / f"{index:06d}.jpg"), img, jpeg)
        return 1
    img, objects, covers = scene(task, rng, imgsz, preset)
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
    root = dataset_root(data, data.get("yaml_file", ""))  # the one rule training and compare use too
    return generate(options.pop("task"), root, **options)

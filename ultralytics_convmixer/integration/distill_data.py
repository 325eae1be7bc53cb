"""Unlabeled images for feature distillation: found in a folder or a data YAML's splits, read, cropped and augmented.

The images are read from disk at every epoch (nothing is cached): a set of any size needs only the memory of a few
batches. Augmentation takes the Ultralytics training arguments of the same meaning: ``scale`` (a random crop of
``1 - scale`` to all of the image's area), ``fliplr`` and ``hsv_h``/``hsv_s``/``hsv_v``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch


class ImagesError(ValueError):
    """No usable images where the distillation was told to find them; the message names the place."""


def image_suffixes() -> set:
    """Return the image file suffixes Ultralytics reads (its ``IMG_FORMATS``, which differs between releases)."""
    from ultralytics.data.utils import IMG_FORMATS

    return {f".{s.lower()}" for s in IMG_FORMATS}


def _files_of(entry: Any, root: Path) -> List[Path]:
    """Return the images a split entry names: a folder (searched recursively), a list file, an image, or a list."""
    if isinstance(entry, (list, tuple)):
        return [f for item in entry for f in _files_of(item, root)]
    path = Path(entry) if Path(entry).is_absolute() else root / entry
    if path.is_dir():
        suffixes = image_suffixes()
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if path.suffix == ".txt" and path.is_file():  # Ultralytics' list files: one image path a line
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        return [Path(x) if Path(x).is_absolute() else path.parent / x for x in lines if x]
    return [path] if path.is_file() else []


def _readable(files: Sequence[Path], what: str, sample: int = 8) -> List[Path]:
    """Return ``files`` if any of the first ``sample`` decodes, else raise naming ``what``."""
    if not files:
        raise ImagesError(f"{what}: no images ({', '.join(sorted(image_suffixes()))}) found")
    if not any(cv2.imread(str(f), cv2.IMREAD_COLOR) is not None for f in files[:sample]):
        raise ImagesError(f"{what}: none of its first {min(sample, len(files))} images could be read, e.g. {files[0]}")
    return list(files)


def find_images(source: str | Path, val_fraction: float = 0.05, most_val: int = 500) -> Tuple[List[Path], List[Path]]:
    """Return the training and validation images of ``source``: a folder of images, or a data YAML.

    A data YAML gives its ``train`` and ``val`` splits (as Ultralytics' ``check_det_dataset`` resolves them, running
    the YAML's ``download`` if the data is missing); its labels are never read. A folder is split: every
    ``1 / val_fraction``-th image (at most ``most_val``) is held out for validation.

    Args:
        source (str | Path): The folder or the data YAML.
        val_fraction (float): Share of a folder's images held out.
        most_val (int): Most images held out from a folder.

    Returns:
        (Tuple[List[Path], List[Path]]): Training images, validation images (the training ones for a single image).

    Raises:
        ImagesError: If ``source`` does not exist, or holds no readable image.
    """
    path = Path(source).expanduser()
    if str(source).lower().endswith((".yaml", ".yml")):
        from ultralytics.data.utils import check_det_dataset

        data = check_det_dataset(str(source))
        root = Path(data.get("path") or path.parent)
        train = _readable(_files_of(data["train"], root), f"{source}: train split {data['train']}")
        val = _files_of(data.get("val") or [], root) or train[-1:]
        return train, val
    if not path.is_dir():
        raise ImagesError(f"{source}: no such folder (give a folder of images or a data YAML)")
    files = _readable(_files_of(path, path), str(source))
    if len(files) == 1:
        return files, files
    n_val = min(most_val, max(1, round(len(files) * val_fraction)))
    val = files[:: len(files) // n_val][:n_val]  # spread over the folder
    held_out = set(val)
    return [f for f in files if f not in held_out], val


class UnlabeledImages(torch.utils.data.Dataset):
    """Square RGB crops of images, augmented for training, for a student and a teacher to see alike.

    Args:
        files (Sequence[Path]): The images.
        imgsz (int): Side of the square crops.
        augment (bool): Random crops, flips and colour changes (training) or the centre square (validation).
        hyp (Any): Ultralytics training arguments: ``scale``, ``fliplr``, ``hsv_h``, ``hsv_s``, ``hsv_v``.
    """

    def __init__(self, files: Sequence[Path], imgsz: int, augment: bool, hyp: Any):
        self.files, self.imgsz, self.augment = [Path(f) for f in files], int(imgsz), augment
        self.scale, self.fliplr = float(hyp.scale), float(hyp.fliplr)
        self.hsv = (float(hyp.hsv_h), float(hyp.hsv_s), float(hyp.hsv_v))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        image = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise ImagesError(f"{self.files[index]}: not an image OpenCV can read")
        x0, y0, w, h = self._crop_box(*image.shape[:2]) if self.augment else self._centre_square(*image.shape[:2])
        image = cv2.resize(image[y0 : y0 + h, x0 : x0 + w], (self.imgsz, self.imgsz), interpolation=cv2.INTER_AREA)
        if self.augment:
            image = self._colour(image)
            if random.random() < self.fliplr:
                image = image[:, ::-1]
        rgb = np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))
        return {"img": torch.from_numpy(rgb)}

    def _crop_box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """Draw a box of ``1 - scale`` to all of the area, aspect 3:4 to 4:3 (as torchvision's RandomResizedCrop)."""
        for _ in range(10):
            area = h * w * random.uniform(max(1.0 - self.scale, 0.05), 1.0)
            aspect = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, w - cw), random.randint(0, h - ch), cw, ch
        return self._centre_square(h, w)

    @staticmethod
    def _centre_square(h: int, w: int) -> Tuple[int, int, int, int]:
        side = min(h, w)
        return (w - side) // 2, (h - side) // 2, side, side

    def _colour(self, image: np.ndarray) -> np.ndarray:
        """Random hue, saturation and value gains of up to ``hsv_h``, ``hsv_s``, ``hsv_v`` (Ultralytics' HSV jitter)."""
        if not any(self.hsv):
            return image
        gains = np.random.uniform(-1, 1, 3) * self.hsv + 1
        hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
        x = np.arange(256, dtype=np.float32)
        lut_hue = ((x * gains[0]) % 180).astype(np.uint8)
        lut_sat, lut_val = (np.clip(x * g, 0, 255).astype(np.uint8) for g in gains[1:])
        hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)

    @staticmethod
    def collate_fn(batch: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """Stack the images; ``cls`` (one per image) is what Ultralytics' progress bar counts as instances."""
        images = torch.stack([b["img"] for b in batch])
        return {"img": images, "cls": torch.zeros(len(batch))}

"""Which stem resize keeps an imported ConvMixer's features closer to timm's: pseudo-inverse or bilinear.

timm runs the trunk at its patch size p on an image of side S * p; the imported YOLO backbone runs it at stride q (8 or
16) on the same image resized to S * q, so both give S x S tokens. For each model and resize method this prints the
relative L2 error ``||ours - timm|| / ||timm||`` and the cosine similarity of the features, after the stem and after
the whole trunk, over real images (default: the coco128 images beside the checkout; without them it exits asking for
--image-dir, a folder of .jpg/.png images; files OpenCV cannot read are skipped).

    python benchmarks/patch_resize.py                                        # the three paper configs, random init
    python benchmarks/patch_resize.py --models runs/pretrain/convmixer.pth   # a trained checkpoint (file: GELU)
    python benchmarks/patch_resize.py --json resize.json --tokens 16 --images 8
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ultralytics_convmixer.pretrained.patch_resize import RESIZE_METHODS
from ultralytics_convmixer.pretrained.timm_import import build_trunk, read_source

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from common import markdown_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = ["convmixer_1536_20", "convmixer_768_32", "convmixer_1024_20_ks9_p14"]
DEFAULT_IMAGES = ROOT.parent / "shared" / "datasets" / "coco128" / "images" / "train2017"


def load_images(folder: Path, n: int) -> torch.Tensor:
    """The first ``n`` readable images of ``folder`` as a float batch in [0, 1], RGB, each resized to 448 x 448."""
    images = []
    for f in sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        image = cv2.imread(str(f))
        if image is None:  # truncated, or not an image despite its suffix
            print(f"skipped {f}: OpenCV cannot read it", flush=True)
            continue
        images.append(cv2.resize(image[..., ::-1], (448, 448), interpolation=cv2.INTER_AREA))
        if len(images) == n:
            break
    if not images:
        raise SystemExit(f"no readable .jpg or .png images in {folder}; pass --image-dir")
    return torch.from_numpy(np.stack(images).copy()).permute(0, 3, 1, 2).float() / 255


def resized(images: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def errors(ours: torch.Tensor, reference: torch.Tensor) -> Dict[str, float]:
    """Relative L2 error and mean cosine similarity (over tokens) of two feature maps of equal shape."""
    rel = float((ours - reference).norm() / reference.norm())
    cosine = float(F.cosine_similarity(ours, reference, dim=1).mean())
    return {"rel_l2": rel, "cosine": cosine}


def timm_reference(state, trunk, images: torch.Tensor, tokens: int) -> Dict[str, torch.Tensor]:
    """timm's stem and trunk features (the trunk at its own patch size), on the images resized to tokens * patch."""
    native = build_trunk(state, trunk, patch=trunk.patch)
    x = resized(images, tokens * trunk.patch)
    with torch.no_grad():
        stem = native.stem(x)
        return {"stem": stem, "trunk": native.trunk(stem)}


def measure(source: str, images: torch.Tensor, tokens: int) -> List[dict]:
    """One row per resize method for the timm model name or checkpoint ``source``."""
    label = f"{source}, random init" if source in PAPER_CONFIGS else str(source)
    if source in PAPER_CONFIGS:
        import timm

        source = timm.create_model(source, pretrained=False).eval()
    state, trunk = read_source(source)
    reference = timm_reference(state, trunk, images, tokens)
    x = resized(images, tokens * trunk.stride)
    rows = []
    for method in RESIZE_METHODS:
        ours = build_trunk(state, trunk, resize=method)
        with torch.no_grad():
            stem = ours.stem(x)
            trunk_out = ours.trunk(stem)
        stem_err, trunk_err = errors(stem, reference["stem"]), errors(trunk_out, reference["trunk"])
        rows.append(
            {
                "model": label,
                "patch": f"{trunk.patch} -> {trunk.stride}",
                "method": method,
                "stem_rel_l2": stem_err["rel_l2"],
                "stem_cosine": stem_err["cosine"],
                "trunk_rel_l2": trunk_err["rel_l2"],
                "trunk_cosine": trunk_err["cosine"],
            }
        )
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main() -> None:
    """Parse the command line, measure every model, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=PAPER_CONFIGS, help="timm names (random init) or checkpoints")
    parser.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES, help="folder of real images")
    parser.add_argument("--images", type=int, default=8, help="number of images")
    parser.add_argument("--tokens", type=int, default=32, help="token grid side (timm's 224 px at patch 7 is 32)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    torch.manual_seed(0)
    images = load_images(args.image_dir, args.images)
    rows = []
    for source in args.models:
        rows += measure(source, images, args.tokens)
        if args.json:
            write_json(args.json, {"images": str(args.image_dir), "tokens": args.tokens, "rows": rows})
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

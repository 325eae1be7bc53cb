import os

os.environ.setdefault("YOLO_OFFLINE", "1")

import copy
import filecmp
import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from ultralytics_convmixer.data import shapes, shapes_geometry, shapes_labels, shapes_scene
from ultralytics_convmixer.data.shapes import generate
from ultralytics_convmixer.data.shapes_scene import CLASSES, FLIP_IDX, KPT_NAMES
from ultralytics_convmixer.integration.resources import TASKS

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_VAL, IMGSZ = 16, 13, 192  # N_VAL >= 13: every class appears in the classify val split
BOX_TASKS = ("detect", "segment", "pose", "obb")
BACKGROUND = len(CLASSES)  # the semantic background class, last


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return {t: generate(t, root / t, n_train=N_TRAIN, n_val=N_VAL, imgsz=IMGSZ, seed=0) for t in TASKS}


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rows(root: Path, split: str = "train"):
    for f in sorted((root / "labels" / split).glob("*.txt")):
        for line in f.read_text().splitlines():
            yield f, np.array(line.split(), dtype=np.float64)


def signed_area(xy: np.ndarray) -> float:
    """Shoelace area; positive when the points run clockwise on screen (y down)."""
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# ------------------------------------------------------------------------------------------------------------ YAMLs
@pytest.mark.parametrize("task", TASKS)
def test_yaml(task):
    data = yaml.safe_load((REPO / "datasets" / f"shapes-{task}.yaml").read_text())
    assert len(CLASSES) >= 10 and list(CLASSES) == sorted(CLASSES)  # classify folders sort into the same indices
    names = {"semantic": {**dict(enumerate(CLASSES)), BACKGROUND: "background"}, "depth": {0: "depth"}}
    assert data["names"] == names.get(task, dict(enumerate(CLASSES)))
    assert data["path"] == f"shapes-{task}" and data["generator"]["task"] == task
    assert (data["train"], data["val"]) == (("train", "val") if task == "classify" else ("images/train", "images/val"))
    assert "generate_from_yaml(yaml)" in data["download"]
    if task == "pose":
        assert data["kpt_shape"] == [len(KPT_NAMES), 3] and data["flip_idx"] == list(FLIP_IDX)
        assert data["kpt_names"] == {i: list(KPT_NAMES) for i in range(len(CLASSES))}
    if task == "semantic":
        assert data["masks_dir"] == "masks"  # Ultralytics reads PNG masks (SemanticDataset) only with this key
    if task == "depth":
        assert data["nc"] == 1 and data["depth_scale"] == shapes_labels.DEPTH_SCALE == 1000
        assert data["max_depth"] > max(shapes_labels.PLANE_FAR_M)  # validation scores every pixel


def test_easy_yaml_names_the_easy_presets_classes_in_label_order():
    data = yaml.safe_load((REPO / "datasets" / "shapes-easy.yaml").read_text())
    easy = shapes_scene.PRESETS["easy"]
    assert data["names"] == dict(enumerate(easy.classes)) and set(easy.classes) < set(CLASSES)
    assert data["generator"]["task"] == "detect" and data["generator"]["preset"] == "easy"
    assert data["path"] == "shapes-easy" and "generate_from_yaml(yaml)" in data["download"]


def test_flip_idx_is_involution():
    assert sorted(FLIP_IDX) == list(range(len(KPT_NAMES)))
    assert all(FLIP_IDX[FLIP_IDX[i]] == i for i in range(len(FLIP_IDX)))
    swap = {"left": "right", "right": "left"}
    for i, j in enumerate(FLIP_IDX):  # names swap left and right
        assert KPT_NAMES[j] == "_".join(swap.get(w, w) for w in KPT_NAMES[i].split("_"))


# ------------------------------------------------------------------------------------------------------ determinism
def test_deterministic(tmp_path):
    a = generate("pose", tmp_path / "a", n_train=6, n_val=3, imgsz=IMGSZ, seed=3, workers=1)
    b = generate("pose", tmp_path / "b", n_train=6, n_val=3, imgsz=IMGSZ, seed=3, workers=3)
    c = generate("pose", tmp_path / "c", n_train=6, n_val=3, imgsz=IMGSZ, seed=4)
    d = generate("pose", tmp_path / "d", n_train=8, n_val=3, imgsz=IMGSZ, seed=3)
    ta, tb, tc, td = tree(a), tree(b), tree(c), tree(d)
    assert ta == tb  # byte-identical, whatever the number of workers
    assert len(ta) == 2 * 9 + 1  # 9 images, 9 label files, the manifest
    assert all(ta[k] != tc[k] for k in ta if k.endswith(".jpg"))  # another seed changes every image
    assert sum(ta[k] != tc[k] for k in ta if k.endswith(".txt")) >= 7  # and (nearly) every label file
    assert all(td[k] == ta[k] for k in ta if k != shapes.MARKER)  # a larger set extends a smaller one


def test_detect_segment_pose_semantic_and_depth_sets_share_images(sets):
    for split, other in itertools.product(("train", "val"), ("pose", "segment", "semantic", "depth")):
        same = filecmp.dircmp(sets["detect"] / "images" / split, sets[other] / "images" / split)
        assert same.common_files and not (same.diff_files or same.left_only or same.right_only)


# ----------------------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("task", BOX_TASKS)
def test_label_files(sets, task):
    root, counts = sets[task], []
    manifest = json.loads((root / shapes.MARKER).read_text())
    assert manifest["task"] == task and manifest["names"] == list(CLASSES)
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        images = sorted((root / "images" / split).glob("*.jpg"))
        labels = sorted((root / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == n and [p.stem for p in images] == [p.stem for p in labels]
        assert cv2.imread(str(images[0])).shape == (IMGSZ, IMGSZ, 3)
        counts += [len(p.read_text().splitlines()) for p in labels]
        assert manifest["labels"][split] == sum(counts[-n:])
        for _, r in rows(root, split):
            cls, v = r[0], r[1:]
            assert cls == int(cls) and 0 <= cls < len(CLASSES)
            if task in ("detect", "pose"):
                cx, cy, w, h = v[:4]
                assert 0 < w <= 1 and 0 < h <= 1
                assert -1e-6 <= cx - w / 2 and cx + w / 2 <= 1 + 1e-6 and -1e-6 <= cy - h / 2 and cy + h / 2 <= 1 + 1e-6
            if task == "pose":
                kpts = v[4:].reshape(-1, 3)
                assert kpts.shape == (len(KPT_NAMES), 3) and set(kpts[:, 2]) <= {0, 1, 2}
                assert (kpts[kpts[:, 2] == 0, :2] == 0).all()  # outside the image: 0 0 0
                assert ((kpts[:, :2] >= 0) & (kpts[:, :2] <= 1)).all()
            if task == "segment":
                assert len(v) % 2 == 0 and len(v) >= 6 and ((v >= 0) & (v <= 1)).all()
            if task == "obb":
                corners = v.reshape(4, 2)
                assert len(v) == 8 and ((v >= 0) & (v <= 1)).all()
                assert signed_area(corners) > 0  # clockwise on screen, like every box
    assert sum(counts) > 2 * (N_TRAIN + N_VAL) and max(counts) >= 4  # several objects per image


def test_pose_visibility_flags():
    """v=0 exactly for keypoints outside the image, v=1 exactly where a later layer covers them."""
    seen = set()
    for i in range(40):
        _, objects, covers = shapes_scene.scene("pose", np.random.default_rng([0, 0, i]), IMGSZ)
        for obj, cover in zip(objects, covers):
            for (x, y), (kx, ky, v) in zip(obj.kpts, shapes_labels._keypoints(obj, cover, IMGSZ)):
                inside = -0.5 <= x < IMGSZ - 0.5 and -0.5 <= y < IMGSZ - 0.5
                assert (v == 0) == (not inside)
                if inside:
                    assert v == (1 if cover[round(y), round(x)] else 2) and abs(kx - x) <= 0.5 and abs(ky - y) <= 0.5
                seen.add(int(v))
    assert seen == {0, 1, 2}


def test_pose_flip_idx_on_labels(sets):
    """Keypoints 0-3 run clockwise on screen; after a horizontal flip only the flip_idx reordering keeps that."""
    n = 0
    for _, r in rows(sets["pose"]):
        kpts = r[5:].reshape(-1, 3)
        if (kpts[:4, 2] > 0).all() and r[3] * IMGSZ > 8:
            flipped = kpts.copy()
            flipped[:, 0] = 1 - flipped[:, 0]
            assert signed_area(kpts[:4, :2]) > 0
            assert signed_area(flipped[list(FLIP_IDX)][:4, :2]) > 0 > signed_area(flipped[:4, :2])
            n += 1
    assert n > 10


@pytest.mark.parametrize("cls", range(len(CLASSES)))
def test_mirror_maps_keypoints_by_flip_idx(cls):
    """Mirroring an image turns each shape into the same class with the opposite rotation (the generator's own
    definition of the mirrored object); its keypoints are the mirrored keypoints reordered by flip_idx."""
    rng, n = np.random.default_rng(cls), 160
    for _ in range(5):
        unit, order = shapes_geometry._unit_shape(CLASSES[cls], rng)
        assert np.abs(np.sort(unit * [-1, 1], 0) - np.sort(unit, 0)).max() < 1e-9  # mirror-symmetric
        theta = 0.0 if order == 0 else rng.uniform(-np.pi, np.pi) / order
        size, centre = rng.uniform(10, 80), rng.uniform(20, 140, 2)
        a = shapes_geometry.ShapeObject(cls, unit, size, theta, centre)
        b = shapes_geometry.ShapeObject(cls, unit, size, -theta, np.array([n - 1 - centre[0], centre[1]]))
        mirror = a.kpts * [-1, 1] + [n - 1, 0]
        np.testing.assert_allclose(mirror[list(FLIP_IDX)], b.kpts, atol=1e-6)
        mask_a, mask_b = shapes_geometry.poly_mask(a.poly, n), shapes_geometry.poly_mask(b.poly, n)
        k = np.ones((3, 3), np.uint8)  # same picture, mirrored, up to boundary pixels:
        assert (mask_a[:, ::-1] <= cv2.dilate(mask_b, k)).all() and (cv2.erode(mask_b, k) <= mask_a[:, ::-1]).all()


@pytest.mark.parametrize("name", CLASSES)
def test_symmetry_order(name):
    """The rotation range (+-180/order degrees) relies on each class's rotational symmetry order."""
    unit, order = shapes_geometry._unit_shape(name, np.random.default_rng(0))
    if order > 1:
        c = unit.mean(0)
        a = 2 * np.pi / order
        turned = (unit - c) @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + c
        d = np.linalg.norm(turned[:, None] - unit[None], axis=-1).min(1)
        assert d.max() < 1e-6


def test_segment_polygons_match_visible_masks():
    ious = []
    for i in range(30):
        _, objects, covers = shapes_scene.scene("segment", np.random.default_rng([1, 0, i]), IMGSZ)
        for obj, cover in zip(objects, covers):
            visible = shapes_geometry.poly_mask(obj.poly, IMGSZ).astype(bool) & ~cover
            poly = shapes_labels._visible_polygon(visible)
            if poly is not None and visible.sum() >= 150:
                drawn = np.zeros((IMGSZ, IMGSZ), np.uint8)
                cv2.fillPoly(drawn, [poly.astype(np.int32)], 1)  # as Ultralytics' polygon2mask does
                ious.append((drawn.astype(bool) & visible).sum() / (drawn.astype(bool) | visible).sum())
    assert len(ious) > 40 and min(ious) > 0.85 and np.mean(ious) > 0.95


def test_obb_shapes_inside_image():
    for i in range(30):
        _, objects, _ = shapes_scene.scene("obb", np.random.default_rng([0, 0, i]), IMGSZ)
        for obj in objects:
            assert (obj.frame >= -1e-9).all() and (obj.frame <= IMGSZ - 1 + 1e-9).all()


def test_classify_layout(sets):
    root = sets["classify"]
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        assert sorted(p.name for p in (root / split).iterdir()) == list(CLASSES)
        files = list((root / split).rglob("*.jpg"))
        assert len(files) == n and all(any((root / split / c).iterdir()) for c in CLASSES)
        assert cv2.imread(str(files[0])).shape == (IMGSZ, IMGSZ, 3)


def test_easy_preset_draws_few_large_objects_of_its_five_classes(tmp_path):
    easy = shapes_scene.PRESETS["easy"]
    root = generate("detect", tmp_path / "easy", n_train=40, n_val=2, imgsz=160, preset="easy")
    manifest = json.loads((root / shapes.MARKER).read_text())
    assert manifest["preset"] == "easy" and manifest["names"] == list(easy.classes)
    per_image = [len(f.read_text().splitlines()) for f in sorted((root / "labels" / "train").glob("*.txt"))]
    assert max(per_image) <= easy.objects[1] and sum(per_image) >= 40
    labels = np.stack([r for _, r in rows(root)])
    assert set(labels[:, 0].astype(int)) == set(range(len(easy.classes)))  # every class, no other label
    standard = generate("detect", tmp_path / "standard", n_train=40, n_val=2, imgsz=160)
    standard_labels = np.stack([r for _, r in rows(standard)])
    # boxes of visible pixels: the easy set's median object is several times larger than the standard set's
    assert np.median(labels[:, 3] * labels[:, 4]) > 4 * np.median(standard_labels[:, 3] * standard_labels[:, 4])


def test_classify_presets_write_their_own_class_folders(tmp_path):
    root = generate("classify", tmp_path / "c", n_train=10, n_val=5, imgsz=64, preset="easy")
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(shapes_scene.PRESETS["easy"].classes)


def test_a_set_without_a_preset_in_its_manifest_is_the_standard_set_and_reused(tmp_path):
    root = generate("detect", tmp_path / "d", n_train=3, n_val=2, imgsz=64)
    manifest = json.loads((root / shapes.MARKER).read_text())
    del manifest["preset"]
    (root / shapes.MARKER).write_text(json.dumps(manifest))
    (root / "sentinel").write_text("kept")
    assert generate("detect", root, n_train=3, n_val=2, imgsz=64) == root and (root / "sentinel").exists()
    generate("detect", root, n_train=3, n_val=2, imgsz=64, preset="easy")  # another preset: regenerated
    assert not (root / "sentinel").exists()
    with pytest.raises(ValueError, match="preset must be one of .*'standard', 'easy'.*not 'hard'"):
        generate("detect", tmp_path / "h", preset="hard")


# ------------------------------------------------------------------------------------------------ semantic and depth
def polygon_mask(label_file: Path, n: int) -> np.ndarray:
    """Rasterise a segment label file as a semantic mask, as Ultralytics' polygon2mask would, background last."""
    mask = np.full((n, n), BACKGROUND, np.uint8)
    for line in label_file.read_text().splitlines():
        v = np.array(line.split(), dtype=np.float64)
        cv2.fillPoly(mask, [(v[1:].reshape(-1, 2) * n).astype(np.int32)], int(v[0]))
    return mask


def test_semantic_masks_hold_the_class_of_the_visible_shape_and_background_elsewhere():
    ignored = 0
    for i in range(30):
        _, objects, covers = shapes_scene.scene("semantic", np.random.default_rng([2, 0, i]), IMGSZ)
        mask, labelled = shapes_labels.semantic_mask(objects, covers, IMGSZ, BACKGROUND)
        assert mask.dtype == np.uint8 and mask.shape == (IMGSZ, IMGSZ)
        expected = np.full((IMGSZ, IMGSZ), BACKGROUND, np.uint8)
        rows = shapes_labels._label_rows("detect", objects, covers, IMGSZ)
        for obj, cover in zip(objects, covers):
            visible = shapes_geometry.poly_mask(obj.poly, IMGSZ).astype(bool) & ~cover  # painted and uncovered
            expected[visible] = obj.cls if shapes_labels._labelled(obj, visible.astype(np.uint8)) else 255
        np.testing.assert_array_equal(mask, expected)  # clutter drawn over a shape is background too
        assert labelled == len(rows)  # the shapes labelled are those the detect set labels
        ignored += int((mask == 255).any())
    assert ignored  # some shape was too hidden to label


def test_semantic_mask_files_agree_with_the_segment_polygons(sets):
    root, segment = sets["semantic"], sets["segment"]
    manifest = json.loads((root / shapes.MARKER).read_text())
    assert manifest["names"] == [*CLASSES, "background"] and manifest["ignore"] == 255
    assert manifest["labels"] == json.loads((segment / shapes.MARKER).read_text())["labels"]
    seen = set()
    for label_file in sorted((segment / "labels" / "train").glob("*.txt")):
        file = root / "masks" / "train" / f"{label_file.stem}.png"
        with Image.open(file) as im:
            assert im.mode == "L" and im.size == (IMGSZ, IMGSZ)  # 8-bit class ids, the image's size
        mask = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        valid = mask != 255
        assert (mask[valid] <= BACKGROUND).all()
        assert (polygon_mask(label_file, IMGSZ) == mask)[valid].mean() > 0.98  # up to the polygons' edges
        seen |= set(np.unique(mask[valid]).tolist())
    assert BACKGROUND in seen and len(seen) > 8


def test_depth_maps_are_millimetres_without_invalid_pixels(sets):
    from ultralytics.data.utils import load_depth

    root = sets["depth"]
    manifest = json.loads((root / shapes.MARKER).read_text())
    assert manifest["names"] == ["depth"] and manifest["depth_scale"] == 1000
    files = sorted((root / "depth" / "val").glob("*.png"))
    assert [f.stem for f in files] == [f.stem for f in sorted((root / "images" / "val").glob("*.jpg"))]
    for file in files:
        with Image.open(file) as im:
            assert im.mode in {"I;16", "I"} and im.size == (IMGSZ, IMGSZ)  # as Ultralytics' verify_image_depth asks
        depth = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16
        assert depth.min() >= 1000 * shapes_labels.PLATE_M[0] and depth.max() <= 1000 * max(shapes_labels.PLANE_FAR_M)
        np.testing.assert_allclose(load_depth(file, 1000), depth / 1000, rtol=1e-6)  # metres, as training reads them


def test_nearer_shapes_occlude_farther_ones_on_a_tilted_background_plane():
    gap, overlaps = shapes_labels.PLATE_GAP_M, 0
    for i in range(30):
        rng = np.random.default_rng([3, 0, i])
        _, objects, _ = shapes_scene.scene("depth", rng, IMGSZ)
        plane = shapes_labels._plane(copy.deepcopy(rng), IMGSZ)  # the depth map's first draws
        depth = shapes_labels.depth_map(objects, rng, IMGSZ) / 1000
        regions = [shapes_geometry.poly_mask(o.poly, IMGSZ).astype(bool) for o in objects]
        top = np.full((IMGSZ, IMGSZ), -1)  # per pixel the shape painted last there
        for j, region in enumerate(regions):
            top[region] = j
        plates = [np.unique(depth[top == j]) for j in range(len(objects))]
        for j, z in enumerate(plates):
            assert len(z) <= 1  # a plate facing the camera: one depth wherever it shows, clutter on it or not
            if len(z):
                assert (z[0] < plane[top == j]).all()  # in front of the background behind it
            for k in range(j):  # the shapes painted before it and overlapping it are farther
                if len(z) and len(plates[k]) and (regions[k] & regions[j]).any():
                    assert z[0] <= plates[k][0] - gap + 1e-3
                    overlaps += 1
        np.testing.assert_allclose(depth[top < 0], plane[top < 0], atol=5e-4)  # the plane, to the millimetre
        assert depth.min() >= shapes_labels.PLATE_M[0] and depth.max() <= max(shapes_labels.PLANE_FAR_M)
        y, x = np.mgrid[:IMGSZ, :IMGSZ]
        a = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], 1)
        inverse = 1 / plane.ravel()  # under a pinhole camera a plane's inverse depth is affine in the pixel position
        assert np.abs(inverse - a @ np.linalg.lstsq(a, inverse, rcond=None)[0]).max() < 1e-9
        assert plane.max() - plane.min() > 2  # tilted
    assert overlaps > 10


@pytest.mark.parametrize("task", ["semantic", "depth"])
def test_semantic_and_depth_sets_are_deterministic_in_both_presets(task, tmp_path):
    for preset in shapes_scene.PRESETS:
        a = generate(task, tmp_path / f"{preset}-a", n_train=4, n_val=2, imgsz=64, seed=3, workers=1, preset=preset)
        b = generate(task, tmp_path / f"{preset}-b", n_train=4, n_val=2, imgsz=64, seed=3, workers=3, preset=preset)
        segment = generate("segment", tmp_path / f"{preset}-s", n_train=4, n_val=2, imgsz=64, seed=3, preset=preset)
        ta = tree(a)
        assert ta == tree(b) and len(ta) == 2 * 6 + 1  # byte-identical whatever the workers; images, labels, manifest
        assert {k: v for k, v in ta.items() if k.startswith("images/")} == {
            k: v for k, v in tree(segment).items() if k.startswith("images/")
        }
        manifest = json.loads(ta[shapes.MARKER])
        assert manifest["task"] == task and manifest["preset"] == preset
        if task == "semantic":
            classes = shapes_scene.PRESETS[preset].classes
            assert manifest["names"] == [*classes, "background"]
            masks = [cv2.imdecode(np.frombuffer(v, np.uint8), -1) for k, v in ta.items() if k.startswith("masks/")]
            ids = set(np.unique(masks).tolist())
            assert len(classes) in ids and ids <= {*range(len(classes) + 1), 255}  # the preset's background id, last


# -------------------------------------------------------------------------------------------------- generate logic
def test_complete_dataset_is_reused_and_others_replaced(tmp_path):
    root = generate("detect", tmp_path / "d", n_train=3, n_val=2, imgsz=64)
    (root / "sentinel").write_text("kept")
    assert generate("detect", root, n_train=3, n_val=2, imgsz=64) == root and (root / "sentinel").exists()
    generate("detect", root, n_train=4, n_val=2, imgsz=64)  # other settings: regenerated
    assert not (root / "sentinel").exists() and len(list((root / "images" / "train").iterdir())) == 4
    assert not [p for p in tmp_path.iterdir() if p.name != "d"]  # no staging folders left


def test_interrupted_generation_is_never_used(tmp_path, monkeypatch):
    calls = []

    def boom(*args):
        calls.append(args)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    real = shapes._make_image
    monkeypatch.setattr(shapes, "_make_image", boom)
    with pytest.raises(KeyboardInterrupt):
        generate("segment", tmp_path / "s", n_train=8, n_val=2, imgsz=64, workers=1)
    assert not list(tmp_path.iterdir())  # neither the dataset nor its staging folder
    monkeypatch.setattr(shapes, "_make_image", real)

    stale = tmp_path / ".s.partial-deadbeef"  # left by a killed process
    (stale / "images").mkdir(parents=True)
    os.utime(stale / "images", (time.time() - 7200,) * 2)
    os.utime(stale, (time.time() - 7200,) * 2)
    root = generate("segment", tmp_path / "s", n_train=8, n_val=2, imgsz=64)
    assert (root / shapes.MARKER).is_file() and not stale.exists()


def test_foreign_folder_is_left_alone(tmp_path):
    (tmp_path / "x" / "mine.txt").parent.mkdir()
    (tmp_path / "x" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate("detect", tmp_path / "x", n_train=2, n_val=1, imgsz=64)
    assert (tmp_path / "x" / "mine.txt").read_text() == "user data"
    with pytest.raises(ValueError, match="task must be one of"):
        generate("panoptic", tmp_path / "y")

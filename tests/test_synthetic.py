"""The synthetic scenes: determinism, ground-truth conventions, and the raw folder round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pixelnet.data import synthetic as syn
from pixelnet.data.synthetic import CLASSES, SPLITS, SyntheticConfig, read_raw, render, render_scene, write_raw

SIZE = 40
CFG = SyntheticConfig(image_size=SIZE, num_train=4, num_test=2, seed=3)


def _valid(normal: np.ndarray) -> np.ndarray:
    return np.any(normal != 0, axis=-1)  # (H, W)


def _full(seed: int, size: int = SIZE) -> dict[str, np.ndarray]:
    """A random scene with the private "instance" and "depth" maps too."""
    rng = np.random.default_rng(seed)
    return syn._draw(syn._random_scene(rng, 5), size, rng, 0.03)


def _single(obj: syn._Object, size: int = 48) -> dict[str, np.ndarray]:
    """One object in front of a flat, untilted background, no noise."""
    scene = syn._Scene(objects=[obj], plane=syn._Plane(np.array([0.0, 0.0, 1.0]), -3.0))
    return syn._draw(scene, size, np.random.default_rng(0), 0.0)


@pytest.mark.parametrize(
    "field, value",
    [("image_size", 8), ("num_train", 0), ("num_test", 0), ("noise_std", -0.1), ("max_objects", 0), ("seed", -1)],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: value})


def test_render_is_deterministic_and_scenes_differ() -> None:
    a, b = render(CFG, "train", 1), render(CFG, "train", 1)
    for key in ("image", "label", "normal", "edge"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], render(CFG, "train", 2)["image"])
    assert not np.array_equal(a["image"], render(CFG, "test", 1)["image"])
    seeded = render_scene(np.random.default_rng([CFG.seed, SPLITS.index("train"), 1]), SIZE)
    np.testing.assert_array_equal(a["normal"], seeded["normal"])


def test_render_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="val"):
        render(CFG, "val", 0)


@pytest.mark.parametrize("index", range(4))
def test_arrays_follow_the_contract(index: int) -> None:
    s = render(CFG, "train", index)
    assert s["image"].shape == (SIZE, SIZE, 3) and s["image"].dtype == np.uint8
    assert s["label"].shape == (SIZE, SIZE) and s["label"].dtype == np.uint8
    assert s["normal"].shape == (SIZE, SIZE, 3) and s["normal"].dtype == np.float32
    assert s["edge"].shape == (SIZE, SIZE) and s["edge"].dtype == np.uint8
    assert s["label"].max() < len(CLASSES)
    assert set(np.unique(s["edge"])) <= {0, 1}
    valid = _valid(s["normal"])
    np.testing.assert_allclose(np.linalg.norm(s["normal"][valid], axis=-1), 1.0, atol=1e-5)
    assert (s["normal"][valid][:, 2] > 0).all()  # every visible surface faces the viewer
    assert (s["normal"][~valid] == 0).all()
    assert 0.0 < (~valid).mean() < 0.06  # a few sensor-like holes


@pytest.mark.parametrize("seed", range(6))
def test_edges_are_the_occluder_side_of_instance_changes(seed: int) -> None:
    s = _full(seed)
    inst, depth, edge = s["instance"], s["depth"], s["edge"].astype(bool)
    for axis in (0, 1):
        n = SIZE - 1
        ia, ib = (inst[:n], inst[1:]) if axis == 0 else (inst[:, :n], inst[:, 1:])
        za, zb = (depth[:n], depth[1:]) if axis == 0 else (depth[:, :n], depth[:, 1:])
        ea, eb = (edge[:n], edge[1:]) if axis == 0 else (edge[:, :n], edge[:, 1:])
        differ = ia != ib
        assert (ea | eb)[differ].all()  # every boundary is marked...
        assert (ea[differ & (za > zb)]).all()  # ...on the nearer side
        assert (eb[differ & (zb > za)]).all()
    # No edge away from a boundary: every edge pixel has a 4-neighbour of another instance.
    pad = np.pad(inst, 1, mode="edge")
    neighbour_differs = (
        (pad[:-2, 1:-1] != inst) | (pad[2:, 1:-1] != inst) | (pad[1:-1, :-2] != inst) | (pad[1:-1, 2:] != inst)
    )
    assert not (edge & ~neighbour_differs).any()
    # A label change is always an instance change, so it is always marked on one side.
    lab = s["label"]
    assert (edge[:-1] | edge[1:])[lab[:-1] != lab[1:]].all()
    assert edge.mean() < 0.15  # thin


def test_sphere_normals_follow_the_camera_convention() -> None:
    r = 0.6
    s = _single(syn._Sphere(center=np.array([0.0, 0.0, 0.0]), radius=r))
    normal, label = s["normal"], s["label"]
    mid = 24  # the centre of a 48 px image lies between rows/columns 23 and 24
    assert label[mid, mid] == CLASSES.index("sphere") and label[0, 0] == CLASSES.index("background")
    top, bottom = normal[mid - 12, mid], normal[mid + 12, mid]  # rows grow downwards
    left, right = normal[mid, mid - 12], normal[mid, mid + 12]
    for n in (top, bottom, left, right):
        if np.any(n):  # skip a pixel that fell in a hole
            assert n[2] > 0
    if np.any(top) and np.any(bottom):
        assert top[1] > 0.3 and bottom[1] < -0.3 and abs(top[0]) < 0.1
    if np.any(left) and np.any(right):
        assert right[0] > 0.3 and left[0] < -0.3 and abs(right[1]) < 0.1
    # The whole disc agrees with the analytic sphere normal (x, y, sqrt(r^2 - x^2 - y^2)) / r.
    coords = (np.arange(48) + 0.5) / 48 * 2 - 1
    x, y = np.meshgrid(coords, -coords)
    inside = (x**2 + y**2 < r**2 * 0.95) & _valid(normal)
    expected = np.stack([x, y, np.sqrt(np.maximum(r**2 - x**2 - y**2, 0))], -1) / r
    np.testing.assert_allclose(normal[inside], expected[inside], atol=1e-5)
    np.testing.assert_array_equal(label == CLASSES.index("sphere"), x**2 + y**2 <= r**2)


def test_box_and_cylinder_normals() -> None:
    box = _single(syn._Box(np.zeros(3), np.array([0.4, 0.4, 0.4]), np.eye(3)))
    assert box["label"][24, 24] == CLASSES.index("box")
    front = box["normal"][_valid(box["normal"]) & (box["label"] == CLASSES.index("box"))]
    np.testing.assert_allclose(front, np.tile([0.0, 0.0, 1.0], (len(front), 1)), atol=1e-6)
    # A cylinder lying along x: its side bulges towards the viewer, up at the top, down at the bottom.
    lying = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # column 2 = x axis
    cyl = _single(syn._Cylinder(np.zeros(3), 0.4, 0.6, lying))
    assert cyl["label"][24, 24] == CLASSES.index("cylinder")
    col = cyl["normal"][:, 24]  # (H, 3)
    on = _valid(col[:, None])[:, 0] & (cyl["label"][:, 24] == CLASSES.index("cylinder"))
    rows = np.flatnonzero(on)
    assert col[rows[0], 1] > 0.5 and col[rows[-1], 1] < -0.5
    np.testing.assert_allclose(col[on, 0], 0.0, atol=1e-6)


def test_background_is_a_wall_and_a_floor() -> None:
    """Two background planes: a wall tilted at most 20 degrees, and a floor facing up, below it."""
    tilts, floors = [], 0
    for i in range(8):
        s = render(CFG, "train", i)
        mask = (s["label"] == 0) & _valid(s["normal"])
        bg = s["normal"][mask]
        distinct = np.unique(np.round(bg, 4), axis=0)
        assert 1 <= len(distinct) <= 2
        wall = distinct[np.argmax(distinct[:, 2])]
        tilts.append(np.degrees(np.arccos(wall[2])))
        if len(distinct) == 2:
            floor = distinct[np.argmin(distinct[:, 2])]
            assert floor[1] > 0.4  # faces up
            rows = np.nonzero(mask)[0]
            on_floor = np.all(np.isclose(bg, floor, atol=1e-3), axis=1)
            assert rows[on_floor].mean() > rows[~on_floor].mean()  # below the wall
            floors += 1
    assert max(tilts) > 3.0 and max(tilts) <= 20.0 + 1e-3
    assert floors >= 4


def test_coverage_and_class_not_colour() -> None:
    cfg = SyntheticConfig(image_size=32, num_train=30, num_test=1, seed=1)
    coverage, means = [], {k: [] for k in range(1, len(CLASSES))}
    for i in range(cfg.num_train):
        s = render(cfg, "train", i)
        coverage.append((s["label"] > 0).mean())
        for k in means:
            sel = s["label"] == k
            if sel.sum() >= 20:
                means[k].append(s["image"][sel].mean(axis=0))
    assert 0.2 < np.mean(coverage) < 0.6
    for k, m in means.items():
        assert len(m) >= 5, CLASSES[k]
        assert np.std(np.array(m), axis=0).mean() > 15.0, CLASSES[k]  # colour varies across scenes


def test_write_read_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "raw" / "synthetic"
    meta = write_raw(CFG, out, progress=False)
    assert meta["counts"] == {"train": 4, "test": 2} and meta["classes"] == list(CLASSES)
    assert meta["config"] == dataclasses.asdict(CFG)
    for split in SPLITS:
        items = list(read_raw(out, split))
        assert [k for k, _ in items] == [f"synthetic-{split}-{i:05d}" for i in range(CFG.count(split))]
        for i, (_, arrays) in enumerate(items):
            expected = render(CFG, split, i)
            for key in ("image", "label", "normal", "edge"):
                np.testing.assert_array_equal(arrays[key], expected[key])
    # Writing again replaces the folder and leaves no temp directories behind.
    write_raw(dataclasses.replace(CFG, num_train=1), out, progress=False)
    assert len(list(read_raw(out, "train"))) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["synthetic"]


def test_failed_write_leaves_previous_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "synthetic"
    write_raw(CFG, out, progress=False)

    def boom(config: SyntheticConfig, split: str, index: int) -> dict[str, np.ndarray]:
        if split == "test":
            raise RuntimeError("disk on fire")
        return render(config, split, index)

    monkeypatch.setattr(syn, "render", boom)
    with pytest.raises(RuntimeError):
        write_raw(dataclasses.replace(CFG, num_train=1), out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]
    assert len(list(read_raw(out, "train"))) == CFG.num_train


def test_read_raw_names_the_broken_file(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    write_raw(CFG, out, progress=False)
    bad = out / "train" / "synthetic-train-00002.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="synthetic-train-00002.npz"):
        list(read_raw(out, "train"))
    np.savez(bad, label=np.zeros((SIZE, SIZE), np.uint8))  # valid zip, missing arrays
    with pytest.raises(ValueError, match="synthetic-train-00002.npz"):
        list(read_raw(out, "train"))
    (out / "test" / "synthetic-test-00001.png").unlink()
    with pytest.raises(FileNotFoundError, match="synthetic-test-00001.png"):
        list(read_raw(out, "test"))
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        list(read_raw(tmp_path, "train"))

"""The synthetic scenes: determinism, ground-truth conventions, and the raw folder round trip."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelnet.data import portable as pm
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


# ----------------------------------------------------------------------------- same bytes on every machine

# sha256 of each array's bytes (little-endian, C order) for three of CFG's scenes. The render uses
# only exactly rounded float64 arithmetic (see the module docstring), so these hold on any CPU; a
# deliberate change to the scenes updates them (and moves the DVC hashes of data/raw/synthetic).
PINNED = {
    ("train", 0): {
        "image": "6aee6df1f131e9b0c88f40294550494962921f4154ea40b1083c2a6fdcb33c0f",
        "label": "555c8e3ade1ba8cb53a41aad2dbe09cb86fd84ea32c8c80c4ed14bf233ce0025",
        "normal": "319d97d0f36ac3882adb6fe487d81bddabfcd504a2851fade94bac555a97daf7",
        "edge": "25d77366559e0d168a516a13b005a959a5b55c45a110acc0ad5cda049731a795",
    },
    ("train", 1): {
        "image": "773df74682bd58012e6ffba5a0bef99e7adc599f3616ce57253e9a5f40640e48",
        "label": "fd99ac46c8fb91b61bd8bdcd4087fdc9638bfe4ca6320eeb226f4d74309a4e06",
        "normal": "37647d66592c88599117727d15e59317c91255d8e82d751fc55ddf1bf8f4b577",
        "edge": "42fd36cb3104bf8cee0d0a7a69801625f4501aec795eb730daaca8d2029ff494",
    },
    ("test", 0): {
        "image": "90cf0707ee1742c9e473e94808ec87e5295117e357c6bc769ee29ee797944b21",
        "label": "d599dee3dbc0336f7ad55c391afdb47abde2b1d5df92e54fef9aa97e1905f206",
        "normal": "af91c55d09e45076e1490ede6edd16014e6dda829935004f3d93224684118dcd",
        "edge": "31e0f4b4b1539a3a9b2d2ea0a405f79263acf4ca193c8c43fc174f5ba0c7b0f3",
    },
}


def _digests(scene: dict[str, np.ndarray]) -> dict[str, str]:
    return {
        key: hashlib.sha256(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()).hexdigest()
        for key, a in scene.items()
    }


def _everything(config: SyntheticConfig, split: str, index: int) -> dict[str, str]:
    """Digests of what render() returns and of the float64 maps behind it (depth, colour before
    rounding), which show a one-ulp difference that the uint8 image would almost always hide."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    out = syn._draw(syn._random_scene(rng, config.max_objects), config.image_size, rng, config.noise_std)
    public = render(config, split, index)
    assert all(np.array_equal(public[k], out[k]) for k in public)  # the same scene as render()'s
    return _digests(out)


def test_render_bytes_are_pinned() -> None:
    assert {key: _digests(render(CFG, *key)) for key in PINNED} == PINNED


_CHILD = """
import json, sys
try:
    import cv2
except ImportError:
    pass
else:
    cv2.setUseOptimized(False)
    cv2.setNumThreads(1)
from numpy._core import _multiarray_umath as umath
from pixelnet.data.synthetic import SyntheticConfig
sys.path.insert(0, sys.argv[1])
from test_synthetic import _everything
disabled = sys.argv[2].split()
cfg = SyntheticConfig(**json.loads(sys.argv[3]))
scenes = {f"{split}-{i}": _everything(cfg, split, i) for split in ("train", "test") for i in range(cfg.count(split))}
print(json.dumps({"still_enabled": [f for f in disabled if umath.__cpu_features__.get(f)], "scenes": scenes}))
"""


def _plain_cpu_env() -> tuple[dict[str, str], list[str]]:
    """Environment for a process that takes the slow, generic paths: numpy's SIMD dispatch off for
    every target this CPU would use, OpenBLAS on an old core's kernels, one thread, and glibc's
    AVX2/FMA variants of libm switched off. Returns (env, the numpy features switched off)."""
    from numpy._core import _multiarray_umath as umath

    disabled = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if disabled:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disabled)
    if platform.machine().lower() in ("x86_64", "amd64"):
        env["OPENBLAS_CORETYPE"] = "Nehalem"  # SSE4.2: no AVX kernels
        env["GLIBC_TUNABLES"] = "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"
    return env, disabled


def test_render_bytes_do_not_depend_on_cpu_code_paths() -> None:
    """The same scenes rendered in a process forced onto generic code paths come out byte-identical."""
    cfg = SyntheticConfig(image_size=SIZE, num_train=4, num_test=2, seed=11)
    env, disabled = _plain_cpu_env()
    args = [str(Path(__file__).parent), " ".join(disabled), json.dumps(dataclasses.asdict(cfg))]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["still_enabled"] == [], "NPY_DISABLE_CPU_FEATURES did not take effect"
    here = {f"{split}-{i}": _everything(cfg, split, i) for split in SPLITS for i in range(cfg.count(split))}
    assert child["scenes"] == here


_BANNED_NP = {
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh",
    "arctanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "logaddexp", "logaddexp2", "power",
    "float_power", "hypot", "cbrt", "radians", "deg2rad", "degrees", "rad2deg", "dot", "vdot", "inner", "matmul",
    "einsum", "tensordot", "linalg",
}  # fmt: skip
_BANNED_MATH = {
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "exp",
    "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "hypot", "dist", "cbrt", "erf", "erfc", "gamma", "lgamma",
}  # fmt: skip
_BANNED_CALLS = {  # Generator methods that go through libm, and array methods that go through BLAS
    "normal", "standard_normal", "exponential", "standard_exponential", "lognormal", "gamma", "standard_gamma",
    "beta", "chisquare", "dot", "vdot",
}  # fmt: skip


def test_render_avoids_cpu_dependent_operations() -> None:
    """A guard for the CPUs this machine cannot imitate: the module never names a transcendental
    numpy/math function, BLAS, `@`, `**`, a libm-backed random distribution, or cv2."""
    found = []
    for node in (n for module in (syn, pm) for n in ast.walk(ast.parse(Path(module.__file__).read_text()))):
        if isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.MatMult | ast.Pow):
            found.append(f"line {node.lineno}: {type(node.op).__name__}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            banned = {"np": _BANNED_NP, "numpy": _BANNED_NP, "math": _BANNED_MATH}.get(node.value.id, set())
            if node.attr in banned:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        portable = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            isinstance(node.func.value, ast.Name) and node.func.value.id == "pm"  # our exact helpers
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _BANNED_CALLS \
                and not portable:
            found.append(f"line {node.lineno}: .{node.func.attr}()")
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"line {node.lineno}: import {n}" for n in names if n and n.split(".")[0] in ("cv2", "scipy")]
    assert found == []


def test_portable_math_matches_numpy() -> None:
    x = np.linspace(-60.0, 60.0, 100_001)
    sin, cos = pm.sin_cos(x)
    np.testing.assert_allclose(sin, np.sin(x), rtol=0, atol=4e-16)
    np.testing.assert_allclose(cos, np.cos(x), rtol=0, atol=4e-16)
    u = np.concatenate([np.geomspace(2.0**-53, 1.0, 50_001), np.linspace(0.5, 2.0, 1001)])
    np.testing.assert_allclose(pm.log(u), np.log(u), rtol=1e-15, atol=1e-16)
    assert pm.log(np.array([1.0]))[0] == 0.0
    z = pm.normal(np.random.default_rng(0), (501, 401))  # bounds below are about 5 standard errors
    assert z.shape == (501, 401) and abs(z.mean()) < 0.011 and abs(z.std() - 1.0) < 0.008
    assert abs((np.abs(z) > 2.0).mean() - 0.0455) < 0.0025
    base = np.linspace(0.0, 1.0, 1001)
    for n in (1, 2, 8, 37, 64):
        np.testing.assert_allclose(pm.ipow(base, n), base**n, rtol=1e-14, atol=1e-300)
    p, m = np.random.default_rng(1).normal(size=(50, 3)), np.random.default_rng(2).normal(size=(3, 4))
    np.testing.assert_allclose(pm.apply(p, m), p @ m, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(pm.apply(np.broadcast_to(p[0], p.shape), m), np.tile(p[0] @ m, (50, 1)), rtol=1e-14)

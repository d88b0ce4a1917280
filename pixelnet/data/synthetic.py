"""The embedded default dataset: ray-cast scenes with exact class, normal and edge ground truth.

One render gives all three tasks, so a model trained on any of them sees the same pictures. The
scenes are small but not trivial: shading and cast shadows on curved surfaces, textures chosen
independently of the shape, sensor-like holes in the normals and pixel noise, so that an edge is
not just a colour change, a normal is not just a colour and a class is not just a colour.

Camera: orthographic, looking down -z, the image covers [-1, 1]^2 in x (right) and y (up); all
geometry lives in that camera frame, so normals come out in the shared convention directly.

The render is the same bytes on every machine. Everything is float64 and uses only operations that
IEEE 754 rounds exactly (+, -, *, /, sqrt, comparisons, floor/rint, frexp), each one a separate
numpy ufunc, so no fused multiply-add either. Nothing CPU-dependent is reached: no transcendental
ufuncs (numpy dispatches exp/log/pow/arccos to AVX-512 SVML loops, and glibc picks FMA variants of
sin/cos/exp/log/pow at load time), no `@`/dot/norm/einsum (OpenBLAS picks its kernels by CPU), no
Python `**` (libm pow), no cv2. Sine, cosine and log are `pixelnet.data.portable`'s polynomials;
Gaussian draws are Box-Muller on raw uniform doubles (the generator's own normal() calls libm exp/log1p). The result is
rounded once at the end: to uint8 for images, to float32 for normals.
tests/test_synthetic.py pins the hashes, and renders again with numpy's SIMD dispatch, OpenBLAS's
kernel choice and glibc's FMA variants turned down, expecting the same bytes.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pixelnet.atomic import atomic_dir
from pixelnet.data import fetch
from pixelnet.data import portable as pm

CLASSES: tuple[str, ...] = ("background", "sphere", "box", "cylinder")
SPLITS = ("train", "test")

_EYE_Z = 10.0  # primary rays start here, far in front of every object
_EPS = 1e-6
_FAR = np.inf
_DEG = np.pi / 180.0  # the same constant np.radians multiplies by


@dataclass(frozen=True)
class SyntheticConfig:
    image_size: int = 80
    num_train: int = 200
    num_test: int = 40
    seed: int = 0
    noise_std: float = 0.03  # Gaussian pixel noise, image in [0, 1] units
    max_objects: int = 5

    def __post_init__(self) -> None:
        checks = {
            "image_size": (self.image_size, 16),
            "num_train": (self.num_train, 1),
            "num_test": (self.num_test, 1),
            "seed": (self.seed, 0),  # SeedSequence rejects negative entries
            "max_objects": (self.max_objects, 1),
        }
        for name, (value, low) in checks.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if isinstance(self.noise_std, bool) or not isinstance(self.noise_std, int | float):
            raise ValueError(f"noise_std must be a number, got {self.noise_std!r}")
        if not self.noise_std >= 0:  # also rejects NaN
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")

    def count(self, split: str) -> int:
        """Number of scenes in a split."""
        _split_index(split)
        return self.num_train if split == "train" else self.num_test


# ----------------------------------------------------------------------------- scene description


@dataclass
class _Texture:
    """Solid texture evaluated at object-local 3D points, so it sticks to the surface."""

    kind: str = "plain"  # "plain" | "stripes" | "checker" | "noise"
    color_a: np.ndarray = field(default_factory=lambda: np.array([0.7, 0.7, 0.7]))
    color_b: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.3, 0.3]))
    contrast: float = 0.0
    freq: float = 3.0
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))  # (3, 3) rows = directions
    phases: np.ndarray = field(default_factory=lambda: np.zeros(3))
    square: bool = False
    waves: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # (K, dir3 + freq + phase)

    def albedo(self, p: np.ndarray) -> np.ndarray:
        """Colour at local points p (N, 3) -> (N, 3)."""
        if self.kind == "stripes":
            s = pm.sin(2 * np.pi * self.freq * pm.dot(p, self.axes[0]) + self.phases[0])  # (N,)
            t = (s > 0).astype(np.float64) if self.square else 0.5 + 0.5 * s
        elif self.kind == "checker":
            cells = np.floor(self.freq * pm.apply(p, self.axes.T) + self.phases)  # (N, 3), integers
            t = np.mod(cells[:, 0] + cells[:, 1] + cells[:, 2], 2.0)
        elif self.kind == "noise":
            dirs, freqs, phases = self.waves[:, :3], self.waves[:, 3], self.waves[:, 4]
            waves = pm.sin(2 * np.pi * pm.apply(p, dirs.T) * freqs + phases)  # (N, K)
            s = waves[:, 0]
            for k in range(1, waves.shape[1]):  # a fixed summation order
                s = s + waves[:, k]
            t = np.clip(0.5 + 0.5 * s / np.sqrt(len(freqs) / 2.0), 0.0, 1.0)
        else:
            t = np.zeros(len(p))
        t = self.contrast * t[:, None]  # (N, 1)
        return self.color_a * (1.0 - t) + self.color_b * t


@dataclass
class _Material:
    texture: _Texture = field(default_factory=_Texture)
    specular: float = 0.0
    shininess: int = 16  # an integer, so the highlight is a product, not a libm pow


@dataclass
class _Sphere:
    center: np.ndarray
    radius: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # texture frame only
    material: _Material = field(default_factory=_Material)
    label: int = CLASSES.index("sphere")

    def hit(self, o: np.ndarray, d: np.ndarray, surface: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest hit t > 0 along rays o + t d (unit d): t (N,), normal (N, 3), local point (N, 3);
        with surface=False only t (a shadow ray needs no more), the other two None."""
        oc = o - self.center  # (N, 3)
        b = pm.dot(oc, d)
        c = pm.dot(oc, oc) - self.radius * self.radius
        disc = b * b - c
        sq = np.sqrt(np.maximum(disc, 0.0))
        t1, t2 = -b - sq, -b + sq
        t = np.where(t1 > _EPS, t1, np.where(t2 > _EPS, t2, _FAR))
        t = np.where(disc >= 0, t, _FAR)
        if not surface:
            return t, None, None
        local = oc + np.where(np.isfinite(t), t, 0.0)[:, None] * d  # (N, 3)
        return t, local / self.radius, pm.apply(local, self.rotation)


@dataclass
class _Box:
    """A rotated cuboid; ray-slab intersection in the box frame."""

    center: np.ndarray
    half: np.ndarray  # (3,) half-extents along the box axes
    rotation: np.ndarray  # (3, 3) columns = box axes in the camera frame
    material: _Material = field(default_factory=_Material)
    label: int = CLASSES.index("box")

    def hit(self, o: np.ndarray, d: np.ndarray, surface: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ol = pm.apply(o - self.center, self.rotation)  # (N, 3) box frame
        dl = pm.apply(d, self.rotation)
        dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)  # a parallel ray never crosses that slab
        t1 = (-self.half - ol) / dl
        t2 = (self.half - ol) / dl
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)  # (N, 3)
        near, far = tmin.max(axis=1), tmax.min(axis=1)
        axis = tmin.argmax(axis=1)
        t = np.where(near > _EPS, near, far)
        t = np.where((near <= far) & (far > _EPS), t, _FAR)
        if not surface:
            return t, None, None
        rows = np.arange(len(o))
        nl = np.zeros_like(ol)
        nl[rows, axis] = -np.sign(dl[rows, axis])  # the entered face faces the ray
        local = ol + np.where(np.isfinite(t), t, 0.0)[:, None] * dl
        return t, pm.apply(nl, self.rotation.T), local


@dataclass
class _Cylinder:
    """A finite capped cylinder along rotation[:, 2]."""

    center: np.ndarray
    radius: float
    half_height: float
    rotation: np.ndarray  # (3, 3) columns = cylinder frame; column 2 is the axis
    material: _Material = field(default_factory=_Material)
    label: int = CLASSES.index("cylinder")

    def hit(self, o: np.ndarray, d: np.ndarray, surface: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ol = pm.apply(o - self.center, self.rotation)  # (N, 3) cylinder frame
        dl = pm.apply(d, self.rotation)
        r, h = self.radius, self.half_height
        a = dl[:, 0] * dl[:, 0] + dl[:, 1] * dl[:, 1]
        b = 2.0 * (ol[:, 0] * dl[:, 0] + ol[:, 1] * dl[:, 1])
        c = ol[:, 0] * ol[:, 0] + ol[:, 1] * ol[:, 1] - r * r
        disc = b * b - 4.0 * a * c
        side_ok = (a > 1e-12) & (disc >= 0)
        sq = np.sqrt(np.maximum(disc, 0.0))
        safe_a = np.where(side_ok, 2.0 * a, 1.0)
        cands = []
        for sgn in (-1.0, 1.0):  # the two side roots
            ts = (-b + sgn * sq) / safe_a
            ok = side_ok & (ts > _EPS) & (np.abs(ol[:, 2] + ts * dl[:, 2]) <= h)
            cands.append(np.where(ok, ts, _FAR))
        safe_dz = np.where(np.abs(dl[:, 2]) > 1e-12, dl[:, 2], 1e-12)
        for cap in (-h, h):
            tc = (cap - ol[:, 2]) / safe_dz
            px, py = ol[:, 0] + tc * dl[:, 0], ol[:, 1] + tc * dl[:, 1]
            ok = (np.abs(dl[:, 2]) > 1e-12) & (tc > _EPS) & (px * px + py * py <= r * r)
            cands.append(np.where(ok, tc, _FAR))
        cand = np.stack(cands, axis=1)  # (N, 4): side, side, bottom cap, top cap
        which = cand.argmin(axis=1)
        t = cand[np.arange(len(o)), which]
        if not surface:
            return t, None, None
        local = ol + np.where(np.isfinite(t), t, 0.0)[:, None] * dl  # (N, 3)
        nl = np.zeros_like(ol)
        is_side = which < 2
        nl[is_side, :2] = local[is_side, :2] / r
        nl[which == 2, 2] = -1.0
        nl[which == 3, 2] = 1.0
        return t, pm.apply(nl, self.rotation.T), local


@dataclass
class _Plane:
    """Background: an infinite plane through (0, 0, z0), tilted towards the viewer."""

    normal: np.ndarray  # (3,) unit, z > 0
    z0: float
    material: _Material = field(default_factory=_Material)
    label: int = CLASSES.index("background")

    def hit(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p0 = np.array([0.0, 0.0, self.z0])
        denom = pm.dot(d, self.normal)  # (N,)
        safe = np.where(np.abs(denom) > 1e-12, denom, 1e-12)
        t = pm.dot(p0 - o, self.normal) / safe
        t = np.where((np.abs(denom) > 1e-12) & (t > _EPS), t, _FAR)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d - p0  # (N, 3)
        u = pm.cross(self.normal, np.array([0.0, 1.0, 0.0]))
        u /= pm.norm(u)
        v = pm.cross(self.normal, u)
        local = np.stack([pm.dot(p, u), pm.dot(p, v), np.zeros(len(p))], axis=1)  # in-plane coordinates
        return t, np.broadcast_to(self.normal, o.shape).copy(), local


_Object = _Sphere | _Box | _Cylinder


@dataclass
class _Scene:
    objects: Sequence[_Object]
    plane: _Plane
    floor: _Plane | None = None  # a ground plane meeting the back wall: background normals follow the room's layout
    light: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))  # unit, z > 0
    light_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    ambient: float = 0.35


# ----------------------------------------------------------------------------- random scenes


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = pm.normal(rng, 4)
    w, x, y, z = (q / pm.norm(q)).tolist()
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _random_texture(rng: np.random.Generator, freq_range: tuple[float, float]) -> _Texture:
    """Colours and pattern are drawn without looking at the shape, so class is not colour."""
    kind = str(rng.choice(["plain", "stripes", "checker", "noise"], p=[0.1, 0.3, 0.25, 0.35]))
    k = 5
    dirs = pm.normal(rng, (k, 3))
    dirs /= pm.norm(dirs)[:, None]
    waves = np.concatenate(
        [dirs, rng.uniform(*freq_range, size=(k, 1)) * 0.6, rng.uniform(0, 2 * np.pi, (k, 1))], axis=1
    )
    return _Texture(
        kind=kind,
        color_a=rng.uniform(0.12, 0.95, 3),
        color_b=rng.uniform(0.12, 0.95, 3),
        contrast=float(rng.uniform(0.35, 1.0)),
        freq=float(rng.uniform(*freq_range)),
        axes=_random_rotation(rng).T,
        phases=rng.uniform(0, 2 * np.pi, 3),
        square=bool(rng.random() < 0.5),
        waves=waves,
    )


def _random_material(rng: np.random.Generator, freq_range: tuple[float, float]) -> _Material:
    return _Material(
        texture=_random_texture(rng, freq_range),
        specular=float(rng.uniform(0.0, 0.35) if rng.random() < 0.6 else 0.0),
        shininess=int(np.rint(rng.uniform(8.0, 64.0))),
    )


def _random_object(rng: np.random.Generator) -> _Object:
    shape = int(rng.integers(1, len(CLASSES)))
    center = np.array([*rng.uniform(-0.75, 0.75, 2), rng.uniform(-0.3, 0.3)])
    material = _random_material(rng, (2.0, 7.0))
    rotation = _random_rotation(rng)
    if CLASSES[shape] == "sphere":
        return _Sphere(center, float(rng.uniform(0.25, 0.55)), rotation, material)
    if CLASSES[shape] == "box":
        return _Box(center, rng.uniform(0.17, 0.46, 3), rotation, material)
    return _Cylinder(center, float(rng.uniform(0.17, 0.4)), float(rng.uniform(0.22, 0.55)), rotation, material)


def _bounding_radius(obj: _Object) -> float:
    if isinstance(obj, _Sphere):
        return obj.radius
    if isinstance(obj, _Box):
        return float(pm.norm(obj.half))
    return float(np.sqrt(obj.radius * obj.radius + obj.half_height * obj.half_height))


def _random_scene(rng: np.random.Generator, max_objects: int) -> _Scene:
    n = int(rng.integers(min(2, max_objects), max_objects + 1))
    objects = [_random_object(rng) for _ in range(n)]
    # Back wall: a random tilt of up to 20 degrees around the viewing direction.
    tilt, azim = rng.uniform(0.0, 20.0 * _DEG), rng.uniform(0.0, 2 * np.pi)
    (sin_t, sin_a), (cos_t, cos_a) = pm.sin_cos([tilt, azim])
    normal = np.array([sin_t * cos_a, sin_t * sin_a, cos_t])
    # Put the wall behind every object's bounding sphere: n.c - nz z0 >= R + margin.
    z0 = min((float(pm.dot(normal, o.center)) - _bounding_radius(o) - 0.05) / normal[2] for o in objects)
    z0 -= rng.uniform(0.0, 0.4)
    plane = _Plane(normal, float(z0), _random_material(rng, (1.5, 5.0)))
    # Floor: faces up (y > 0) and towards the viewer, meeting the wall on a random horizon row, so
    # that, as in indoor scenes, where a background pixel lies tells which way its surface faces.
    elev, roll = rng.uniform(25.0 * _DEG, 60.0 * _DEG), rng.uniform(-0.25, 0.25)
    (sin_e, sin_r), (cos_e, cos_r) = pm.sin_cos([elev, roll])
    fn = np.array([sin_r * sin_e, cos_r * sin_e, cos_e])
    horizon_y = rng.uniform(-0.6, 0.3)
    wall_z = z0 - (normal[1] * horizon_y) / normal[2]  # the wall's depth at (0, horizon_y)
    floor = _Plane(fn, float((fn[1] * horizon_y) / fn[2] + wall_z), _random_material(rng, (1.5, 5.0)))
    elev, lazim = rng.uniform(25.0 * _DEG, 85.0 * _DEG), rng.uniform(0.0, 2 * np.pi)
    (sin_e, sin_a), (cos_e, cos_a) = pm.sin_cos([elev, lazim])
    light = np.array([cos_e * cos_a, cos_e * sin_a, sin_e])
    return _Scene(
        objects=objects,
        plane=plane,
        floor=floor,
        light=light,
        light_color=rng.uniform(0.85, 1.0, 3),
        ambient=float(rng.uniform(0.2, 0.45)),
    )


# ----------------------------------------------------------------------------- rendering


def _pixel_rays(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins (H*W, 3) through pixel centres, and the shared direction (H*W, 3)."""
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x = np.broadcast_to(coords[None, :], (size, size))  # columns go right
    y = np.broadcast_to(-coords[:, None], (size, size))  # rows go down, y goes up
    o = np.stack([x.ravel(), y.ravel(), np.full(size * size, _EYE_Z)], axis=1)  # (N, 3)
    d = np.broadcast_to(np.array([0.0, 0.0, -1.0]), o.shape)
    return o, d


def _hole_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A few small elliptical blobs, 1-3% of the pixels, like depth-sensor holes."""
    n_blobs = int(rng.integers(2, 6))
    area = rng.uniform(0.01, 0.03) * size * size / n_blobs
    rows, cols = np.mgrid[0:size, 0:size] + 0.5  # (H, W) each
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(n_blobs):
        cr, cc = rng.uniform(0, size, 2)
        aspect, theta = rng.uniform(0.5, 2.0), rng.uniform(0, np.pi)
        ra, rb = np.sqrt(area / np.pi * aspect), np.sqrt(area / np.pi / aspect)
        dr, dc = rows - cr, cols - cc
        sin, cos = pm.sin_cos(theta)
        u = (dr * cos + dc * sin) / ra
        v = (-dr * sin + dc * cos) / rb
        mask |= u * u + v * v <= 1.0
        mask[min(int(cr), size - 1), min(int(cc), size - 1)] = True  # never an empty blob
    return mask


def _occluder_edges(instance: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Mark, for every 4-neighbour pair of different instances, the nearer pixel only: 1 px edges."""
    edge = np.zeros(instance.shape, dtype=bool)
    for axis in (0, 1):
        n = instance.shape[axis]
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(0, n - 1), slice(1, n)
        ia, ib, za, zb = instance[tuple(a)], instance[tuple(b)], depth[tuple(a)], depth[tuple(b)]
        differ = ia != ib
        a_nearer = (za > zb) | ((za == zb) & (ia > ib))  # z towards the viewer: larger is nearer
        edge[tuple(a)] |= differ & a_nearer
        edge[tuple(b)] |= differ & ~a_nearer
    return edge


def _cast(scene: _Scene, o: np.ndarray, d: np.ndarray) -> dict[str, np.ndarray]:
    """Z-buffer over the plane and the objects: t, instance (0 = plane), normal, local point."""
    t, normal, local = scene.plane.hit(o, d)
    instance = np.zeros(len(o), dtype=np.int32)
    for k, obj in enumerate(scene.objects, start=1):
        tk, nk, lk = obj.hit(o, d)
        nearer = tk < t
        t = np.where(nearer, tk, t)
        instance[nearer] = k
        normal[nearer] = nk[nearer]
        local[nearer] = lk[nearer]
    if scene.floor is not None:  # the floor is the last instance
        tk, nk, lk = scene.floor.hit(o, d)
        nearer = tk < t
        t = np.where(nearer, tk, t)
        instance[nearer] = len(scene.objects) + 1
        normal[nearer] = nk[nearer]
        local[nearer] = lk[nearer]
    return {"t": t, "instance": instance, "normal": normal, "local": local}


def _shadowed(scene: _Scene, points: np.ndarray, normal: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """True where another object blocks the light (convex objects cannot shadow themselves)."""
    blocked = np.zeros(len(points), dtype=bool)
    o = points + 1e-4 * normal  # (N, 3) lift off the surface
    d = np.broadcast_to(scene.light, o.shape)
    for k, obj in enumerate(scene.objects, start=1):
        tk, _, _ = obj.hit(o, d, surface=False)
        blocked |= np.isfinite(tk) & (instance != k)
    return blocked


def _draw(scene: _Scene, size: int, rng: np.random.Generator, noise_std: float) -> dict[str, np.ndarray]:
    """Render a fixed scene; returns the public arrays plus, for tests, "instance", "depth" and "rgb"
    (the float64 colour, noise included, before it is rounded to the uint8 image)."""
    o, d = _pixel_rays(size)
    hit = _cast(scene, o, d)
    normal = hit["normal"]  # (N, 3)
    # A grazing hit can come out with n_z == 0 in floating point; keep it strictly visible.
    normal[:, 2] = np.maximum(normal[:, 2], 1e-4)
    normal /= pm.norm(normal)[:, None]
    instance = hit["instance"]
    points = o + hit["t"][:, None] * d  # (N, 3)

    floors = [scene.floor] if scene.floor is not None else []
    materials = [scene.plane.material] + [obj.material for obj in scene.objects] + [f.material for f in floors]
    albedo = np.empty_like(points)
    specular = np.empty(len(points))
    shininess = np.empty(len(points), dtype=np.int64)
    labels = np.array([scene.plane.label] + [obj.label for obj in scene.objects] + [f.label for f in floors], dtype=np.uint8)
    for k, mat in enumerate(materials):
        sel = instance == k
        if sel.any():
            albedo[sel] = mat.texture.albedo(hit["local"][sel])
            specular[sel], shininess[sel] = mat.specular, mat.shininess

    lambert = np.clip(pm.dot(normal, scene.light), 0.0, None)  # (N,)
    lit = lambert > 0
    shadow = np.zeros(len(points), dtype=bool)
    shadow[lit] = _shadowed(scene, points[lit], normal[lit], instance[lit])
    direct = np.where(shadow, 0.0, lambert)
    half = scene.light + np.array([0.0, 0.0, 1.0])
    half /= pm.norm(half)
    highlight = np.zeros(len(points))
    cos_half = np.clip(pm.dot(normal, half), 0.0, None)
    for n in np.unique(shininess[direct > 0]):  # a handful of materials per scene
        sel = (shininess == n) & (direct > 0)
        highlight[sel] = pm.ipow(cos_half[sel], int(n))
    spec = specular * highlight
    shade = scene.ambient + (1.0 - scene.ambient) * direct  # (N,)
    rgb = (albedo * shade[:, None] + spec[:, None]) * scene.light_color  # (N, 3)
    rgb = rgb + noise_std * pm.normal(rng, rgb.shape) if noise_std > 0 else rgb
    image = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(size, size, 3)

    instance = instance.reshape(size, size)
    depth = (o[:, 2] - hit["t"]).reshape(size, size)  # z of the visible surface
    normal_img = normal.reshape(size, size, 3).astype(np.float32)  # (H, W, 3)
    normal_img[_hole_mask(rng, size)] = 0.0
    return {
        "image": image,
        "label": labels[instance],  # (H, W)
        "normal": normal_img,
        "edge": _occluder_edges(instance, depth).astype(np.uint8),
        "instance": instance,
        "depth": depth,
        "rgb": rgb.reshape(size, size, 3),
    }


def render_scene(
    rng: np.random.Generator, size: int, noise_std: float = 0.03, max_objects: int = 5
) -> dict[str, np.ndarray]:
    """One scene: {"image": uint8 (H,W,3), "label": uint8 (H,W), "normal": float32 (H,W,3), "edge": uint8 (H,W)}."""
    out = _draw(_random_scene(rng, max_objects), size, rng, noise_std)
    return {key: out[key] for key in ("image", "label", "normal", "edge")}


def _split_index(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return SPLITS.index(split)


def _key(split: str, index: int) -> str:
    return f"synthetic-{split}-{index:05d}"


def render(config: SyntheticConfig, split: str, index: int) -> dict[str, np.ndarray]:
    """Scene `index` of a split; seeded by (seed, split, index) alone so it can be re-rendered by itself."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    rng = np.random.default_rng([config.seed, _split_index(split), index])
    return render_scene(rng, config.image_size, config.noise_std, config.max_objects)


# ----------------------------------------------------------------------------- raw folder


def write_raw(config: SyntheticConfig, out_dir: Path, progress: bool = True) -> dict:
    """Render every split into out_dir/<split>/<key>.png (RGB image) and out_dir/<split>/<key>.npz
    (arrays label, normal, edge), plus out_dir/dataset.json = {"name": "synthetic", "classes": [...],
    "config": asdict(config), "counts": {split: n}}. Returns that dict. Write everything into a temp
    directory next to out_dir and rename it into place at the end, so a failure leaves no half-written
    out_dir (replace an existing out_dir). Show a tqdm progress bar when progress=True."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": "synthetic",
        "classes": list(CLASSES),
        "config": asdict(config),
        "counts": {split: config.count(split) for split in SPLITS},
    }
    with atomic_dir(out_dir) as tmp:
        with tqdm(total=sum(meta["counts"].values()), desc="synthetic", disable=not progress) as bar:
            for split in SPLITS:
                (tmp / split).mkdir()
                for i in range(config.count(split)):
                    scene = render(config, split, i)
                    stem = tmp / split / _key(split, i)
                    Image.fromarray(scene["image"]).save(stem.with_suffix(".png"))
                    np.savez_compressed(
                        stem.with_suffix(".npz"), label=scene["label"], normal=scene["normal"], edge=scene["edge"]
                    )
                    bar.update(1)
        fetch.write_meta(tmp, meta)
    return meta


def _load_npz(path: Path, size: tuple[int, int]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ("label", "normal", "edge")}
    except KeyError as err:
        raise ValueError(f"{path}: missing array {err}") from err
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: unreadable npz ({err})") from err
    expected = {"label": (size, np.uint8), "normal": ((*size, 3), np.float32), "edge": (size, np.uint8)}
    for name, (shape, dtype) in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise ValueError(
                f"{path}: {name} is {arrays[name].dtype}{arrays[name].shape}, expected {np.dtype(dtype)}{shape}"
            )
    if arrays["label"].max(initial=0) >= len(CLASSES):
        raise ValueError(f"{path}: label values outside 0..{len(CLASSES) - 1}")
    return arrays


def read_raw(raw_dir: Path, split: str) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Yield (key, {"image", "label", "normal", "edge"}) in sorted key order from a write_raw folder.
    Raise FileNotFoundError / ValueError naming the file when something is missing or malformed."""
    raw_dir = Path(raw_dir)
    _split_index(split)
    meta_path = raw_dir / fetch.META
    expected_count = int(fetch.read_meta(raw_dir, "synthetic", lambda meta: int(meta["counts"][split]))["counts"][split])
    split_dir = raw_dir / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: split folder not found")
    pngs = {p.stem for p in split_dir.glob("*.png")}
    npzs = {p.stem for p in split_dir.glob("*.npz")}
    for stem in sorted(pngs ^ npzs):
        missing = split_dir / (stem + (".npz" if stem in pngs else ".png"))
        raise FileNotFoundError(f"{missing}: not found")
    if len(pngs) != expected_count:
        raise ValueError(f"{split_dir}: {len(pngs)} scenes, but {meta_path} says {expected_count}")
    for key in sorted(pngs):
        png = split_dir / f"{key}.png"
        try:
            with Image.open(png) as im:
                mode, image = im.mode, np.asarray(im)  # (H, W, 3)
        except OSError as err:
            raise ValueError(f"{png}: unreadable image ({err})") from err
        if mode != "RGB":
            raise ValueError(f"{png}: image mode {mode}, expected RGB")
        arrays = _load_npz(split_dir / f"{key}.npz", image.shape[:2])
        yield key, {"image": image, **arrays}

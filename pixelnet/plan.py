"""The sampling plan: for every training image and draw, the augmentation and the N pixels it trains on.

All training randomness of the data lives here, decided once by the sample stage and tracked by DVC:
for draw k of image `key` the plan fixes a geometric augmentation — rescale by s, rotate by θ
(counter-clockwise as displayed), flip horizontally or not, and a crop² window — as one affine
map M from source pixel-index coordinates to window coordinates, and then draws the N pixels by the
task's strategy (uniform, stratified, edge-biased; `pixelnet.sampling`) **only among the source
pixels that M carries inside the window**. So every planned row trains; the loader applies M to
the image and the pixels exactly (`pixelnet.data.transforms`) and draws nothing. When a window
holds fewer valid pixels than N, the draw takes them all and the rest of its rows are padding
(`counts` < N), which the loader marks with weight 0.

Coordinates are pixel-index coordinates (the centre of pixel (row r, col c) is x = c, y = r). The
rescale follows cv2.resize's convention, x' = (x + 0.5)·s − 0.5; rotation and flip turn about the
rescaled image's centre; the window is centred on a uniformly drawn point of the image, then
shifted so that it lies inside the transformed image's extent along an axis where the image is
larger than the window (no window of mostly fill), and the image lies inside it where it is smaller. A pixel is inside the window when its moved
centre is in [−0.5, crop − 0.5) on both axes.

Epoch e of training uses draw e mod K; `draws` "auto" makes K the epochs the run needs, so no draw
repeats. The window test is a Numba kernel (`window_strata`) beside its NumPy twin.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from pixelnet.sampling import SamplingConfig, draw

PLAN_FILE = "plan.npz"


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 64                      # square training window, pixels
    scale: tuple[float, float] = (0.8, 1.25)  # random rescale range
    flip: bool = True                   # random horizontal flip (p = 0.5)
    rotate: float = 0.0                 # random rotation in [-rotate, rotate] degrees (HED rotates); 0 = off

    def __post_init__(self) -> None:
        if isinstance(self.crop, bool) or not isinstance(self.crop, (int, np.integer)) or self.crop < 8:
            raise ValueError(f"augment.crop must be an integer >= 8, got {self.crop!r}")
        lo, hi = self.scale
        if not (0 < lo <= hi):
            raise ValueError(f"augment.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        if not (0 <= self.rotate <= 180):  # also rejects NaN
            raise ValueError(f"augment.rotate must be in [0, 180] degrees, got {self.rotate}")


def draw_affine(height: int, width: int, config: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, float, float, bool]:
    """One random augmentation as a (2, 3) float64 map source -> window, with its scale, angle, flip."""
    s = float(rng.uniform(*config.scale))
    angle = float(rng.uniform(-config.rotate, config.rotate)) if config.rotate > 0 else 0.0
    flip = bool(config.flip and rng.random() < 0.5)
    m = affine(height, width, s, angle, flip)  # (2, 3) into the transformed plane
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float64)  # (4, 2)
    moved = corners @ m[:, :2].T + m[:, 2]  # (4, 2)
    point = np.array([rng.uniform(0, width - 1), rng.uniform(0, height - 1)])  # a source point the window centres on
    centre = m[:, :2] @ point + m[:, 2]  # (2,)
    offset = []
    for axis in range(2):
        lo, hi = moved[:, axis].min(), moved[:, axis].max() - config.crop + 1
        top_left = centre[axis] - (config.crop - 1) / 2
        offset.append(float(np.clip(top_left, min(lo, hi), max(lo, hi))))  # window inside the image, or the image inside it
    m[:, 2] -= offset
    return m, s, angle, flip


def affine(height: int, width: int, scale: float, angle: float, flip: bool) -> np.ndarray:
    """(2, 3) float64: rescale (cv2.resize's pixel centres), rotate `angle` degrees counter-clockwise
    as displayed about the rescaled centre, then flip about it."""
    cx, cy = (width * scale - 1) / 2, (height * scale - 1) / 2
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rescale = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])
    # y points down, so a counter-clockwise turn on screen is x' = c·x + s·y, y' = −s·x + c·y about the centre.
    rotate = np.array([[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy], [0, 0, 1]])
    mirror = np.array([[-1, 0, 2 * cx], [0, 1, 0], [0, 0, 1]]) if flip else np.eye(3)
    return (mirror @ rotate @ rescale)[:2]


def move(indices: np.ndarray, width: int, m: np.ndarray) -> np.ndarray:
    """Flat source indices -> (N, 2) float64 window coordinates x, y (the same arithmetic as the kernel)."""
    rows, cols = np.divmod(indices.astype(np.int64), width)
    x, y = cols.astype(np.float64), rows.astype(np.float64)
    return np.stack([m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]], axis=1)  # (N, 2)


def inside(coords: np.ndarray, crop: int) -> np.ndarray:
    """(N,) bool: the moved pixel centre lies on one of the window's pixels."""
    x, y = coords[:, 0], coords[:, 1]
    return (x >= -0.5) & (x < crop - 0.5) & (y >= -0.5) & (y < crop - 0.5)


@numba.njit(cache=True, nogil=True)
def _window_kernel(strata, m, crop):
    h, w = strata.shape
    out = np.empty(h * w, np.int32)  # (H*W,)
    hi = crop - 0.5
    for r in range(h):
        y = float(r)
        for c in range(w):
            x = float(c)
            v = strata[r, c]
            u = m[0, 0] * x + m[0, 1] * y + m[0, 2]
            t = m[1, 0] * x + m[1, 1] * y + m[1, 2]
            ok = v >= 0 and u >= -0.5 and u < hi and t >= -0.5 and t < hi
            out[r * w + c] = v if ok else -1
    return out.reshape(h, w)


def window_strata(strata: np.ndarray, m: np.ndarray, crop: int) -> np.ndarray:
    """(H, W) int32 strata with -1 wherever the pixel is invalid or lands outside the window (Numba)."""
    return _window_kernel(np.ascontiguousarray(strata), np.ascontiguousarray(m, dtype=np.float64), int(crop))


def window_strata_numpy(strata: np.ndarray, m: np.ndarray, crop: int) -> np.ndarray:
    """NumPy twin of `window_strata`, for tests."""
    h, w = strata.shape
    ok = inside(move(np.arange(h * w), w, m), crop).reshape(h, w)
    return np.where(ok & (strata >= 0), strata, -1).astype(np.int32)


@dataclass
class Plan:
    """Every image's K draws: keys (I,), sizes (I, 2) as (H, W), affine (I, K, 2, 3), scale, angle,
    flip (I, K), pixels (I, K, N) flat source indices, counts (I, K) rows that are real (the rest pad),
    and one seed per draw index for the loader's epoch order (K,)."""

    keys: np.ndarray
    sizes: np.ndarray
    affine: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    flip: np.ndarray
    pixels: np.ndarray
    counts: np.ndarray
    order_seeds: np.ndarray
    crop: int
    rows: dict[str, int] = field(init=False, repr=False)  # key -> its index along the first axis

    def __post_init__(self) -> None:
        self.rows = {str(k): i for i, k in enumerate(self.keys)}

    @property
    def draws(self) -> int:
        return int(self.pixels.shape[1])

    def save(self, path: Path) -> None:
        np.savez(path, keys=self.keys, sizes=self.sizes, affine=self.affine, scale=self.scale, angle=self.angle,
                 flip=self.flip, pixels=self.pixels, counts=self.counts, order_seeds=self.order_seeds,
                 crop=np.int64(self.crop))

    @classmethod
    def stack(cls, keys: list[str], sizes: list[tuple[int, int]], parts: list[dict], order_seeds: np.ndarray,
              crop: int) -> "Plan":
        """One Plan from `plan_image`'s per-image parts (in the order of `keys`)."""
        fields = {f: np.stack([p[f] for p in parts]) for f in ("affine", "scale", "angle", "flip", "pixels", "counts")}
        return cls(keys=np.array(keys), sizes=np.array(sizes, np.int32).reshape(-1, 2), **fields,
                   order_seeds=np.asarray(order_seeds, np.uint32), crop=int(crop))

    @classmethod
    def load(cls, path: Path) -> "Plan":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no sampling plan (run the sample stage first)")
        try:
            with np.load(path, allow_pickle=False) as z:
                fields = {k: z[k] for k in ("keys", "sizes", "affine", "scale", "angle", "flip", "pixels", "counts",
                                            "order_seeds")}
                crop = int(z["crop"])
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: not a sampling plan of this version ({err}); re-run the sample stage") from err
        return cls(**fields, crop=crop)


def plan_image(strata: np.ndarray, key: str, sampling: SamplingConfig, augment: AugmentConfig, draws: int) -> dict:
    """One image's draws: {affine (K, 2, 3), scale, angle, flip (K,), pixels (K, N), counts (K,)}.

    Deterministic from (sampling.seed, key): independent of the order images are planned in.
    """
    h, w = strata.shape
    n = sampling.pixels_per_image
    rng = np.random.default_rng([sampling.seed, zlib.crc32(key.encode("utf-8"))])
    one = SamplingConfig(strategy=sampling.strategy, pixels_per_image=n, draws=1,
                         positive_fraction=sampling.positive_fraction, seed=sampling.seed)
    out = {"affine": np.empty((draws, 2, 3)), "scale": np.empty(draws, np.float32), "angle": np.empty(draws, np.float32),
           "flip": np.empty(draws, bool), "pixels": np.zeros((draws, n), _index_dtype(h * w)),
           "counts": np.empty(draws, np.int32)}
    for k in range(draws):
        m, s, angle, flip = draw_affine(h, w, augment, rng)
        seed = int(rng.integers(2**32))
        masked = window_strata(strata, m, augment.crop)  # (H, W)
        valid = np.flatnonzero(masked.ravel() >= 0)
        if valid.size > n:
            picked = np.sort(draw(masked, one, seed)[0])  # (N,) sorted: the loader reads targets in order
        else:
            picked = valid  # too few in this window: take them all, pad the rest
        out["affine"][k], out["scale"][k], out["angle"][k], out["flip"][k] = m, s, angle, flip
        out["pixels"][k, : picked.size] = picked
        out["counts"][k] = picked.size
    return out


def _index_dtype(pixels: int) -> type:
    return np.uint16 if pixels <= 2**16 else np.uint32


def auto_draws(iterations: int, images_per_batch: int, images: int) -> int:
    """Draws per image so that `iterations` batches never reuse one: the epochs the run spans."""
    return max(1, math.ceil(iterations * images_per_batch / max(images, 1)))

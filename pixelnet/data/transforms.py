"""Geometric augmentation that carries sampled pixels along with the image.

Targets are never resampled: the target value of a sampled pixel is read at its original index
before augmentation, and only the pixel's *location* moves with the image. That keeps labels exact
(no nearest-neighbour rounding of masks) and lets the hypercolumn sampler read features at the
transformed, sub-pixel location.

Coordinates are in pixel-index units: the centre of pixel (row r, col c) is at (x=c, y=r).
Albumentations scales keypoints as plain multiplication, which is exact for continuous corner
coordinates (centre at c + 0.5), and rotates them about ((W - 1) / 2, (H - 1) / 2) and flips them as
``W - 1 - x``, which is exact for index coordinates (the image is warped about pixel centres). So
the rescale runs on corner coordinates, rotation and flip on index coordinates, and the pad and crop
(translations) on either. A rotation keeps the frame size: pixels it carries out of the frame have
lost their content and are marked not ``inside``, like pixels the crop cuts away.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 64                      # square training crop, pixels
    scale: tuple[float, float] = (0.8, 1.25)  # random rescale range before cropping
    flip: bool = True                   # random horizontal flip (p = 0.5)
    rotate: float = 0.0                 # random rotation in [-rotate, rotate] degrees (HED's); 0 = off

    def __post_init__(self) -> None:
        if self.crop < 8:
            raise ValueError(f"train.crop must be >= 8, got {self.crop}")
        lo, hi = self.scale
        if not (0 < lo <= hi):
            raise ValueError(f"train.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        if not (0 <= self.rotate <= 180):  # also rejects NaN
            raise ValueError(f"train.rotate must be in [0, 180] degrees, got {self.rotate}")


@dataclass
class Augmented:
    image: np.ndarray     # (h, w, 3) uint8
    coords: np.ndarray    # (N, 2) float32, x then y, in the augmented image
    inside: np.ndarray    # (N,) bool: the pixel is still in the frame and inside the crop
    flipped: bool         # a horizontal flip was applied (normals need their x negated)
    rotation: float = 0.0  # degrees, counter-clockwise as displayed, applied before the flip


def indices_to_coords(indices: np.ndarray, width: int) -> np.ndarray:
    """Flat indices (row * W + col) to (N, 2) float32 x, y pixel-centre coordinates."""
    rows, cols = np.divmod(indices.astype(np.int64), width)
    return np.stack([cols, rows], axis=1).astype(np.float32)  # (N, 2)


def _within(coords: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: the pixel centre lies on one of the frame's pixels."""
    x, y = coords[:, 0], coords[:, 1]
    return (x > -0.5) & (x < width - 0.5) & (y > -0.5) & (y < height - 0.5)


def _keypoints(transforms: list, image: np.ndarray, coords: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    compose = A.Compose(transforms, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=seed)
    out = compose(image=image, keypoints=coords)
    return out["image"], np.asarray(out["keypoints"], dtype=np.float32).reshape(-1, 2)[:, :2]  # (N, 2)


def augment(image: np.ndarray, indices: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> Augmented:
    """Rescale, rotate, flip and crop `image` to config.crop², moving the sampled pixels with it."""
    h, w = image.shape[:2]
    s = float(rng.uniform(*config.scale))
    new_h, new_w = max(1, round(h * s)), max(1, round(w * s))
    flip = bool(config.flip and rng.random() < 0.5)
    seed = int(rng.integers(2**31))
    angle = float(rng.uniform(-config.rotate, config.rotate)) if config.rotate > 0 else 0.0
    size = config.crop

    corner = indices_to_coords(indices, w) + 0.5  # (N, 2) continuous corner coordinates
    image, corner = _keypoints([A.Resize(new_h, new_w, interpolation=cv2.INTER_LINEAR)], image, corner)
    coords = corner - 0.5  # (N, 2) index coordinates from here on
    geometric = []
    if angle:
        geometric.append(A.Rotate(limit=(angle, angle), p=1.0, interpolation=cv2.INTER_LINEAR,
                                  border_mode=cv2.BORDER_CONSTANT, fill=0))
    if flip:
        geometric.append(A.HorizontalFlip(p=1.0))
    if geometric:
        image, coords = _keypoints(geometric, image, coords)
    in_frame = _within(coords, new_w, new_h)  # a rotation carries corners out of the frame
    crop = [
        A.PadIfNeeded(size, size, border_mode=cv2.BORDER_CONSTANT, fill=0, position="top_left"),
        A.RandomCrop(size, size),
    ]
    image, coords = _keypoints(crop, image, coords, seed=seed)
    inside = in_frame & _within(coords, size, size)
    return Augmented(image=image, coords=coords, inside=inside, flipped=flip, rotation=angle)

"""Geometric augmentation that carries sampled pixels along with the image.

Targets are never resampled: the target value of a sampled pixel is read at its original index
before augmentation, and only the pixel's *location* moves with the image. That keeps labels exact
(no nearest-neighbour rounding of masks) and lets the hypercolumn sampler read features at the
transformed, sub-pixel location.

Coordinates are in pixel-index units: the centre of pixel (row r, col c) is at (x=c, y=r).
Albumentations scales keypoints as plain multiplication, which is exact for continuous corner
coordinates (centre at c + 0.5), and flips them as ``W - 1 - x``, which is exact for index
coordinates. We feed corner coordinates and add back the one pixel a flip takes away.
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

    def __post_init__(self) -> None:
        if self.crop < 8:
            raise ValueError(f"train.crop must be >= 8, got {self.crop}")
        lo, hi = self.scale
        if not (0 < lo <= hi):
            raise ValueError(f"train.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")


@dataclass
class Augmented:
    image: np.ndarray     # (h, w, 3) uint8
    coords: np.ndarray    # (N, 2) float32, x then y, in the augmented image
    inside: np.ndarray    # (N,) bool: the pixel is still inside the crop
    flipped: bool         # a horizontal flip was applied (normals need their x negated)


def indices_to_coords(indices: np.ndarray, width: int) -> np.ndarray:
    """Flat indices (row * W + col) to (N, 2) float32 x, y pixel-centre coordinates."""
    rows, cols = np.divmod(indices.astype(np.int64), width)
    return np.stack([cols, rows], axis=1).astype(np.float32)  # (N, 2)


def augment(image: np.ndarray, indices: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> Augmented:
    """Rescale, flip and crop `image` to config.crop², moving the sampled pixels with it."""
    h, w = image.shape[:2]
    s = float(rng.uniform(*config.scale))
    new_h, new_w = max(1, round(h * s)), max(1, round(w * s))
    flip = bool(config.flip and rng.random() < 0.5)
    size = config.crop
    transform = A.Compose(
        [
            A.Resize(new_h, new_w, interpolation=cv2.INTER_LINEAR),
            A.HorizontalFlip(p=1.0 if flip else 0.0),
            A.PadIfNeeded(size, size, border_mode=cv2.BORDER_CONSTANT, fill=0, position="top_left"),
            A.RandomCrop(size, size),
        ],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=int(rng.integers(2**31)),
    )
    corner = indices_to_coords(indices, w) + 0.5  # (N, 2) continuous corner coordinates
    out = transform(image=image, keypoints=corner)
    coords = np.asarray(out["keypoints"], dtype=np.float32)[:, :2] - 0.5  # (N, 2)
    if flip:
        coords[:, 0] += 1.0  # albumentations flips as W-1-u; for corner coordinates it is W-u
    inside = (coords[:, 0] > -0.5) & (coords[:, 0] < size - 0.5) & (coords[:, 1] > -0.5) & (coords[:, 1] < size - 0.5)
    return Augmented(image=out["image"], coords=coords, inside=inside, flipped=flip)

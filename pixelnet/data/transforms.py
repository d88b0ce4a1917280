"""Applying one planned draw: the image warped into its window, the planned pixels moved with it.

The sample stage decided the augmentation (`pixelnet.plan`): a (2, 3) affine map M from source
pixel-index coordinates to window coordinates, its rotation angle and flip. Here the image is
resampled through M into the crop² window by albumentations' `warp_affine` (cv2.warpAffine,
bilinear, zero fill), whose pixel-centre convention is the plan's. Targets are never resampled:
a planned pixel's target is read at its source index, and only its location moves, by the same
arithmetic the plan used to decide it was inside the window — so labels stay exact and the
hypercolumn sampler reads features at the moved, sub-pixel location. Normals turn with the image
(rotation, then flip, as M composes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from albumentations.augmentations.geometric.functional import warp_affine

from pixelnet.plan import move


@dataclass
class Augmented:
    image: np.ndarray     # (crop, crop, 3) uint8
    coords: np.ndarray    # (N, 2) float32 x, y of each planned pixel in the window
    valid: np.ndarray     # (N,) bool: a real planned row (False: padding)
    flipped: bool         # a horizontal flip was applied (normals need their x negated)
    rotation: float = 0.0  # degrees, counter-clockwise as displayed, applied before the flip


def indices_to_coords(indices: np.ndarray, width: int) -> np.ndarray:
    """Flat indices (row * W + col) to (N, 2) float32 x, y pixel-centre coordinates."""
    rows, cols = np.divmod(indices.astype(np.int64), width)
    return np.stack([cols, rows], axis=1).astype(np.float32)  # (N, 2)


def warp(image: np.ndarray, m: np.ndarray, crop: int) -> np.ndarray:
    """The window: `image` resampled through the (2, 3) map m into crop² (bilinear, zero outside)."""
    m = np.asarray(m, dtype=np.float64)
    if np.array_equal(m, np.eye(2, 3)):  # warp_affine returns an identity map's input unchanged, at its own size
        out = np.zeros((crop, crop, *image.shape[2:]), image.dtype)
        part = image[:crop, :crop]
        out[: part.shape[0], : part.shape[1]] = part
        return out
    full = np.vstack([m, [0.0, 0.0, 1.0]])  # (3, 3), as albumentations takes it
    return warp_affine(image, full, cv2.INTER_LINEAR, 0, cv2.BORDER_CONSTANT, (crop, crop))


def apply_draw(image: np.ndarray, pixels: np.ndarray, count: int, m: np.ndarray, crop: int, angle: float,
               flip: bool) -> Augmented:
    """Warp `image` into the window and move the first `count` planned pixels (the rest are padding)."""
    w = image.shape[1]
    coords = move(pixels, w, m).astype(np.float32)  # (N, 2)
    valid = np.arange(len(pixels)) < count  # (N,)
    coords[~valid] = 0.0
    return Augmented(image=warp(image, m, crop), coords=coords, valid=valid, flipped=bool(flip), rotation=float(angle))

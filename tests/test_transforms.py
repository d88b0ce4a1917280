"""Augmentation moves sampled pixels with the image: they still point at the same content."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from pixelnet.data.transforms import AugmentConfig, augment
from pixelnet.tasks import NormalsTask


def _ramp(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 4, yy * 5, (xx + yy) % 7 * 30], axis=-1).astype(np.uint8)


def _read(image: np.ndarray, coords: np.ndarray, channel: int) -> np.ndarray:
    return map_coordinates(image[..., channel].astype(np.float64), [coords[:, 1], coords[:, 0]], order=1, mode="nearest")


@pytest.mark.parametrize("flip", [False, True])
def test_flip_and_crop_are_exact(flip):
    h, w = 40, 50
    image = _ramp(h, w)
    rng = np.random.default_rng(0)
    idx = rng.choice(h * w, 300, replace=False)
    # scale 1: no resampling, so every surviving pixel must land exactly on its own value.
    out = augment(image, idx, AugmentConfig(crop=32, scale=(1.0, 1.0), flip=True), rng)
    while out.flipped != flip:  # flips happen with p = 0.5; draw until we have the case under test
        out = augment(image, idx, AugmentConfig(crop=32, scale=(1.0, 1.0), flip=True), rng)
    inside = out.coords[out.inside]
    assert np.allclose(inside, np.round(inside))
    cols, rows = inside[:, 0].astype(int), inside[:, 1].astype(int)
    rr, cc = np.divmod(idx[out.inside], w)
    assert np.array_equal(out.image[rows, cols], image[rr, cc])
    assert 0 < out.inside.sum() < len(idx)  # the crop dropped some pixels and kept others


@pytest.mark.parametrize("scale", [0.7, 1.3])
def test_rescale_keeps_pixel_centres(scale):
    h, w = 40, 50
    image = _ramp(h, w)
    rng = np.random.default_rng(1)
    rr, cc = np.mgrid[1 : h - 1, 1 : w - 1]  # away from the border, where a downscale pads
    idx = (rr * w + cc).ravel()
    for _ in range(4):
        out = augment(image, idx, AugmentConfig(crop=80, scale=(scale, scale), flip=True), rng)
        assert out.inside.all()
        got_x = _read(out.image, out.coords, 0) / 4
        got_y = _read(out.image, out.coords, 1) / 5
        # The ramp is linear, so bilinear reading returns the original column/row (up to uint8 rounding).
        assert np.abs(got_x - cc.ravel()).max() < 0.35
        assert np.abs(got_y - rr.ravel()).max() < 0.35


def test_flip_negates_normal_x():
    task = NormalsTask()
    n = np.array([[0.6, 0.0, 0.8], [-0.28, 0.96, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(task.flip_targets(n), [[-0.6, 0.0, 0.8], [0.28, 0.96, 0.0]])

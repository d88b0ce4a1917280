"""Augmentation moves sampled pixels with the image: they still point at the same content."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from pixelnet.data.transforms import AugmentConfig, augment, indices_to_coords
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


def _rotated(coords: np.ndarray, degrees: float, h: int, w: int) -> np.ndarray:
    """Independent reference: turn index coordinates counter-clockwise (as displayed) about the centre."""
    a = np.radians(degrees)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    x, y = coords[:, 0] - cx, coords[:, 1] - cy
    # y points down in the image, so a counter-clockwise turn on screen is clockwise in (x, y).
    return np.stack([cx + np.cos(a) * x + np.sin(a) * y, cy - np.sin(a) * x + np.cos(a) * y], axis=1)


@pytest.mark.parametrize("flip", [False, True])
def test_rotation_moves_pixels_with_the_image(flip):
    h, w = 40, 50
    image = _ramp(h, w)
    idx = np.arange(h * w)
    config = AugmentConfig(crop=64, scale=(1.0, 1.0), flip=True, rotate=40.0)  # crop > image: no pixel cut by it
    rng = np.random.default_rng(3)
    out = augment(image, idx, config, rng)
    while out.flipped != flip or abs(out.rotation) < 15:
        out = augment(image, idx, config, rng)
    expected = _rotated(np.stack([idx % w, idx // w], axis=1).astype(np.float64), out.rotation, h, w)
    if flip:
        expected[:, 0] = w - 1 - expected[:, 0]
    np.testing.assert_allclose(out.coords, expected, atol=1e-3)
    # Honest masking: exactly the pixels the turn carried out of the frame are dropped (corners).
    in_frame = (expected[:, 0] > -0.5) & (expected[:, 0] < w - 0.5) & (expected[:, 1] > -0.5) & (expected[:, 1] < h - 0.5)
    np.testing.assert_array_equal(out.inside, in_frame)
    assert 0 < (~out.inside).sum() < len(idx) // 2
    # Kept pixels still point at their own value (away from the original border and the frame's edge,
    # where the rotation's and the pad's black fill bleed into a bilinear read).
    rr, cc = np.divmod(idx, w)
    x, y = out.coords[:, 0], out.coords[:, 1]
    deep = out.inside & (cc > 1) & (cc < w - 2) & (rr > 1) & (rr < h - 2) & (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    rr, cc = rr[deep], cc[deep]
    assert np.abs(_read(out.image, out.coords[deep], 0) / 4 - cc).max() < 0.35
    assert np.abs(_read(out.image, out.coords[deep], 1) / 5 - rr).max() < 0.35


def test_rotation_with_rescale_and_crop_keeps_targets():
    h, w = 40, 50
    image = _ramp(h, w)
    rng = np.random.default_rng(4)
    idx = rng.choice(h * w, 400, replace=False)
    rr, cc = np.divmod(idx, w)
    for _ in range(6):
        out = augment(image, idx, AugmentConfig(crop=32, scale=(0.8, 1.25), flip=True, rotate=30.0), rng)
        # The crop and the turn drop some pixels; every kept one is inside the crop.
        assert 0 < out.inside.sum() < len(idx)
        kept = out.coords[out.inside]
        assert (kept > -0.5).all() and (kept < 32 - 0.5).all()
        x, y = kept[:, 0], kept[:, 1]
        deep = (x > 2) & (x < 29) & (y > 2) & (y < 29)
        # The target gathered at the original index matches what the augmented image shows there.
        got = np.stack([_read(out.image, kept[deep], 0) / 4, _read(out.image, kept[deep], 1) / 5], axis=1)
        want = np.stack([cc[out.inside][deep], rr[out.inside][deep]], axis=1)
        # Near the original image's border the black fill of the turn bleeds in; compare the interior.
        interior = (want[:, 0] > 1) & (want[:, 0] < w - 2) & (want[:, 1] > 1) & (want[:, 1] < h - 2)
        assert np.abs(got[interior] - want[interior]).max() < 0.5


def test_rotation_off_draws_nothing_extra():
    image = _ramp(20, 20)
    a = augment(image, np.arange(50), AugmentConfig(crop=16), np.random.default_rng(0))
    b = augment(image, np.arange(50), AugmentConfig(crop=16, rotate=0.0), np.random.default_rng(0))
    assert a.rotation == b.rotation == 0.0
    np.testing.assert_array_equal(a.coords, b.coords)


def test_normals_turn_like_image_directions():
    """A direction in the picture, written as a normal's (x, y), must turn exactly as the picture does."""
    from pixelnet.data.loader import move_targets

    h, w = 40, 50
    image = _ramp(h, w)
    task = NormalsTask()
    rng = np.random.default_rng(5)
    centre = (h // 2) * w + w // 2
    others = np.array([(h // 2 - 6) * w + w // 2 + 9, (h // 2 + 5) * w + w // 2 - 3, (h // 2) * w + w // 2 - 8])
    idx = np.concatenate([[centre], others])
    before = indices_to_coords(idx, w)
    d = before[1:] - before[0]  # (3, 2) image directions, y down
    n = np.stack([d[:, 0], -d[:, 1], np.full(3, 0.7)], axis=1)  # camera frame: y up, some z
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    for _ in range(8):
        # Scale 1: a rescale rounds H and W separately, which skews directions by up to 1/(2 min(H, W)).
        out = augment(image, idx, AugmentConfig(crop=64, scale=(1.0, 1.0), flip=True, rotate=90.0), rng)
        moved = out.coords[1:] - out.coords[0]
        want = np.stack([moved[:, 0], -moved[:, 1]], axis=1)
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        got = move_targets(task, n, out)
        np.testing.assert_allclose(got[:, :2] / np.linalg.norm(got[:, :2], axis=1, keepdims=True), want, atol=1e-4)
        np.testing.assert_allclose(got[:, 2], n[:, 2], atol=1e-6)  # the turn is in the image plane


def test_rotate_targets_hooks():
    from pixelnet.tasks import EdgesTask, SegmentationTask

    n = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(NormalsTask().rotate_targets(n, 90.0), [[0, 1, 0], [-0.6, 0, 0.8]], atol=1e-6)
    t = np.array([0.0, 1.0, 1.0], dtype=np.float32)
    assert EdgesTask().rotate_targets(t, 33.0) is t
    assert SegmentationTask(num_classes=3).rotate_targets(t, 33.0) is t

"""A planned draw moves the sampled pixels with the image: they still point at the same content."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from pixelnet.batches import move_targets
from pixelnet.data.transforms import apply_draw, indices_to_coords, warp
from pixelnet.plan import AugmentConfig, affine, draw_affine, inside
from pixelnet.tasks import EdgesTask, NormalsTask, SegmentationTask


def _ramp(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float64: each pixel holds its own x and y, so a bilinear read decodes a location."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([xx, yy], axis=-1)


def _read(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(N, C) bilinear values of an (H, W, C) image at (N, 2) x, y."""
    return np.stack([map_coordinates(image[..., c], [coords[:, 1], coords[:, 0]], order=1, mode="nearest")
                     for c in range(image.shape[-1])], axis=1)


def _rotated(coords: np.ndarray, degrees: float, h: int, w: int) -> np.ndarray:
    """Independent reference: turn index coordinates counter-clockwise (as displayed) about the centre."""
    a = np.radians(degrees)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    x, y = coords[:, 0] - cx, coords[:, 1] - cy
    # y points down in the image, so a counter-clockwise turn on screen is clockwise in (x, y).
    return np.stack([cx + np.cos(a) * x + np.sin(a) * y, cy - np.sin(a) * x + np.cos(a) * y], axis=1)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("angle", [0.0, 33.0, -120.0])
def test_affine_is_rotation_then_flip_about_the_centre(flip, angle):
    h, w = 41, 57
    idx = np.arange(h * w)
    m = affine(h, w, 1.0, angle, flip)
    got = apply_draw(np.zeros((h, w, 3), np.uint8), idx, len(idx), m, 64, angle, flip).coords
    expected = _rotated(indices_to_coords(idx, w).astype(np.float64), angle, h, w)
    if flip:
        expected[:, 0] = w - 1 - expected[:, 0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("scale", [0.7, 1.3])
def test_rescale_keeps_pixel_centres_as_cv2_resize(scale):
    """x' = (x + 0.5)·s − 0.5, cv2.resize's convention: the warped ramp reads back each pixel's own place."""
    h, w = 40, 50
    m = affine(h, w, scale, 0.0, False)
    rr, cc = np.mgrid[1 : h - 1, 1 : w - 1]  # away from the border, where the zero fill bleeds in
    idx = (rr * w + cc).ravel()
    out = apply_draw(np.zeros((h, w, 3), np.uint8), idx, len(idx), m, 80, 0.0, False)
    np.testing.assert_allclose(out.coords[:, 0], (cc.ravel() + 0.5) * scale - 0.5, atol=1e-4)
    got = _read(warp(_ramp(h, w), m, 80), out.coords)
    assert np.abs(got - np.stack([cc.ravel(), rr.ravel()], axis=1)).max() < 0.05


def test_window_placement_covers_the_image_or_lies_inside_it():
    """Along an axis where the transformed image is larger than the window, the window lies inside
    the image's extent; where it is smaller, the image lies inside the window."""
    rng = np.random.default_rng(0)
    for h, w, crop in ((30, 90, 48), (75, 101, 32)):
        for _ in range(50):
            m, *_ = draw_affine(h, w, AugmentConfig(crop=crop, scale=(0.5, 1.5), flip=True, rotate=0.0), rng)
            corners = np.array([[0, 0], [w - 1, h - 1]], np.float64) @ m[:, :2].T + m[:, 2]  # (2, 2)
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            for axis in range(2):
                if hi[axis] - lo[axis] + 1 >= crop:
                    assert lo[axis] <= 1e-9 and hi[axis] >= crop - 1 - 1e-9
                else:
                    assert lo[axis] >= -1e-9 and hi[axis] <= crop - 1 + 1e-9


def test_padding_rows_are_marked_and_parked():
    out = apply_draw(np.zeros((20, 20, 3), np.uint8), np.array([5, 7, 0, 0]), 2, affine(20, 20, 1.0, 0.0, False), 16,
                     0.0, False)
    np.testing.assert_array_equal(out.valid, [True, True, False, False])
    assert (out.coords[2:] == 0).all()


def test_normals_turn_like_image_directions():
    """A direction in the picture, written as a normal's (x, y), must turn exactly as the picture does."""
    h, w = 40, 50
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
        m, s, angle, flip = draw_affine(h, w, AugmentConfig(crop=64, scale=(0.7, 1.4), flip=True, rotate=90.0), rng)
        out = apply_draw(np.zeros((h, w, 3), np.uint8), idx, len(idx), m, 64, angle, flip)
        moved = out.coords[1:] - out.coords[0]
        want = np.stack([moved[:, 0], -moved[:, 1]], axis=1)
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        got = move_targets(task, n, out)
        np.testing.assert_allclose(got[:, :2] / np.linalg.norm(got[:, :2], axis=1, keepdims=True), want, atol=1e-4)
        np.testing.assert_allclose(got[:, 2], n[:, 2], atol=1e-6)  # the turn is in the image plane


def test_rotate_targets_hooks():
    n = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(NormalsTask().rotate_targets(n, 90.0), [[0, 1, 0], [-0.6, 0, 0.8]], atol=1e-6)
    t = np.array([0.0, 1.0, 1.0], dtype=np.float32)
    assert EdgesTask().rotate_targets(t, 33.0) is t
    assert SegmentationTask(num_classes=3).rotate_targets(t, 33.0) is t


def test_identity_map_crops_the_top_left_window():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    out = warp(image, np.eye(2, 3), 8)
    np.testing.assert_array_equal(out, image[:8, :8])
    out = warp(image, np.eye(2, 3), 16)  # a window larger than the image: zero outside it
    np.testing.assert_array_equal(out[:10, :12], image)
    assert out.shape == (16, 16, 3) and not out[10:].any() and not out[:, 12:].any()
    assert inside(np.array([[-0.5, 0.0], [15.49, 0.0], [15.5, 0.0]]), 16).tolist() == [True, True, False]

"""Angular error and its pooled statistics against direct NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest

from pixelnet.metrics.normals import NormalsMeter, angular_error


def _random_pair(
    rng: np.random.Generator, h: int = 16, w: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.normal(size=(h, w, 3))
    gt /= np.linalg.norm(gt, axis=-1, keepdims=True)
    pred = gt + 0.6 * rng.normal(size=(h, w, 3))  # unnormalised, on purpose
    gt[0, :3] = 0.0  # no ground truth
    gt[1, 0] = np.nan
    gt[1, 1, 2] = np.inf
    pred[2, 0] = 0.0  # degenerate predictions at valid pixels
    pred[2, 1, 0] = np.nan
    return pred, gt


def _reference(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Errors in degrees at valid pixels, via atan2(|p x g|, p . g) (a different formula)."""
    valid = np.isfinite(gt).all(-1) & (np.abs(gt).sum(-1) > 0)
    p, g = pred[valid], gt[valid]
    ang = np.degrees(np.arctan2(np.linalg.norm(np.cross(p, g), axis=-1), (p * g).sum(-1)))
    bad = ~np.isfinite(p).all(-1) | (np.abs(p).sum(-1) == 0)
    ang[bad] = 90.0
    return ang


def test_angular_error_matches_reference() -> None:
    pred, gt = _random_pair(np.random.default_rng(0))
    errors, valid = angular_error(pred, gt)
    assert valid.shape == gt.shape[:2]
    assert valid.sum() == gt.shape[0] * gt.shape[1] - 5
    np.testing.assert_allclose(errors, _reference(pred, gt), atol=1e-6)
    assert errors[np.flatnonzero(valid.ravel()).searchsorted(2 * gt.shape[1])] == 90.0


def test_simple_angles() -> None:
    gt = np.array([[[0, 0, 1], [0, 0, 1], [0, 0, 2], [1, 0, 0]]], dtype=float)
    pred = np.array([[[0, 0, 5], [0, 1, 0], [0, 0, -1], [1, 1, 0]]], dtype=float)
    errors, _ = angular_error(pred, gt)
    np.testing.assert_allclose(errors, [0, 90, 180, 45], atol=1e-6)


def test_meter_pools_all_valid_pixels() -> None:
    rng = np.random.default_rng(1)
    meter = NormalsMeter()
    pairs = [_random_pair(rng), _random_pair(rng, 9, 20)]
    for pred, gt in pairs:
        meter.update(pred, gt)
    ref = np.concatenate([_reference(p, g) for p, g in pairs])
    out = meter.compute()
    assert out["valid_pixels"] == ref.size
    assert out["mean"] == pytest.approx(ref.mean(), abs=1e-5)
    assert out["median"] == pytest.approx(np.median(ref), abs=1e-4)
    assert out["rmse"] == pytest.approx(np.sqrt((ref**2).mean()), abs=1e-5)
    for key, t in (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30.0)):
        assert out[key] == pytest.approx(100 * (ref < t).mean())


def test_shape_mismatch_and_empty_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        NormalsMeter().update(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    meter = NormalsMeter()
    meter.update(np.ones((2, 2, 3)), np.zeros((2, 2, 3)))  # no valid pixel at all
    with pytest.raises(ValueError, match="no valid"):
        meter.compute()

"""Confusion-matrix scores against direct per-class NumPy computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixelnet.metrics.segmentation import ConfusionMeter, plot_confusion

C = 6  # class 4: predicted but never in gt; class 5: in neither


def _random_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, 4, size=(20, 24))
    gt[rng.random(gt.shape) < 0.2] = 255
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 5, size=gt.shape))
    pred[gt == 255] = rng.integers(0, 300, size=int((gt == 255).sum()))  # ignored anyway
    return pred, gt


def test_scores_match_direct_computation() -> None:
    rng = np.random.default_rng(0)
    meter = ConfusionMeter(C)
    pairs = [_random_pair(rng) for _ in range(3)]
    for pred, gt in pairs:
        meter.update(pred, gt)
    p = np.concatenate([x[g != 255] for x, g in pairs])
    g = np.concatenate([g[g != 255] for _, g in pairs])
    matrix = np.array([[np.sum((g == i) & (p == j)) for j in range(C)] for i in range(C)])
    np.testing.assert_array_equal(meter.matrix, matrix)
    assert meter.matrix.dtype == np.int64

    out = meter.compute()
    ious = []
    for k in range(C):
        tp = np.sum((g == k) & (p == k))
        union = np.sum((g == k) | (p == k))
        ious.append(tp / union if union else None)
    assert ious[4] == 0.0 and ious[5] is None
    assert out["iou_per_class"] == pytest.approx(ious)
    assert out["miou"] == pytest.approx(np.mean([v for v in ious if v is not None]))
    assert out["pixel_accuracy"] == pytest.approx(np.mean(p == g))
    accs = [np.mean(p[g == k] == k) for k in range(C) if np.any(g == k)]
    assert out["mean_class_accuracy"] == pytest.approx(np.mean(accs))


def test_bad_label_raises_with_value() -> None:
    meter = ConfusionMeter(3)
    with pytest.raises(ValueError, match="class id 7"):
        meter.update(np.zeros((2, 2), int), np.array([[0, 1], [7, 255]]))
    with pytest.raises(ValueError, match="shape"):
        meter.update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="integer"):
        meter.update(np.zeros((2, 2)), np.zeros((2, 2), int))


def test_all_ignored_raises() -> None:
    meter = ConfusionMeter(3)
    meter.update(np.zeros((2, 2), int), np.full((2, 2), 255))
    with pytest.raises(ValueError, match="no labelled"):
        meter.compute()


def test_plot_confusion_writes_png(tmp_path: Path) -> None:
    matrix = np.array([[5, 1, 0], [0, 0, 0], [2, 2, 6]])
    out = tmp_path / "confusion.png"
    plot_confusion(matrix, ["a", "b", "c"], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_confusion(matrix, ["a", "b"], out)

"""evaluate-normals and evaluate-segmentation agree with a direct NumPy computation of the protocol."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app


def _normals_case(tmp_path, rng):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir(), gt_dir.mkdir()
    pairs = []
    for i, (h, w) in enumerate([(20, 30), (17, 11), (25, 25)]):
        gt = rng.normal(size=(h, w, 3)) * rng.uniform(0.5, 2)  # not unit length: the protocol normalises
        gt[rng.random((h, w)) < 0.2] = 0  # invalid: all zero
        gt[rng.random((h, w)) < 0.05] = np.nan  # invalid: non-finite
        pred = gt + rng.normal(scale=0.6, size=(h, w, 3))
        pred[rng.random((h, w)) < 0.03] = 0  # no direction at some pixels
        np.save(gt_dir / f"im{i}.npy", gt.astype(np.float32))
        np.save(pred_dir / f"im{i}.npy", pred.astype(np.float32))
        pairs.append((pred.astype(np.float32).astype(np.float64), gt.astype(np.float32).astype(np.float64)))
    return pred_dir, gt_dir, pairs


def _reference_normals(pairs):
    errors = []
    for pred, gt in pairs:
        g = gt.reshape(-1, 3)
        p = pred.reshape(-1, 3)
        valid = np.isfinite(g).all(1) & (np.linalg.norm(g, axis=1) > 0)
        g, p = g[valid], p[valid]
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        pn = np.linalg.norm(p, axis=1)
        e = np.full(len(p), 90.0)
        ok = pn > 1e-8
        e[ok] = np.degrees(np.arccos(np.clip((p[ok] / pn[ok, None] * g[ok]).sum(1), -1, 1)))
        errors.append(e)
    e = np.concatenate(errors)
    return {"mean": e.mean(), "median": np.median(e), "rmse": np.sqrt((e**2).mean()),
            "within_11_25": 100 * (e < 11.25).mean(), "within_22_5": 100 * (e < 22.5).mean(),
            "within_30": 100 * (e < 30).mean(), "valid_pixels": e.size}


def test_evaluate_normals_matches_numpy(tmp_path):
    pred_dir, gt_dir, pairs = _normals_case(tmp_path, np.random.default_rng(0))
    result = CliRunner().invoke(app, ["evaluate-normals", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                                      "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())
    want = _reference_normals(pairs)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-4), key
    assert got["images"] == 3 and (tmp_path / "out" / "error_cdf.png").is_file()


def _labels_case(tmp_path, rng, classes=6):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir(), gt_dir.mkdir()
    gts, preds = [], []
    for i, (h, w) in enumerate([(21, 33), (14, 9)]):
        gt = rng.integers(0, 4, (h, w)).astype(np.uint8)  # classes 4 and 5 never in the ground truth
        gt[rng.random((h, w)) < 0.15] = 255  # ignored
        pred = np.where(rng.random((h, w)) < 0.6, gt, rng.integers(0, 5, (h, w))).astype(np.uint8)
        pred[pred == 255] = 0
        pred[0, 0] = 4  # class 4: predicted, absent from the ground truth -> IoU 0 counts
        palette = Image.fromarray(gt, mode="P")  # VOC stores labels as palette indices
        palette.putpalette(list(rng.integers(0, 256, 768)))
        palette.save(gt_dir / f"im{i}.png")
        Image.fromarray(pred, mode="L").save(pred_dir / f"im{i}.png")
        gts.append(gt.astype(np.int64))
        preds.append(pred.astype(np.int64))
    return pred_dir, gt_dir, gts, preds


def _reference_labels(gts, preds, classes):
    g = np.concatenate([x.ravel() for x in gts])
    p = np.concatenate([x.ravel() for x in preds])
    keep = g != 255
    g, p = g[keep], p[keep]
    ious, accs = [], []
    for c in range(classes):
        tp = np.sum((g == c) & (p == c))
        union = np.sum((g == c) | (p == c))
        if union:
            ious.append(tp / union)
        if np.sum(g == c):
            accs.append(tp / np.sum(g == c))
    return {"miou": np.mean(ious), "pixel_accuracy": np.mean(g == p), "mean_class_accuracy": np.mean(accs)}, len(ious)


def test_evaluate_segmentation_matches_numpy_with_absent_classes(tmp_path):
    pred_dir, gt_dir, gts, preds = _labels_case(tmp_path, np.random.default_rng(1))
    result = CliRunner().invoke(app, ["evaluate-segmentation", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                                      "--classes", "6", "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())
    want, counted = _reference_labels(gts, preds, 6)
    assert counted == 5  # classes 0-3 in the ground truth, 4 predicted only; 5 nowhere
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got["iou_per_class"][4] == 0.0 and got["iou_per_class"][5] is None
    assert (tmp_path / "out" / "confusion.png").is_file()
    assert np.load(tmp_path / "out" / "confusion.npy").sum() == sum(int((g != 255).sum()) for g in gts)


@pytest.mark.parametrize("damage, message", [
    ("missing", "missing prediction"),
    ("size", "is 5x5 but its ground truth"),
    ("rgb", "one-channel PNG"),
    ("text", "not a readable image"),
    ("out_of_range", "outside [0, 6)"),
])
def test_evaluate_segmentation_bad_files_fail_naming_them_and_write_nothing(tmp_path, damage, message):
    pred_dir, gt_dir, _, _ = _labels_case(tmp_path, np.random.default_rng(2))
    bad = pred_dir / "im1.png"
    if damage == "missing":
        bad.unlink()
    elif damage == "size":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(bad)
    elif damage == "rgb":
        Image.fromarray(np.zeros((14, 9, 3), np.uint8)).save(bad)
    elif damage == "text":
        bad.write_text("not a png")
    else:
        Image.fromarray(np.full((14, 9), 9, np.uint8)).save(bad)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate-segmentation", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                                      "--classes", "6", "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and message in result.output and "im1.png" in result.output
    assert not out.exists()


def test_evaluate_normals_bad_shape_fails_naming_the_file(tmp_path):
    pred_dir, gt_dir, _ = _normals_case(tmp_path, np.random.default_rng(3))
    np.save(pred_dir / "im2.npy", np.zeros((25, 25)))
    result = CliRunner().invoke(app, ["evaluate-normals", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                                      "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2 and "im2.npy" in result.output and "(H, W, 3)" in result.output
    assert not (tmp_path / "out").exists()

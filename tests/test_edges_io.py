"""BSDS benchmark files: readers, pairing, the official writers, `evaluate-edges` through Typer,
and the official benchmark's own test case (test_1 on ucm2, test_2 on png)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.metrics.edges import BoundaryConfig, collect, thresholds_for
from pixelnet.metrics.edges_io import (
    OFFICIAL_FILES,
    evaluate_directory,
    pair_files,
    read_ground_truth,
    read_official,
    read_prediction,
    read_segmentations,
    write_official,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
BENCH = SHARED / "fixtures" / "bsds500-bench"
BSDS_GT = SHARED / "datasets" / "BSR" / "BSDS500" / "data" / "groundTruth"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/fixtures/bsds500-bench is absent")
runner = CliRunner()
H, W = 40, 48
TOL = 0.002  # the official matcher is randomised: test_1 and test_2 differ by up to ~0.001


# ----------------------------------------------------------------------------- tiny synthetic set

def _boundaries(seed: int, annotators: int) -> list[np.ndarray]:
    """Each annotator draws a rectangle outline, jittered by a pixel or so."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(annotators):
        b = np.zeros((H, W), dtype=bool)
        y0, x0 = 8 + rng.integers(0, 2, size=2)
        y1, x1 = 30 + rng.integers(0, 2), 38 + rng.integers(0, 2)
        b[y0, x0:x1 + 1] = b[y1, x0:x1 + 1] = b[y0:y1 + 1, x0] = b[y0:y1 + 1, x1] = True
        maps.append(b)
    return maps


def _save_gt(path: Path, boundaries: list[np.ndarray]) -> None:
    """The BSDS layout: groundTruth is a 1 x A cell of structs {Segmentation, Boundaries}."""
    cells = np.empty((1, len(boundaries)), dtype=object)
    for a, b in enumerate(boundaries):
        cells[0, a] = {"Segmentation": (1 + b).astype(np.uint16), "Boundaries": b.astype(np.uint8)}
    savemat(path, {"groundTruth": cells})


def _soft(boundaries: list[np.ndarray]) -> np.ndarray:
    """A plausible soft map on the 8-bit grid (k / 255), so PNG and .npy hold the same values."""
    mean = np.mean(boundaries, axis=0)
    blur = (mean + np.roll(mean, 1, 0) * 0.3 + np.roll(mean, 1, 1) * 0.3) / 1.6
    return np.round(np.clip(blur, 0, 1) * 255) / 255


@pytest.fixture
def tiny_set(tmp_path: Path) -> tuple[Path, Path]:
    """Three images with 3, 4 and 5 annotators; predictions as 8-bit PNG."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    for i, annotators in enumerate((3, 4, 5)):
        maps = _boundaries(i, annotators)
        _save_gt(gt_dir / f"img{i}.mat", maps)
        Image.fromarray(np.round(_soft(maps) * 255).astype(np.uint8)).save(pred_dir / f"img{i}.png")
    return pred_dir, gt_dir


def _ok(args: list) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


# ----------------------------------------------------------------------------- ground truth

def test_ground_truth_round_trip(tmp_path: Path) -> None:
    maps = _boundaries(0, 4)
    _save_gt(tmp_path / "a.mat", maps)
    got = read_ground_truth(tmp_path / "a.mat")
    assert len(got) == 4 and all(g.dtype == bool and g.shape == (H, W) for g in got)
    for g, m in zip(got, maps, strict=True):
        np.testing.assert_array_equal(g, m)
    segs = read_segmentations(tmp_path / "a.mat")
    assert len(segs) == 4 and segs[0].min() == 1


@needs_bench
def test_real_annotator_counts_differ_between_images() -> None:
    counts = {p.stem: len(read_ground_truth(p)) for p in sorted((BENCH / "groundTruth").glob("*.mat"))}
    assert counts == {"2018": 5, "3063": 6, "5096": 5, "6046": 5, "8068": 5}
    b, s = read_ground_truth(BENCH / "groundTruth" / "3063.mat"), read_segmentations(BENCH / "groundTruth" / "3063.mat")
    assert len(s) == len(b) and s[0].shape == b[0].shape == (321, 481)
    if BSDS_GT.is_dir():
        real = [len(read_ground_truth(p)) for p in sorted((BSDS_GT / "val").glob("*.mat"))]
        assert len(real) == 100 and min(real) >= 4 and max(real) <= 9 and len(set(real)) > 1


def test_malformed_ground_truth_names_the_file(tmp_path: Path) -> None:
    savemat(tmp_path / "nogt.mat", {"x": np.ones(3)})
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    cells = np.empty((1, 1), dtype=object)
    cells[0, 0] = {"Segmentation": np.ones((4, 4), np.uint16)}
    savemat(tmp_path / "nobdry.mat", {"groundTruth": cells})
    for name, why in [("nogt.mat", "groundTruth"), ("junk.mat", "readable"), ("nobdry.mat", "Boundaries"),
                      ("absent.mat", "no such file")]:
        with pytest.raises(ValueError, match=why) as err:
            read_ground_truth(tmp_path / name)
        assert name in str(err.value)


# ----------------------------------------------------------------------------- predictions

def test_png8_png16_and_npy_read_the_same(tmp_path: Path) -> None:
    soft = _soft(_boundaries(1, 3))
    k = np.round(soft * 255).astype(np.uint16)
    Image.fromarray(k.astype(np.uint8)).save(tmp_path / "a8.png")
    Image.fromarray(k * 257).save(tmp_path / "a16.png")  # k/255 == 257k/65535 exactly
    np.save(tmp_path / "a.npy", soft.astype(np.float32))
    a8, a16, npy = (read_prediction(tmp_path / n) for n in ("a8.png", "a16.png", "a.npy"))
    assert a8.dtype == np.float64 and a8.shape == (H, W)
    np.testing.assert_allclose(a8, soft, atol=1e-12)
    np.testing.assert_allclose(a16, soft, atol=1e-12)
    np.testing.assert_allclose(npy, soft, atol=1e-7)


def test_ucm2_reader_takes_the_pixel_samples(tmp_path: Path) -> None:
    pb = np.random.default_rng(0).random((5, 7))
    ucm2 = np.zeros((11, 15))
    ucm2[2::2, 2::2] = pb  # MATLAB ucm2(3:2:end, 3:2:end)
    savemat(tmp_path / "u.mat", {"ucm2": ucm2})
    np.testing.assert_array_equal(read_prediction(tmp_path / "u.mat"), pb)


@needs_bench
def test_official_ucm2_matches_its_png() -> None:
    """The fixture's png/ maps are the ucm2 maps read this way, rounded to 8 bits."""
    for p in sorted((BENCH / "ucm2").glob("*.mat")):
        pb = read_prediction(p)
        png = read_prediction(BENCH / "png" / f"{p.stem}.png")
        np.testing.assert_array_equal(np.round(pb * 255) / 255, png)


def _bad_predictions(d: Path) -> dict[str, str]:
    """file name -> the phrase its error must contain."""
    np.save(d / "nan.npy", np.full((4, 4), np.nan))
    np.save(d / "big.npy", np.full((4, 4), 1.5))
    np.save(d / "cube.npy", np.zeros((4, 4, 3)))
    np.save(d / "int.npy", np.zeros((4, 4), np.int64))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / "rgb.png")
    (d / "junk.png").write_bytes(b"\x89PNG but not really")
    savemat(d / "noucm.mat", {"segs": np.zeros((4, 4))})
    (d / "a.jpg").write_bytes(b"")
    return {
        "nan.npy": "NaN", "big.npy": r"\[0, 1\]", "cube.npy": "2-D", "int.npy": "float",
        "rgb.png": "single-channel", "junk.png": "readable", "noucm.mat": "ucm2",
        "a.jpg": "unsupported", "missing.png": "no such file",
    }


def test_malformed_predictions_name_the_file(tmp_path: Path) -> None:
    for name, why in _bad_predictions(tmp_path).items():
        with pytest.raises(ValueError, match=why) as err:
            read_prediction(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- pairing, directory evaluation

def test_pairing_by_stem(tiny_set: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    pred_dir, gt_dir = tiny_set
    (pred_dir / "extra.png").write_bytes(b"")
    (pred_dir / "notes.txt").write_text("not a prediction")
    pairs, extra = pair_files(pred_dir, gt_dir)
    assert [p.name for p in pairs] == ["img0", "img1", "img2"] and extra == [pred_dir / "extra.png"]
    with caplog.at_level(logging.WARNING):
        evaluate_directory(pred_dir, gt_dir, pred_dir.parent / "out", BoundaryConfig(thresholds=3), progress=False)
    assert "1 prediction file(s)" in caplog.text and "extra.png" in caplog.text
    np.save(pred_dir / "img1.npy", np.zeros((H, W)))
    with pytest.raises(ValueError, match=r"img1\.npy and .*img1\.png are both predictions of image img1"):
        pair_files(pred_dir, gt_dir)
    (pred_dir / "img1.npy").unlink()
    (pred_dir / "img2.png").unlink()
    with pytest.raises(ValueError, match=r"no prediction for 1 of 3 ground-truth images in .*: img2 \(expected"):
        pair_files(pred_dir, gt_dir)


def test_formats_give_the_same_result(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    d16, dnpy = tmp_path / "p16", tmp_path / "pnpy"
    d16.mkdir()
    dnpy.mkdir()
    for p in sorted(pred_dir.glob("*.png")):
        k = np.asarray(Image.open(p)).astype(np.uint16)
        Image.fromarray(k * 257).save(d16 / p.name)
        np.save(dnpy / f"{p.stem}.npy", k / 255.0)
    cfg = BoundaryConfig(thresholds=9)
    results = [evaluate_directory(d, gt_dir, tmp_path / f"out_{d.name}", cfg, progress=False)
               for d in (pred_dir, d16, dnpy)]
    for res in results[1:]:
        np.testing.assert_array_equal(res.recall, results[0].recall)
        np.testing.assert_array_equal(res.precision, results[0].precision)
        assert res.per_image == results[0].per_image
    assert 0.5 < results[0].ods["f"] <= 1


def test_written_files_parse_back(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    out = tmp_path / "out"
    res = evaluate_directory(pred_dir, gt_dir, out, BoundaryConfig(thresholds=7), progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([*OFFICIAL_FILES, "metrics.json", "pr_curve.png"])
    back = read_official(out)
    expected = [res.ods["threshold"], res.ods["recall"], res.ods["precision"], res.ods["f"],
                res.ois["recall"], res.ois["precision"], res.ois["f"], res.ap]
    np.testing.assert_allclose(back["summary"], expected, rtol=1e-5, atol=1e-6)  # %g: 6 significant digits
    per_image = [[i + 1, r["threshold"], r["recall"], r["precision"], r["f"]] for i, r in enumerate(res.per_image)]
    np.testing.assert_allclose(back["images"], per_image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back["thresholds"], np.c_[res.thresholds, res.recall, res.precision, res.f],
                               rtol=1e-5, atol=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"ods", "ois", "ap", "r50", "ods_threshold", "images", "thresholds", "nms", "thin",
                            "max_dist", "per_image"}
    assert metrics["images"] == 3 and metrics["thresholds"] == 7 and metrics["ods"] == res.ods["f"]
    assert [p["image"] for p in metrics["per_image"]] == ["img0", "img1", "img2"]
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_write_official_uses_the_official_printf_format(tmp_path: Path) -> None:
    counts = np.array([[8, 10, 9, 10], [5, 10, 10, 10], [1, 10, 10, 10]])
    res = collect([counts, counts], thresholds_for(3))
    write_official(res, tmp_path / "o")
    thr = (tmp_path / "o" / "eval_bdry_thr.txt").read_text().splitlines()
    assert thr[1] == "       0.5        0.5          1   0.666667"  # %10g, one space apart
    img = (tmp_path / "o" / "eval_bdry_img.txt").read_text().splitlines()
    assert [line[:10] for line in img] == ["         1", "         2"]  # %10d index
    assert len((tmp_path / "o" / "eval_bdry.txt").read_text()) == 8 * 11


def test_bad_input_leaves_no_output(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    out = tmp_path / "deep" / "out"
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(pred_dir / "img1.png")  # wrong size
    with pytest.raises(ValueError, match=r"img1\.png.*40x49.*img1\.mat is 40x48"):
        evaluate_directory(pred_dir, gt_dir, out, BoundaryConfig(thresholds=3), progress=False)
    assert not (tmp_path / "deep").exists()
    keep = tmp_path / "existing"
    keep.mkdir()
    (keep / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError):
        evaluate_directory(pred_dir, gt_dir, keep, BoundaryConfig(thresholds=3), progress=False)
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]


# ----------------------------------------------------------------------------- the command

def test_cli_evaluate_edges(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    out = tmp_path / "report"
    text = _ok(["evaluate-edges", "--predictions", pred_dir, "--ground-truth", gt_dir, "--out", out,
                "--thresholds", 5, "--nms", "--no-thin", "--max-dist", 0.01, "--quiet"])
    assert "ODS" in text and "OIS" in text and "AP" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nms"] is True and metrics["thin"] is False and metrics["max_dist"] == 0.01
    assert metrics["thresholds"] == 5 and 0 < metrics["ods"] <= 1


def test_cli_help_documents_every_option() -> None:
    text = _ok(["evaluate-edges", "--help"])
    for option in ["--predictions", "--ground-truth", "--out", "--thresholds", "--nms", "--no-nms", "--thin",
                   "--no-thin", "--max-dist", "--workers", "--subset", "--quiet"]:
        assert option in text
    assert "evaluate-edges" in _ok(["--help"])


@pytest.mark.parametrize("bad", ["missing", "nan", "size"])
def test_cli_bad_input_is_one_line_and_exit_2(tiny_set: tuple[Path, Path], tmp_path: Path, bad: str) -> None:
    pred_dir, gt_dir = tiny_set
    (pred_dir / "img2.png").unlink()
    if bad == "nan":
        np.save(pred_dir / "img2.npy", np.full((H, W), np.nan))
    elif bad == "size":
        Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(pred_dir / "img2.png")
    out = tmp_path / "report"
    result = runner.invoke(app, ["evaluate-edges", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "img2" in lines[0] and "error" in lines[0] and "Traceback" not in result.output
    assert not out.exists()


# ----------------------------------------------------------------------- predict's files, --subset, NMS by default

def _evaluate(pred_dir: Path, gt_dir: Path, out: Path, *extra: object) -> tuple[str, dict]:
    """`evaluate-edges` through Typer at 5 thresholds: its output and metrics.json."""
    text = _ok(["evaluate-edges", "--predictions", pred_dir, "--ground-truth", gt_dir, "--out", out,
                "--thresholds", 5, *extra, "--quiet"])
    return text, json.loads((out / "metrics.json").read_text())


def _fail(pred_dir: Path, gt_dir: Path, out: Path, *extra: object) -> str:
    """`evaluate-edges` that must fail: one line, exit 2, nothing written; that line."""
    result = runner.invoke(app, ["evaluate-edges", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                                 "--out", str(out), *map(str, extra), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and not out.exists()
    return lines[0]


def _more_ground_truth(gt_dir: Path, ids: range) -> None:
    """Ground truth for images that have no prediction: copies of img0's."""
    for i in ids:
        (gt_dir / f"img{i}.mat").write_bytes((gt_dir / "img0.mat").read_bytes())


def test_reads_predict_edges_suffix_as_written(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    """`pixelnet predict` writes <id>_edges.png (or _edges.npy): paired with <id>.mat, scored the same."""
    pred_dir, gt_dir = tiny_set
    tagged = tmp_path / "tagged"
    tagged.mkdir()
    for p in sorted(pred_dir.glob("*.png")):
        if p.stem == "img1":  # float32 probabilities, as `predict --format npy` writes them
            np.save(tagged / "img1_edges.npy", (np.asarray(Image.open(p)) / 255.0).astype(np.float32))
        else:
            (tagged / f"{p.stem}_edges.png").write_bytes(p.read_bytes())
    pairs, extra = pair_files(tagged, gt_dir)
    assert [(p.name, p.prediction.name) for p in pairs] == [
        ("img0", "img0_edges.png"), ("img1", "img1_edges.npy"), ("img2", "img2_edges.png")] and extra == []
    _, plain = _evaluate(pred_dir, gt_dir, tmp_path / "plain")
    _, ours = _evaluate(tagged, gt_dir, tmp_path / "ours")
    assert [r["image"] for r in ours["per_image"]] == ["img0", "img1", "img2"]
    for a, b in zip(ours["per_image"], plain["per_image"], strict=True):
        assert a["f"] == pytest.approx(b["f"], abs=1e-6)


def test_two_files_of_one_id_is_an_error_naming_both(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    (pred_dir / "img0_edges.png").write_bytes((pred_dir / "img0.png").read_bytes())
    line = _fail(pred_dir, gt_dir, tmp_path / "out")
    assert "img0.png" in line and "img0_edges.png" in line and "image img0" in line


def test_missing_predictions_are_named_and_counted(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    _more_ground_truth(gt_dir, range(3, 9))  # img3..img8 have no prediction
    line = _fail(pred_dir, gt_dir, tmp_path / "out")
    assert "no prediction for 6 of 9 ground-truth images" in line
    assert "img3, img4, img5, img6, img7, ... (1 more)" in line and "--subset" in line
    assert "img0" not in line and "img8" not in line  # only the first few missing ones, then a count


def test_subset_scores_only_those_present_and_says_so(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = tiny_set
    text, full = _evaluate(pred_dir, gt_dir, tmp_path / "full")  # all three, before the extra ground truth
    assert "scored" not in text
    text, _ = _evaluate(pred_dir, gt_dir, tmp_path / "all", "--subset")
    assert "scored 3 of 3 ground-truth images (--subset)" in text
    _more_ground_truth(gt_dir, range(3, 9))
    text, sub = _evaluate(pred_dir, gt_dir, tmp_path / "sub", "--subset")
    assert "scored 3 of 9 ground-truth images (--subset)" in text and "(3 images)" in text
    assert sub["images"] == 3 and sub["per_image"] == full["per_image"] and sub["ods"] == full["ods"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "photo_edges.png").write_bytes((pred_dir / "img0.png").read_bytes())
    line = _fail(other, gt_dir, tmp_path / "none", "--subset")
    assert "no prediction matches any of the 9 ground-truth images" in line


def test_nms_is_the_cli_default(tmp_path: Path) -> None:
    """On a thick (blurred) map NMS matters: the default scores what --nms scores, not --no-nms."""
    from scipy.ndimage import gaussian_filter

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    maps = _boundaries(0, 4)
    _save_gt(gt_dir / "img0.mat", maps)
    thick = gaussian_filter(np.mean(maps, axis=0), 1.5)  # ridges several pixels wide
    Image.fromarray(np.round(thick / thick.max() * 255).astype(np.uint8)).save(pred_dir / "img0_edges.png")
    runs = {flag: _evaluate(pred_dir, gt_dir, tmp_path / (flag or "default"), *([flag] if flag else []))[1]
            for flag in ("", "--nms", "--no-nms")}
    assert runs[""]["nms"] is True and runs["--nms"]["nms"] is True and runs["--no-nms"]["nms"] is False
    assert runs[""]["per_image"] == runs["--nms"]["per_image"] and runs[""]["ap"] == runs["--nms"]["ap"]
    assert runs[""]["per_image"] != runs["--no-nms"]["per_image"] and runs[""]["ap"] != runs["--no-nms"]["ap"]


# ----------------------------------------------------------------------------- the official test case

def _max_diff(ours: dict[str, np.ndarray], official: dict[str, np.ndarray]) -> float:
    assert ours["images"].shape == official["images"].shape
    np.testing.assert_array_equal(ours["images"][:, 0], official["images"][:, 0])
    np.testing.assert_allclose(ours["thresholds"][:, 0], official["thresholds"][:, 0], atol=1e-6)
    return max(float(np.abs(ours[k] - official[k]).max()) for k in ("summary", "images", "thresholds"))


@needs_bench
@pytest.mark.parametrize(("folder", "official", "workers"), [("png", "test_2", 2), ("ucm2", "test_1", 1)])
def test_reproduces_the_official_benchmark(tmp_path: Path, folder: str, official: str, workers: int) -> None:
    """Every ODS / OIS / AP figure, per-threshold and per-image best within 0.002 of MATLAB's."""
    out = tmp_path / "report"
    _ok(["evaluate-edges", "--predictions", BENCH / folder, "--ground-truth", BENCH / "groundTruth", "--out", out,
         "--thresholds", 5, "--no-nms", "--workers", workers, "--quiet"])  # the official benchmark has no NMS
    ours, theirs = read_official(out), read_official(BENCH / official)
    diff = _max_diff(ours, theirs)
    print(f"{folder} vs {official}: max abs diff {diff:.6f}")
    assert diff <= TOL
    assert ours["summary"][0] == theirs["summary"][0]  # same ODS threshold
    np.testing.assert_array_equal(ours["images"][:, 1], theirs["images"][:, 1])  # same per-image thresholds

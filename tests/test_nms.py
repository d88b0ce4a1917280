"""Edge NMS (HED / RCF `nms_process` recipe): known cases, the Numba kernel against its NumPy
twin, and `evaluate-edges --nms` against pyEdgeEval's `apply_nms=True` on the BSDS fixture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.metrics import matching as M
from pixelnet.metrics import nms as N
from pixelnet.metrics.edges import collect, thresholds_for
from pixelnet.metrics.nms import conv_tri, edge_nms, edge_orientation

SIZE = 64
BENCH = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "bsds500-bench"


def _ridge(distance: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """A blurred line: Gaussian profile of the signed distance to it, peak 1."""
    return np.exp(-(distance**2) / (2 * sigma**2))


def _grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    return yy, xx


@pytest.mark.parametrize("r", [0.5, 1, 4])
def test_conv_tri_is_the_documented_pad_and_convolve(r: float) -> None:
    """convTri.m: f = [1:r r+1 r:-1:1]/(r+1)^2 (or [1 p 1]/(2+p) for r < 1), symmetric pad, valid conv."""
    rng = np.random.default_rng(0)
    image = rng.random((17, 23))
    if r < 1:
        p = 12 / r / (r + 2) - 2
        f, pad = np.array([1, p, 1]) / (2 + p), 1
    else:
        f, pad = np.r_[np.arange(1, r + 2), np.arange(r, 0, -1)] / (r + 1) ** 2, r
    padded = np.pad(image, pad, mode="symmetric")  # MATLAB padarray 'symmetric'
    rows = np.apply_along_axis(lambda v: np.convolve(v, f, mode="valid"), 0, padded)
    expected = np.apply_along_axis(lambda v: np.convolve(v, f, mode="valid"), 1, rows)
    np.testing.assert_allclose(conv_tri(image, r), expected, atol=1e-12)


def test_orientation_is_the_normal_of_the_line() -> None:
    yy, xx = _grid()
    inner = (slice(12, 52), slice(12, 52))
    cases = {
        "vertical": (_ridge(xx - 30), 0.0),  # normal along x
        "horizontal": (_ridge(yy - 30), np.pi / 2),  # normal along y (needs the sign(0) fix)
        "diagonal y=x": (_ridge((xx - yy) / np.sqrt(2)), 3 * np.pi / 4),
        "diagonal y=-x": (_ridge((xx + yy - SIZE) / np.sqrt(2)), np.pi / 4),
    }
    for name, (edges, angle) in cases.items():
        o = edge_orientation(edges)
        assert o.min() >= 0 and o.max() <= np.pi  # mod(-1e-20, pi) rounds to pi, as in MATLAB
        on_line = edges[inner] > 0.5
        # Orientations are modulo pi: compare on the circle of doubled angles.
        err = np.abs(np.angle(np.exp(2j * (o[inner][on_line] - angle)))) / 2
        assert err.max() < 0.01, name


def _smoothed_peak(sigma: float = 1.5) -> float:
    """The centre of `_ridge` after convTri(E, 1): [1 2 1] / 4 across it, (2 + 2 exp(-1 / 2 sigma^2)) / 4."""
    return (2 + 2 * math.exp(-1 / (2 * sigma**2))) / 4


@pytest.mark.parametrize("axis", [0, 1])
def test_blurred_line_thins_to_its_centre(axis: int) -> None:
    yy, xx = _grid()
    edges = _ridge((yy if axis == 0 else xx) - 30)
    out = edge_nms(edges)
    # Clear of the 5-px border ramp, and within 8 px of the line: further out the map is
    # ~1e-6 and too flat for the toolbox's orientation estimate (Oxx + 1e-5) to see it.
    band = (slice(22, 39), slice(8, 56)) if axis == 0 else (slice(8, 56), slice(22, 39))
    ys, xs = np.nonzero(out[band])
    across = (ys if axis == 0 else xs) + 22
    assert set(across.tolist()) == {30}  # one pixel wide, at the centre
    # The whole ridge survives, at the strength of the convTri(E, 1)-smoothed map (not the input's 1).
    assert ys.size == 48
    np.testing.assert_allclose(out[band][ys, xs], _smoothed_peak(), rtol=1e-12)


def test_ridge_between_pixels_keeps_the_nearest() -> None:
    _, xx = _grid()
    out = edge_nms(_ridge(xx - 20.3))
    assert set(np.nonzero(out[8:56])[1].tolist()) == {20}


def test_border_ramp_attenuates_linearly() -> None:
    out = edge_nms(np.ones((20, 30)))  # a plateau: nothing is suppressed, only the ramp applies
    np.testing.assert_allclose(out[10, :7], [0, 0.2, 0.4, 0.6, 0.8, 1, 1])
    np.testing.assert_allclose(out[10, -6:], [1, 0.8, 0.6, 0.4, 0.2, 0])
    np.testing.assert_allclose(out[:6, 15], [0, 0.2, 0.4, 0.6, 0.8, 1])
    assert out[1, 1] == pytest.approx(0.2 * 0.2)  # corners get both ramps
    small = edge_nms(np.ones((6, 40)))  # s is capped at half the size: 3
    np.testing.assert_allclose(small[:, 20], [0, 1 / 3, 2 / 3, 2 / 3, 1 / 3, 0])


def test_line_near_the_border_is_attenuated() -> None:
    _, xx = _grid()
    out = edge_nms(_ridge(xx - 2))
    np.testing.assert_allclose(out[20:40, 2], 2 / 5 * _smoothed_peak(), rtol=1e-12)
    assert np.count_nonzero(out[20:40]) == 20


def test_isolated_maximum_survives() -> None:
    yy, xx = _grid()
    blob = np.exp(-((yy - 30) ** 2 + (xx - 33) ** 2) / (2 * 2.0**2))
    smoothed = conv_tri(blob, 1)
    out = edge_nms(blob)
    assert smoothed.argmax() == np.ravel_multi_index((30, 33), blob.shape)
    assert out[30, 33] == smoothed[30, 33] < 1.0  # kept, at its smoothed strength
    assert np.all(out <= smoothed) and out.max() == smoothed.max()


@pytest.mark.parametrize("smooth", [0, 1])
def test_zeros_stay_zero_and_nothing_grows(smooth: int) -> None:
    """What is suppressed or faded is the (smoothed) map itself: zeros of it stay 0, nothing grows."""
    rng = np.random.default_rng(1)
    edges = rng.random((30, 40)) * (rng.random((30, 40)) < 0.5)
    edges[10:20, 5:25] = 0  # a hole wide enough to stay 0 after convTri(E, 1)
    e = conv_tri(edges, smooth)
    out = edge_nms(edges, smooth=smooth)
    assert np.count_nonzero(e == 0) >= 8 * 18 and np.all(out[e == 0] == 0)
    assert np.all(out <= e) and np.all(out >= 0)
    assert np.count_nonzero(out) > 0.1 * np.count_nonzero(e)  # and not everything was wiped out


def test_smoothing_comes_first() -> None:
    """nms_process.m: E = convTri(E, 1), then orientation and suppression both of that E."""
    rng = np.random.default_rng(4)
    yy, xx = _grid()
    for edges in (rng.random((37, 52)) ** 2, _ridge(np.hypot(yy - 30, xx - 28) - 15)):
        e = conv_tri(edges, 1)
        expected = N._fade_border(N._suppress_reference(e, edge_orientation(e), 1, 1.01), 5)
        np.testing.assert_allclose(edge_nms(edges), expected, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(edge_nms(edges), edge_nms(e, smooth=0))
        assert not np.allclose(edge_nms(edges), edge_nms(edges, smooth=0))  # the step is not a no-op


@pytest.mark.parametrize(("r", "m"), [(1, 1.01), (2, 1.0), (3, 1.1)])
def test_numba_kernel_matches_numpy_twin(r: int, m: float) -> None:
    rng = np.random.default_rng(r)
    for shape in [(2, 2), (7, 31), (40, 33)]:
        for edges in (rng.random(shape) ** 2, conv_tri(rng.random(shape) ** 2, 1)):  # raw, and as edge_nms sees it
            o = edge_orientation(edges)
            np.testing.assert_array_equal(N._suppress(edges, o, r, m), N._suppress_reference(edges, o, r, m))


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="2-D"):
        edge_nms(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="orientation"):
        edge_nms(np.zeros((4, 4)), orientation=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2 x 2"):
        edge_nms(np.zeros((1, 9)))


def test_matches_pyedgeeval_port_of_the_toolbox() -> None:
    """Same orientation in, same map out as pyEdgeEval's C++ port of edgesNmsMex (bench extra)."""
    port = pytest.importorskip("pyEdgeEval._lib", reason="pyEdgeEval is in the optional `bench` group")
    toolbox = pytest.importorskip("pyEdgeEval.preprocess.nms.toolbox")
    rng = np.random.default_rng(3)
    yy, xx = _grid()
    for edges in (rng.random((50, 60)) ** 3, _ridge(np.hypot(yy - 30, xx - 28) - 15)):
        for radius in (1, 4):
            np.testing.assert_allclose(conv_tri(edges, radius), toolbox.conv_tri(edges, radius), atol=1e-12)
        o = edge_orientation(edges)
        for r, s, m in ((1, 5, 1.01), (2, 3, 1.0)):
            ours = edge_nms(edges, o, r, s, m, smooth=0)
            np.testing.assert_allclose(ours, port.nms(edges, o, r=r, s=s, m=m), atol=1e-12)


def _pyedgeeval_orientation(edges: np.ndarray) -> np.ndarray:
    """fast_nms's orientation, line by line: of the map smoothed by its own convTri(E, 1) then
    convTri(E, 4) (2-D convolutions, which round differently from ours), Oxx == 0 replaced by
    1e-5, and numpy's sign(0) = 0."""
    from pyEdgeEval.preprocess.nms.toolbox import conv_tri as their_conv_tri
    from pyEdgeEval.preprocess.nms.toolbox import grad2

    ox, oy = grad2(their_conv_tri(their_conv_tri(edges, 1), 4))
    oxx, _ = grad2(ox)
    oxy, oyy = grad2(oy)
    oxx[oxx == 0] = 1e-5
    return np.mod(np.arctan(oyy * np.sign(-oxy) / oxx), np.pi)


def test_matches_pyedgeeval_fast_nms() -> None:
    """pyEdgeEval's `fast_nms` (its apply_nms=True): the same smoothing, suppression of the
    smoothed map and border ramp; the orientations differ only as the module docstring says."""
    pytest.importorskip("pyEdgeEval", reason="pyEdgeEval is in the optional `bench` group")
    from pyEdgeEval.preprocess.nms import fast_nms

    rng = np.random.default_rng(5)
    yy, xx = _grid()
    for edges in (rng.random((50, 60)) ** 3, _ridge(np.hypot(yy - 30, xx - 28) - 15)):
        theirs = fast_nms(edges.copy())
        e = conv_tri(edges, 1)
        np.testing.assert_allclose(edge_nms(edges, _pyedgeeval_orientation(edges)), theirs, rtol=0, atol=1e-12)
        # Our orientation: Oxx + 1e-5 instead of Oxx only where Oxx == 0, which turns the angle
        # by at most ~1e-5 / |Oxx|; and sign(0) = +1, which can only matter where Oxy == 0.
        s = conv_tri(e, 4)
        oxx, oxy = N._gradient(N._gradient(s, 1), 1), N._gradient(N._gradient(s, 0), 1)
        turn = np.abs(np.angle(np.exp(2j * (edge_orientation(e) - _pyedgeeval_orientation(edges))))) / 2
        bound = 1e-5 / np.maximum(np.abs(oxx), 1e-300) + 1e-12
        assert np.all(turn[oxy != 0] <= bound[oxy != 0])
        assert np.mean(bound < 1e-2) > 0.3  # a bound that bites: most of the map has |Oxx| >= 1e-3


# ------------------------------------------- `evaluate-edges --nms` against pyEdgeEval's own NMS path


def _exact_correspond(bmap: np.ndarray, gt: np.ndarray, max_dist: float = 0.0075, outlier_cost: float = 100.0):
    """pyEdgeEval's `correspond_pixels(bmap, gt, max_dist)` -> (match1, match2, cost, oc), solved
    exactly (our `matching._correspond`). Its callers use `match1 > 0` (matched predicted pixels)
    and `(match2 > 0).sum()` (how many gt pixels are matched), which is all match2 carries here."""
    bmap, gt = np.asarray(bmap, dtype=bool), np.asarray(gt, dtype=bool)
    radius = max_dist * math.hypot(*bmap.shape)
    offsets, pad = M.offsets(radius), math.ceil(radius)
    py, px = np.nonzero(bmap)
    matched, n_gt_matched = M._correspond(py, px, M._id_map(gt, pad), int(gt.sum()), offsets, pad)
    match1 = np.zeros(bmap.shape)
    match1[py[matched], px[matched]] = 1.0
    match2 = np.zeros(gt.shape)
    match2.ravel()[:n_gt_matched] = 1.0
    return match1, match2, 0.0, 0.0


@pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/fixtures/bsds500-bench is absent")
def test_evaluate_edges_nms_agrees_with_pyedgeeval_apply_nms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-image best F of `pixelnet evaluate-edges --nms` and of pyEdgeEval's BSDS500 evaluator
    with apply_nms=True, on the fixture's five soft maps (official protocol on both sides: 99
    thresholds, pred >= t, thinning, max_dist 0.0075).

    pyEdgeEval's side is its own per-image path (`bsds_eval_single`: skimage PNG reader, .mat
    reader, `fast_nms`, its threshold grid and `binary_thin`, its counting), fed the sample dicts
    its `BSDS500Evaluator.evaluate` builds, with one swap: its `correspond_pixels`, the official
    CSA on a randomly wired graph that falls a few matches short differently on every run (up to
    0.003 of per-image F between runs on small crops) and takes ~40 s per image here, is replaced
    by an exact matcher. So this compares everything but the matcher, deterministically, in
    seconds; the matchers are compared in test_bench.py / test_metrics_edges.py.
    Both sides' counts are summarised by `collect` (collect_eval_bdry.m's interpolated best F).
    Measured |dF| per image: <= 0.0004 (<= 0.0006 with pyEdgeEval's own matcher, one run);
    0.0000 / 0.0014 / 0.0044 / 0.0054 / 0.0053 when the map was not smoothed with convTri(E, 1)."""
    pytest.importorskip("pyEdgeEval", reason="pyEdgeEval is in the optional `bench` group")
    pytest.importorskip("prettytable")  # pyEdgeEval's evaluators import it without declaring it
    import pyEdgeEval.common.binary_label.evaluate_boundaries as their_boundaries
    from pyEdgeEval.datasets.bsds import bsds_eval_single
    from pyEdgeEval.evaluators.bsds import BSDS500Evaluator

    n_thresholds, max_dist = 99, 0.0075
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "evaluate-edges", "--predictions", str(BENCH / "png"), "--ground-truth", str(BENCH / "groundTruth"),
        "--out", str(out), "--nms", "--thin", "--thresholds", str(n_thresholds), "--max-dist", str(max_dist),
        "--workers", "1", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nms"] is True and metrics["thin"] is True and metrics["thresholds"] == n_thresholds
    ours = {row["image"]: row["f"] for row in metrics["per_image"]}

    names = sorted(p.stem for p in (BENCH / "groundTruth").glob("*.mat"))
    assert len(names) == 5 and sorted(ours) == names
    evaluator = BSDS500Evaluator(dataset_root=str(BENCH), pred_root=str(BENCH / "png"))
    evaluator.set_sample_names(names)  # the fixture has no test/ split folder
    evaluator.set_eval_params(scale=1.0, apply_thinning=True, apply_nms=True, max_dist=max_dist)
    monkeypatch.setattr(their_boundaries, "correspond_pixels", _exact_correspond)
    diffs = {}
    for name in evaluator.sample_names:
        sample = dict(  # as BSDS500Evaluator.evaluate builds it (GT_root/<name>.mat, pred_root/<name>.png)
            name=name, thresholds=n_thresholds, gt_path=str(BENCH / "groundTruth" / f"{name}.mat"),
            pred_path=str(BENCH / "png" / f"{name}.png"), **evaluator.eval_params,
        )
        assert sample["apply_nms"] is True and sample["apply_thinning"] is True and sample["max_dist"] == max_dist
        counts = np.stack(bsds_eval_single(sample), axis=1).astype(np.int64)  # (T, 4): cntR sumR cntP sumP
        theirs = collect([counts], thresholds_for(n_thresholds)).per_image[0]["f"]
        diffs[name] = ours[name] - theirs
    assert max(abs(d) for d in diffs.values()) <= 0.002, diffs

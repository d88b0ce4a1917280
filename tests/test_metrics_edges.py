"""BSDS boundary benchmark: hand-built cases, the matcher against its SciPy twin, the Numba
thinning and per-threshold kernel against skimage and the NumPy path, and the official
benchmark's own test case (test_2: png soft maps, 5 thresholds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import thin as sk_thin

from pixelnet.metrics import matching as M
from pixelnet.metrics import thinning as T
from pixelnet.metrics.edges import (
    BoundaryConfig,
    collect,
    evaluate_boundaries,
    image_counts,
    plot_pr,
    thresholds_for,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
BENCH = SHARED / "fixtures" / "bsds500-bench"
# 100 x 100 image: max_dist 0.0075 of the diagonal is 1.06 px.
SIZE = 100


def _vline(x: int, size: int = SIZE, y0: int = 10, y1: int = 90) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[y0:y1, x] = True
    return m


def test_thresholds_are_the_official_grid() -> None:
    t = thresholds_for(99)
    assert t.shape == (99,)
    assert t[0] == pytest.approx(0.01) and t[-1] == pytest.approx(0.99)
    np.testing.assert_allclose(thresholds_for(5), np.arange(1, 6) / 6)


def test_perfect_prediction() -> None:
    # One-pixel-wide curves that thinning leaves alone (a closed outline would lose corners).
    gt = _vline(20) | _vline(80, y0=30)
    gt[np.arange(30, 70), np.arange(35, 75)] = True  # a diagonal
    res = evaluate_boundaries([gt.astype(float)], [[gt]], BoundaryConfig(thresholds=9))
    np.testing.assert_allclose(res.recall, 1.0)
    np.testing.assert_allclose(res.precision, 1.0)
    assert res.ods["f"] == pytest.approx(1.0)
    assert res.ois["f"] == pytest.approx(1.0)
    assert res.per_image[0]["f"] == pytest.approx(1.0)


def test_one_pixel_shift_matches_five_does_not() -> None:
    gt = _vline(50)
    near = image_counts(_vline(51).astype(float), [gt], BoundaryConfig(thresholds=3))
    far = image_counts(_vline(55).astype(float), [gt], BoundaryConfig(thresholds=3))
    np.testing.assert_array_equal(near, [[80, 80, 80, 80]] * 3)
    np.testing.assert_array_equal(far, [[0, 80, 0, 80]] * 3)


def test_empty_prediction_has_zero_recall() -> None:
    counts = image_counts(np.zeros((SIZE, SIZE)), [_vline(50)], BoundaryConfig(thresholds=5))
    np.testing.assert_array_equal(counts, [[0, 80, 0, 0]] * 5)
    res = collect([counts], thresholds_for(5))
    assert res.ods["f"] == 0 and res.ois["recall"] == 0 and res.ap == 0


def test_two_annotators_accumulate_recall() -> None:
    a = _vline(30)
    b = _vline(30) | _vline(70)
    counts = image_counts(_vline(30).astype(float), [a, b], BoundaryConfig(thresholds=2))
    # cntR = 80 + 80, sumR = 80 + 160; every predicted pixel is matched.
    np.testing.assert_array_equal(counts, [[160, 240, 80, 80]] * 2)


def test_matching_is_one_to_one() -> None:
    pred = (_vline(50) | _vline(51)).astype(float)  # two pixels per gt pixel, unthinned
    counts = image_counts(pred, [_vline(50)], BoundaryConfig(thresholds=1, thin=False))
    np.testing.assert_array_equal(counts, [[80, 80, 80, 160]])


def test_threshold_is_inclusive_and_thinning_thins() -> None:
    pred = np.zeros((SIZE, SIZE))
    pred[10:90, 48:53] = 0.5  # a 5-px-wide bar, exactly at the middle threshold
    cfg = BoundaryConfig(thresholds=1)  # t = 0.5
    thin = image_counts(pred, [_vline(50)], cfg)
    thick = image_counts(pred, [_vline(50)], BoundaryConfig(thresholds=1, thin=False))
    assert thick[0, 3] == 5 * 80
    assert 0 < thin[0, 3] < 2 * 80  # thinned to about one pixel wide
    assert thin[0, 0] >= 70


@pytest.mark.parametrize("seed", range(4))
def test_matcher_is_min_cost_max_cardinality(seed: int) -> None:
    """The Numba matcher against LAPJVsp (SciPy): same cardinality and same total cost."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        h, w = rng.integers(8, 40, size=2)
        a = rng.random((h, w)) < rng.uniform(0.02, 0.5)
        b = rng.random((h, w)) < rng.uniform(0.02, 0.5)
        radius = rng.uniform(0.0, 3.0)
        offsets, pad = M.offsets(radius), math.ceil(radius)
        py, px = np.nonzero(a)
        gt_ids = M._id_map(b, pad)
        _, n_ref, cost_ref = M._correspond_reference(py, px, gt_ids, int(b.sum()), offsets, pad)
        rows, cols, cost = M._candidate_pairs(py, px, gt_ids, offsets, pad)
        indptr = np.zeros(py.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=py.size), out=indptr[1:])
        match = M._min_cost_max_matching(indptr, cols, cost, int(b.sum()))  # (N,)
        hit = np.flatnonzero(match >= 0)
        assert np.unique(match[hit]).size == hit.size  # one-to-one
        pair_cost = {(int(r), int(c)): int(w) for r, c, w in zip(rows, cols, cost)}
        assert all((int(i), int(match[i])) in pair_cost for i in hit)  # only allowed pairs
        assert hit.size == n_ref
        assert sum(pair_cost[int(i), int(match[i])] for i in hit) == cost_ref
        # The transposed path (more predicted than gt pixels) agrees on the count.
        matched, n = M._correspond(py, px, gt_ids, int(b.sum()), offsets, pad)
        assert n == n_ref and matched.sum() == n_ref


def _random_maps(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Binary maps from speckle to thick blobs, touching the border, plus empty and full."""
    maps = [np.zeros((7, 9), bool), np.ones((7, 9), bool), np.ones((1, 5), bool)]
    for _ in range(n):
        h, w = rng.integers(1, 60, size=2)
        field = ndi.gaussian_filter(rng.random((h, w)), rng.uniform(0.0, 4.0))
        maps.append(field >= np.quantile(field, rng.uniform(0.05, 0.95)))
    return maps


def test_thin_tables_are_skimages() -> None:
    from skimage.morphology import _skeletonize  # private: skip if skimage moves them

    if not hasattr(_skeletonize, "G123_LUT"):
        pytest.skip("skimage no longer exposes its thinning tables")
    np.testing.assert_array_equal(T._LUT1, _skeletonize.G123_LUT.astype(bool))
    np.testing.assert_array_equal(T._LUT2, _skeletonize.G123P_LUT.astype(bool))
    four_on = (np.arange(256) & T._FOUR) == T._FOUR  # the kernel never visits these
    assert not T._LUT1[four_on].any() and not T._LUT2[four_on].any()


@pytest.mark.parametrize("seed", range(3))
def test_numba_thin_equals_skimage(seed: int) -> None:
    for raw in _random_maps(np.random.default_rng(seed), 60):
        np.testing.assert_array_equal(T.thin(raw), sk_thin(raw))


def test_numba_thin_on_shapes() -> None:
    square = np.zeros((7, 7), bool)
    square[1:-1, 2:-2] = True
    square[0, 1] = True
    np.testing.assert_array_equal(T.thin(square), sk_thin(square))  # skimage's docstring case
    disk = np.hypot(*np.mgrid[-40:41, -40:41]) <= 38  # many iterations
    np.testing.assert_array_equal(T.thin(disk), sk_thin(disk))
    assert T.thin(disk).sum() < 10


@pytest.mark.parametrize("seed", range(3))
def test_neighbour_lists_are_candidate_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        h, w = rng.integers(1, 30, size=2)
        gt = rng.random((h, w)) < rng.uniform(0.0, 0.4)
        radius = rng.uniform(0.0, 4.5)
        (dy, dx, cost), pad = M.offsets(radius), math.ceil(radius)
        ptr = np.empty(h * w + 1, np.int64)
        ids, costs = M.neighbour_lists(gt, dy, dx, cost, ptr)
        py, px = np.divmod(np.arange(h * w), w)  # every pixel, row-major
        rows, cols, pair_cost = M._candidate_pairs(py, px, M._id_map(gt, pad), (dy, dx, cost), pad)
        np.testing.assert_array_equal(np.diff(ptr), np.bincount(rows, minlength=h * w))
        np.testing.assert_array_equal(ids, cols)
        np.testing.assert_array_equal(costs, pair_cost)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_kernel_equals_numpy_path(seed: int) -> None:
    """`threshold_counts` against `_correspond` per annotator, with either side the larger."""
    rng = np.random.default_rng(seed)
    for _ in range(15):
        h, w = rng.integers(5, 40, size=2)
        bmap = rng.random((h, w)) < rng.uniform(0.0, 0.5)
        anns = [rng.random((h, w)) < rng.uniform(0.0, 0.5) for _ in range(rng.integers(1, 5))]
        radius = rng.uniform(0.5, 3.0)
        offsets, pad = M.offsets(radius), math.ceil(radius)
        py, px = np.nonzero(bmap)
        hit, cnt_r = np.zeros(py.size, bool), 0
        for gt in anns:
            matched, n = M._correspond(py, px, M._id_map(gt, pad), int(gt.sum()), offsets, pad)
            hit |= matched
            cnt_r += n
        ptr = np.empty((len(anns), h * w + 1), np.int64)
        ids, costs = [], []
        for a, gt in enumerate(anns):
            i, c = M.neighbour_lists(gt, *offsets, ptr[a])
            ptr[a] += sum(x.size for x in ids)
            ids.append(i)
            costs.append(c)
        n_gts = np.array([gt.sum() for gt in anns], np.int64)
        got = M.threshold_counts(bmap, ptr, np.concatenate(ids), np.concatenate(costs), n_gts)
        assert got == (cnt_r, int(hit.sum()), py.size)


def _image_counts_reference(pred: np.ndarray, annotations: list, config: BoundaryConfig) -> np.ndarray:
    """The straightforward loop: skimage thinning and `_correspond` at every threshold."""
    radius = config.max_dist * math.hypot(*pred.shape)
    offsets, pad = M.offsets(radius), math.ceil(radius)
    gts = [(M._id_map(a, pad), int(a.sum())) for a in annotations]
    rows = []
    for thr in thresholds_for(config.thresholds):
        bmap = sk_thin(pred >= thr) if config.thin else pred >= thr
        py, px = np.nonzero(bmap)
        hit, cnt_r = np.zeros(py.size, bool), 0
        for gt_ids, n_gt in gts:
            matched, n = M._correspond(py, px, gt_ids, n_gt, offsets, pad)
            hit |= matched
            cnt_r += n
        rows.append((cnt_r, sum(n for _, n in gts), int(hit.sum()), py.size))
    return np.array(rows, dtype=np.int64)


@pytest.mark.parametrize("thin", [True, False])
def test_image_counts_equals_reference_loop(thin: bool) -> None:
    rng = np.random.default_rng(7)
    for quantise in (True, False):
        pred = ndi.gaussian_filter(rng.random((70, 90)), 1.5)
        pred = (pred - pred.min()) / (pred.max() - pred.min())
        if quantise:  # 8-bit levels: repeated maps between neighbouring thresholds
            pred = np.round(pred * 15) / 15
        anns = [ndi.gaussian_filter(rng.random((70, 90)), 2.0) > 0.56 for _ in range(3)]
        anns = [sk_thin(a ^ ndi.binary_erosion(a)) for a in anns]  # outlines, as annotators draw
        cfg = BoundaryConfig(thresholds=25, thin=thin)
        np.testing.assert_array_equal(image_counts(pred, anns, cfg), _image_counts_reference(pred, anns, cfg))


def test_collect_interpolates_between_thresholds() -> None:
    # R goes 1 -> 0 and P 0 -> 1: both grid points have F = 0, the midpoint F = 0.5.
    counts = np.array([[10, 10, 0, 10], [0, 10, 10, 10]])
    res = collect([counts], np.array([0.25, 0.75]))
    np.testing.assert_allclose(res.f, [0.0, 0.0])
    assert res.ods["f"] == pytest.approx(0.5, abs=1e-3)
    assert res.ods["threshold"] == pytest.approx(0.5, abs=0.01)
    assert res.per_image[0]["f"] == pytest.approx(0.5, abs=1e-3)
    assert res.ois["f"] == 0.0  # OIS uses the uninterpolated counts, as the official code
    # P(R) = 1 - R sampled at R = 0:0.01:1, summed x 0.01 (the official rectangle rule).
    assert res.ap == pytest.approx(0.505, abs=1e-9)


def test_collect_sums_counts_over_images() -> None:
    a = np.array([[8, 10, 9, 10], [5, 10, 10, 10]])
    b = np.array([[2, 10, 1, 10], [1, 10, 5, 5]])
    res = collect([a, b], np.array([0.3, 0.6]))
    np.testing.assert_allclose(res.recall, [0.5, 0.3])
    np.testing.assert_allclose(res.precision, [0.5, 1.0])
    # OIS: image a is best at t0 (F .85 vs .67), image b at t1 (F .18 vs .13).
    assert res.ois["recall"] == pytest.approx((8 + 1) / 20)
    assert res.ois["precision"] == pytest.approx((9 + 5) / 15)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="annotation 0"):
        image_counts(np.zeros((10, 10)), [np.zeros((10, 11), bool)], BoundaryConfig())


def test_plot_pr_writes_png(tmp_path: Path) -> None:
    counts = np.array([[10, 10, 2, 10], [6, 10, 6, 10], [1, 10, 1, 1]])
    res = collect([counts], thresholds_for(3))
    out = tmp_path / "pr.png"
    plot_pr({"model": res}, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))


def _load_bench() -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    from PIL import Image
    from scipy.io import loadmat

    ids = sorted(p.stem for p in (BENCH / "png").glob("*.png"))
    preds, anns = [], []
    for i in ids:
        preds.append(np.asarray(Image.open(BENCH / "png" / f"{i}.png"), dtype=np.float64) / 255)
        gt = loadmat(BENCH / "groundTruth" / f"{i}.mat")["groundTruth"]  # (1, A) cell
        anns.append([gt[0, a]["Boundaries"][0, 0].astype(bool) for a in range(gt.shape[1])])
    return preds, anns


@pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/fixtures/bsds500-bench is absent")
def test_matches_official_bsds_test_2() -> None:
    """Within 0.002 of the official MATLAB output (the official matcher itself is randomised
    and moves these figures by up to ~0.001 between runs: compare test_1 with test_2)."""
    preds, anns = _load_bench()
    res = evaluate_boundaries(preds, anns, BoundaryConfig(thresholds=5))
    tol = 0.002
    t, odr, odp, odf, oir, oip, oif, ap = np.loadtxt(BENCH / "test_2" / "eval_bdry.txt")
    assert res.ods["threshold"] == pytest.approx(t, abs=1e-5)
    assert [res.ods["recall"], res.ods["precision"], res.ods["f"]] == pytest.approx(
        [odr, odp, odf], abs=tol
    )
    assert [res.ois["recall"], res.ois["precision"], res.ois["f"]] == pytest.approx(
        [oir, oip, oif], abs=tol
    )
    assert res.ap == pytest.approx(ap, abs=tol)
    per_img = np.loadtxt(BENCH / "test_2" / "eval_bdry_img.txt")  # index, T, R, P, F
    for row, got in zip(per_img, res.per_image, strict=True):
        assert got["threshold"] == pytest.approx(row[1], abs=1e-5)
        assert [got["recall"], got["precision"], got["f"]] == pytest.approx(row[2:], abs=tol)
    per_thr = np.loadtxt(BENCH / "test_2" / "eval_bdry_thr.txt")  # T, R, P, F
    np.testing.assert_allclose(res.thresholds, per_thr[:, 0], atol=1e-5)
    np.testing.assert_allclose(np.c_[res.recall, res.precision, res.f], per_thr[:, 1:], atol=tol)

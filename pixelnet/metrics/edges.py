"""The BSDS500 boundary benchmark: ODS / OIS / AP from soft boundary maps.

A port of the official MATLAB code (`evaluation_bdry_image.m`, `correspondPixels`,
`collect_eval_bdry.m`). Per image and threshold the soft map is binarised (pred >= t),
thinned, and matched one-to-one to each annotator's boundary pixels within
`max_dist * diagonal` pixels.

The official matcher (`match.cc`: a CSA assignment over a graph with randomly wired
outlier nodes) looks for a maximum-cardinality matching of least total distance, with
distances scaled by 100 and rounded to integers. `_min_cost_max_matching` solves that
problem exactly (successive shortest paths in Numba; `_correspond_reference` is its
SciPy LAPJVsp twin for tests). Two things keep us from being bit-identical to MATLAB:
ties between equally cheap matchings are broken differently, which moves `cntP` (pixels
matched to *any* annotator) by a few pixels; and the official CSA on its random outlier
graph sometimes falls a few matches short of the maximum, differently on every run
(the fixture's test_1 and test_2 score the same maps and differ by up to 0.001).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from skimage.morphology import thin as _thin

# Official match.cc scales distances by 100 and rounds to integers before solving.
_COST_SCALE = 100.0
# collect_eval_bdry.m interpolates between neighbouring thresholds with linspace(0, 1).
_INTERP_STEPS = 100


@dataclass(frozen=True)
class BoundaryConfig:
    """Benchmark knobs; the defaults are the official BSDS500 ones."""

    thresholds: int = 99
    max_dist: float = 0.0075  # fraction of the image diagonal
    thin: bool = True  # bwmorph(bmap, 'thin', inf) on each binarised map

    def __post_init__(self) -> None:
        if self.thresholds < 1:
            raise ValueError(f"thresholds must be >= 1, got {self.thresholds}")
        if not self.max_dist >= 0:
            raise ValueError(f"max_dist must be >= 0, got {self.max_dist}")


def thresholds_for(n: int) -> np.ndarray:
    """The official grid: n thresholds strictly inside (0, 1)."""
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)  # (T,)


def _offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window offsets (dy, dx) within `radius` and their integer match costs."""
    r = math.ceil(radius)
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dy * dy + dx * dx <= radius * radius
    dy, dx = dy[keep], dx[keep]  # (K,)
    cost = np.rint(np.hypot(dy, dx) * _COST_SCALE).astype(np.int64)
    return dy, dx, cost


def _id_map(bmap: np.ndarray, pad: int) -> np.ndarray:
    """(H + 2 pad, W + 2 pad) int map: index of each on pixel (row-major), -1 elsewhere."""
    ids = np.full((bmap.shape[0] + 2 * pad, bmap.shape[1] + 2 * pad), -1, dtype=np.int64)
    inner = ids[pad : pad + bmap.shape[0], pad : pad + bmap.shape[1]]
    inner[bmap] = np.arange(int(bmap.sum()))
    return ids


def _candidate_pairs(
    py: np.ndarray,
    px: np.ndarray,
    gt_ids: np.ndarray,
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray],
    pad: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (pred index, gt index, integer cost) within the radius, sorted by pred index."""
    dy, dx, cost = offsets
    width = gt_ids.shape[1]
    flat = (py + pad) * width + (px + pad)  # (N,) positions in the padded map
    cand = gt_ids.ravel()[flat[:, None] + (dy * width + dx)[None, :]]  # (N, K)
    rows, k = np.nonzero(cand >= 0)  # row-major: rows ascending
    return rows, cand[rows, k], cost[k]


@njit(cache=True)
def _heap_push(hd: np.ndarray, hc: np.ndarray, size: int, d: int, c: int) -> int:
    i = size
    hd[i] = d
    hc[i] = c
    while i > 0:
        parent = (i - 1) // 2
        if hd[parent] <= hd[i]:
            break
        hd[parent], hd[i] = hd[i], hd[parent]
        hc[parent], hc[i] = hc[i], hc[parent]
        i = parent
    return size + 1


@njit(cache=True)
def _heap_pop(hd: np.ndarray, hc: np.ndarray, size: int) -> tuple[int, int, int]:
    d, c = hd[0], hc[0]
    size -= 1
    hd[0], hc[0] = hd[size], hc[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and hd[left + 1] < hd[left]:
            child = left + 1
        if hd[i] <= hd[child]:
            break
        hd[child], hd[i] = hd[i], hd[child]
        hc[child], hc[i] = hc[i], hc[child]
        i = child
    return d, c, size


@njit(cache=True)
def _min_cost_max_matching(
    indptr: np.ndarray, indices: np.ndarray, cost: np.ndarray, n_cols: int
) -> np.ndarray:
    """Row -> column (or -1) of a maximum-cardinality matching of least total cost.

    Successive shortest paths (Dijkstra on reduced costs, one row at a time). Each row
    also owns a private dummy column costing more than any possible saving, so every
    row is assigned and the real part has maximum cardinality. Dijkstra only explores
    the row's connected component, so a whole image is one call.
    """
    n_rows = indptr.size - 1
    n_all = n_cols + n_rows  # real columns, then one dummy per row
    big = (n_rows + 1) * (cost.max() + 1) if cost.size else 1
    inf = np.iinfo(np.int64).max // 4
    u = np.zeros(n_rows, np.int64)  # row potentials
    v = np.zeros(n_all, np.int64)  # column potentials
    match_row = np.full(n_rows, -1, np.int64)
    match_col = np.full(n_all, -1, np.int64)
    dist = np.full(n_all, inf, np.int64)
    pred = np.full(n_all, -1, np.int64)
    done = np.zeros(n_all, np.bool_)
    touched = np.empty(n_all, np.int64)
    hd = np.empty(indices.size + 2 * n_rows + 1, np.int64)  # lazy-deletion heap
    hc = np.empty(indices.size + 2 * n_rows + 1, np.int64)
    # Greedy start: a row whose cheapest column is still free takes it, with u = that
    # cost. Duals stay feasible, matched edges tight and free columns at v = 0, which is
    # all the shortest-path phase below needs.
    for s in range(n_rows):
        best = -1
        for e in range(indptr[s], indptr[s + 1]):
            if best < 0 or cost[e] < cost[best]:
                best = e
        if best >= 0 and match_col[indices[best]] == -1:
            u[s] = cost[best]
            match_row[s] = indices[best]
            match_col[indices[best]] = s
    for s in range(n_rows):
        if indptr[s] == indptr[s + 1] or match_row[s] >= 0:
            continue  # nothing within reach, or already matched
        n_touched = 0
        size = 0
        i = s
        di = 0
        term = -1
        big_d = 0
        while True:
            for e in range(indptr[i], indptr[i + 1] + 1):
                if e == indptr[i + 1]:
                    j = n_cols + i
                    c = big
                else:
                    j = indices[e]
                    c = cost[e]
                if done[j]:
                    continue
                nd = di + c - u[i] - v[j]
                if nd < dist[j]:
                    if dist[j] == inf:
                        touched[n_touched] = j
                        n_touched += 1
                    dist[j] = nd
                    pred[j] = i
                    size = _heap_push(hd, hc, size, nd, j)
            while True:
                d, j, size = _heap_pop(hd, hc, size)
                if not done[j] and d == dist[j]:
                    break
            done[j] = True
            if match_col[j] == -1:
                term = j
                big_d = d
                break
            i = match_col[j]
            di = d
        # Reweight so reduced costs stay >= 0 and are 0 on the new matching.
        u[s] += big_d
        for t in range(n_touched):
            k = touched[t]
            if done[k] and k != term:
                delta = big_d - dist[k]
                v[k] -= delta
                u[match_col[k]] += delta
        j = term
        while True:  # augment along the shortest path
            i = pred[j]
            nxt = match_row[i]
            match_row[i] = j
            match_col[j] = i
            if i == s:
                break
            j = nxt
        for t in range(n_touched):
            k = touched[t]
            dist[k] = inf
            done[k] = False
            pred[k] = -1
    for i in range(n_rows):
        if match_row[i] >= n_cols:
            match_row[i] = -1
    return match_row


def _correspond(
    py: np.ndarray,
    px: np.ndarray,
    gt_ids: np.ndarray,
    n_gt: int,
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray],
    pad: int,
) -> tuple[np.ndarray, int]:
    """Match predicted pixels (py, px) to the gt pixels of `gt_ids` one-to-one.

    Returns which predicted pixels are matched (bool (N,)) and how many gt pixels are.
    """
    if py.size == 0 or n_gt == 0:
        return np.zeros(py.size, dtype=bool), 0
    rows, cols, cost = _candidate_pairs(py, px, gt_ids, offsets, pad)
    n_pred = py.size
    if n_gt < n_pred:
        # A row left unmatched costs a search of its whole component, so let the
        # smaller side be the rows.
        order = np.argsort(cols, kind="stable")
        rows, cols, cost = cols[order], rows[order], cost[order]
        n_rows, n_cols = n_gt, n_pred
    else:
        n_rows, n_cols = n_pred, n_gt
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    match = _min_cost_max_matching(indptr, cols, cost, n_cols)  # (n_rows,)
    hit = match >= 0
    if n_gt < n_pred:
        matched = np.zeros(n_pred, dtype=bool)
        matched[match[hit]] = True
    else:
        matched = hit
    return matched, int(hit.sum())


def _correspond_reference(
    py: np.ndarray,
    px: np.ndarray,
    gt_ids: np.ndarray,
    n_gt: int,
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray],
    pad: int,
) -> tuple[np.ndarray, int, int]:
    """SciPy twin of `_correspond` (LAPJVsp, ~10x slower), for tests; also returns the cost."""
    matched = np.zeros(py.size, dtype=bool)
    if py.size == 0 or n_gt == 0:
        return matched, 0, 0
    rows, cols, cost = _candidate_pairs(py, px, gt_ids, offsets, pad)
    if rows.size == 0:
        return matched, 0, 0
    urows, rows = np.unique(rows, return_inverse=True)  # matchable pixels only
    ucols, cols = np.unique(cols, return_inverse=True)
    m1, m2 = urows.size, ucols.size
    w = cost + 1.0  # keep zero-distance pairs as explicit entries
    big = (m1 + 1) * (float(w.max()) + 1.0)  # a private dummy column per row
    graph = sp.csr_array(
        (
            np.concatenate([w, np.full(m1, big)]),
            (np.concatenate([rows, np.arange(m1)]), np.concatenate([cols, m2 + np.arange(m1)])),
        ),
        shape=(m1, m2 + m1),
    )
    r_ind, c_ind = min_weight_full_bipartite_matching(graph)
    real = c_ind < m2
    matched[urows[r_ind[real]]] = True
    total = int(round(graph[r_ind[real], c_ind[real]].sum())) - int(real.sum())
    return matched, int(real.sum()), total


def _check_image(pred: np.ndarray, annotations: list[np.ndarray]) -> None:
    if pred.ndim != 2:
        raise ValueError(f"pred must be 2-D (H, W), got shape {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("pred contains non-finite values")
    for a, gt in enumerate(annotations):
        if gt.shape != pred.shape:
            raise ValueError(f"annotation {a} has shape {gt.shape}, pred has {pred.shape}")


def image_counts(
    pred: np.ndarray, annotations: list[np.ndarray], config: BoundaryConfig
) -> np.ndarray:
    """Benchmark counts of one image: (T, 4) int64, columns cntR, sumR, cntP, sumP.

    pred is a soft boundary map (H, W) in [0, 1]; annotations are boolean (H, W) maps, one
    per annotator. As evaluation_bdry_image.m: cntR sums each annotator's matched pixels,
    cntP counts predicted pixels matched to at least one annotator.
    """
    pred = np.asarray(pred, dtype=np.float64)
    annotations = [np.asarray(a).astype(bool) for a in annotations]
    _check_image(pred, annotations)
    thresholds = thresholds_for(config.thresholds)
    radius = config.max_dist * math.hypot(*pred.shape)
    offsets = _offsets(radius)
    pad = math.ceil(radius)
    gts = [(_id_map(a, pad), int(a.sum())) for a in annotations]
    sum_r = sum(n for _, n in gts)

    counts = np.zeros((thresholds.size, 4), dtype=np.int64)
    prev: np.ndarray | None = None
    for t, thr in enumerate(thresholds):
        raw = pred >= thr  # (H, W)
        if prev is not None and np.array_equal(raw, prev):
            counts[t] = counts[t - 1]  # same binary map (quantised input): same counts
            continue
        prev = raw
        bmap = _thin(raw) if config.thin else raw
        py, px = np.nonzero(bmap)  # (N,) each
        acc_p = np.zeros(py.size, dtype=bool)  # predicted pixels matched by any annotator
        cnt_r = 0
        for gt_ids, n_gt in gts:
            matched, n_matched = _correspond(py, px, gt_ids, n_gt, offsets, pad)
            acc_p |= matched
            cnt_r += n_matched
        counts[t] = (cnt_r, sum_r, int(acc_p.sum()), py.size)
    return counts


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0, as the official `cnt ./ (sum + (sum==0))`."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return num / (den + (den == 0))


def fmeasure(r: np.ndarray | float, p: np.ndarray | float) -> np.ndarray:
    """2PR / (P + R), 0 where P + R = 0."""
    r = np.asarray(r, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    s = p + r
    return 2 * p * r / (s + (s == 0))


def _max_f(
    thresholds: np.ndarray, r: np.ndarray, p: np.ndarray
) -> tuple[float, float, float, float]:
    """Best (threshold, R, P, F) with linear interpolation between neighbouring thresholds.

    Mirrors `maxF` in collect_eval_bdry.m: the first strict maximum in scan order wins.
    """
    d = np.linspace(0.0, 1.0, _INTERP_STEPS)[None, :]  # (1, S)
    t_all = thresholds[1:, None] * d + thresholds[:-1, None] * (1 - d)  # (T-1, S)
    r_all = r[1:, None] * d + r[:-1, None] * (1 - d)
    p_all = p[1:, None] * d + p[:-1, None] * (1 - d)
    t_all = np.concatenate([thresholds[:1], t_all.ravel()])
    r_all = np.concatenate([r[:1], r_all.ravel()])
    p_all = np.concatenate([p[:1], p_all.ravel()])
    f_all = fmeasure(r_all, p_all)
    i = int(np.argmax(f_all))
    return float(t_all[i]), float(r_all[i]), float(p_all[i]), float(f_all[i])


def _average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """Official area: precision interpolated at recall 0:0.01:1 over unique recalls."""
    ru, idx = np.unique(r, return_index=True)  # first occurrence, as MATLAB >= R2013a
    if ru.size < 2:
        return 0.0
    ri = np.linspace(0.0, 1.0, 101)
    p_int = np.interp(ri, ru, p[idx], left=np.nan, right=np.nan)
    return float(np.nan_to_num(p_int, nan=0.0).sum() * 0.01)


def _r50(r: np.ndarray, p: np.ndarray) -> float:
    """Recall at 50% precision, as Dollar's edgesEvalDir (max recall if P never drops to .5)."""
    pu, idx = np.unique(p, return_index=True)
    if pu.size == 1:
        return float(r[idx[0]])
    return float(np.interp(max(pu[0], 0.5), pu, r[idx]))


@dataclass
class BoundaryResult:
    """Dataset-level PR curve and the benchmark's summary figures."""

    thresholds: np.ndarray  # (T,)
    recall: np.ndarray  # (T,) dataset-level per threshold
    precision: np.ndarray  # (T,)
    f: np.ndarray  # (T,)
    ods: dict  # {"threshold", "recall", "precision", "f"}
    ois: dict  # {"recall", "precision", "f"}
    ap: float
    per_image: list[dict]  # {"threshold", "recall", "precision", "f"} per image
    r50: float  # recall at 50% precision


def collect(counts: list[np.ndarray], thresholds: np.ndarray) -> BoundaryResult:
    """Combine per-image (T, 4) counts into ODS / OIS / AP as collect_eval_bdry.m does."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if not counts:
        raise ValueError("no images to collect")
    for i, c in enumerate(counts):
        if c.shape != (thresholds.size, 4):
            raise ValueError(
                f"counts of image {i} have shape {c.shape}, expected ({thresholds.size}, 4)"
            )
    per_image = []
    best_rows = np.zeros(4, dtype=np.int64)  # counts at each image's best threshold, summed
    for c in counts:
        r = _ratio(c[:, 0], c[:, 1])
        p = _ratio(c[:, 2], c[:, 3])
        t_best, r_best, p_best, f_best = _max_f(thresholds, r, p)
        per_image.append({"threshold": t_best, "recall": r_best, "precision": p_best, "f": f_best})
        f = fmeasure(r, p)
        # OIS uses the uninterpolated counts at the last threshold reaching the max F.
        best_rows += c[np.flatnonzero(f == f.max())[-1]]
    total = np.sum(counts, axis=0)  # (T, 4)
    recall = _ratio(total[:, 0], total[:, 1])
    precision = _ratio(total[:, 2], total[:, 3])
    t_best, r_best, p_best, f_best = _max_f(thresholds, recall, precision)
    r_ois = float(_ratio(best_rows[0], best_rows[1]))
    p_ois = float(_ratio(best_rows[2], best_rows[3]))
    return BoundaryResult(
        thresholds=thresholds,
        recall=recall,
        precision=precision,
        f=fmeasure(recall, precision),
        ods={"threshold": t_best, "recall": r_best, "precision": p_best, "f": f_best},
        ois={"recall": r_ois, "precision": p_ois, "f": float(fmeasure(r_ois, p_ois))},
        ap=_average_precision(recall, precision),
        per_image=per_image,
        r50=_r50(recall, precision),
    )


def evaluate_boundaries(
    preds: Iterable[np.ndarray],
    annotations: Iterable[list[np.ndarray]],
    config: BoundaryConfig,
) -> BoundaryResult:
    """Run the benchmark over a split: per-image counts, then `collect`."""
    counts = [image_counts(p, a, config) for p, a in zip(preds, annotations, strict=True)]
    return collect(counts, thresholds_for(config.thresholds))


def plot_pr(results: dict[str, BoundaryResult], path: Path) -> None:
    """PR curves over iso-F contours, one per method, labelled with their ODS F."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    grid = np.linspace(0.01, 1, 200)
    for f_iso in np.arange(0.1, 1.0, 0.1):
        p_iso = f_iso * grid / (2 * grid - f_iso)  # precision on the iso-F curve at recall grid
        ok = (p_iso > 0) & (p_iso <= 1)
        ax.plot(grid[ok], p_iso[ok], color="0.85", linewidth=0.8, zorder=0)
    for name, res in results.items():
        label = f"{name} [F={res.ods['f']:.3f}]".replace("F=0.", "F=.")
        keep = res.recall > 0  # the official plots drop the empty-prediction end
        (line,) = ax.plot(res.recall[keep], res.precision[keep], linewidth=2, label=label)
        ax.plot(res.ods["recall"], res.ods["precision"], "o", color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_aspect("equal")
    ax.grid(True, linewidth=0.3)
    if results:
        ax.legend(loc="lower left")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=100, bbox_inches="tight")
    os.replace(tmp, path)

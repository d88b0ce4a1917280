"""Pixel correspondence for the boundary benchmark: `correspondPixels` of the BSDS code.

Predicted boundary pixels are matched one-to-one to an annotator's boundary pixels that lie
within a radius. The official matcher (`match.cc`: a CSA assignment over a graph with randomly
wired outlier nodes) looks for a maximum-cardinality matching of least total distance, with
distances scaled by 100 and rounded to integers. `_min_cost_max_matching` solves that problem
exactly (successive shortest paths in Numba; `_correspond_reference` is its SciPy LAPJVsp twin
for tests). Two things keep us from being bit-identical to MATLAB: ties between equally cheap
matchings are broken differently, which moves `cntP` (pixels matched to *any* annotator) by a
few pixels; and the official CSA on its random outlier graph sometimes falls a few matches
short of the maximum, differently on every run (the fixture's test_1 and test_2 score the same
maps and differ by up to 0.001).

Speed: each annotator's matching window is gathered once per image (`neighbour_lists`), and a
binary map is matched against every annotator in one Numba call (`threshold_counts`).
`_candidate_pairs` and `_correspond` are the plain NumPy path those kernels are tested against.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

# Official match.cc scales distances by 100 and rounds to integers before solving.
_COST_SCALE = 100.0


def offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


@njit(cache=True)
def neighbour_lists(
    gt: np.ndarray, dy: np.ndarray, dx: np.ndarray, cost: np.ndarray, ptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the gt pixels within reach in window order, as CSR over pixels.

    Fills `ptr` ((H W + 1,), row-major pixels) and returns the gt ids (row-major rank among
    gt pixels) and integer costs: the same pairs, in the same order, as `_candidate_pairs`.
    """
    h, w = gt.shape
    n_gt = 0
    gy = np.empty(gt.size, np.int64)
    gx = np.empty(gt.size, np.int64)
    for y in range(h):
        for x in range(w):
            if gt[y, x]:
                gy[n_gt] = y
                gx[n_gt] = x
                n_gt += 1
    ptr[:] = 0
    for k in range(dy.size):  # pixel p reaches gt g when g = p + (dy, dx)
        for g in range(n_gt):
            y, x = gy[g] - dy[k], gx[g] - dx[k]
            if 0 <= y < h and 0 <= x < w:
                ptr[y * w + x + 1] += 1
    for p in range(h * w):
        ptr[p + 1] += ptr[p]
    fill = ptr[:-1].copy()
    ids = np.empty(ptr[-1], np.int64)
    costs = np.empty(ptr[-1], np.int64)
    for k in range(dy.size):  # k outer: each pixel's list comes out in window order
        for g in range(n_gt):
            y, x = gy[g] - dy[k], gx[g] - dx[k]
            if 0 <= y < h and 0 <= x < w:
                p = y * w + x
                ids[fill[p]] = g
                costs[fill[p]] = cost[k]
                fill[p] += 1
    return ids, costs


@njit(cache=True)
def threshold_counts(
    bmap: np.ndarray,
    ptr: np.ndarray,
    ids: np.ndarray,
    costs: np.ndarray,
    n_gts: np.ndarray,
) -> tuple[int, int, int]:
    """(cntR, cntP, sumP) of one binary map against every annotator.

    `ptr` is (A, H W + 1) into the concatenated `ids` / `costs` of `neighbour_lists`. Builds
    exactly the problems `_correspond` builds (same rows, columns and edge order, the smaller
    side as rows), so the matcher breaks ties the same way.
    """
    h, w = bmap.shape
    pix = np.empty(bmap.size, np.int64)
    n = 0
    for y in range(h):
        for x in range(w):
            if bmap[y, x]:
                pix[n] = y * w + x
                n += 1
    hit_any = np.zeros(n, np.bool_)
    cnt_r = 0
    for a in range(n_gts.size):
        n_gt = n_gts[a]
        if n == 0 or n_gt == 0:
            continue
        pa = ptr[a]
        n_edges = 0
        for i in range(n):
            n_edges += pa[pix[i] + 1] - pa[pix[i]]
        cols = np.empty(n_edges, np.int64)
        cost = np.empty(n_edges, np.int64)
        if n_gt < n:  # gt pixels as rows, their predicted pixels in ascending order
            indptr = np.zeros(n_gt + 1, np.int64)
            for i in range(n):
                for e in range(pa[pix[i]], pa[pix[i] + 1]):
                    indptr[ids[e] + 1] += 1
            for g in range(n_gt):
                indptr[g + 1] += indptr[g]
            fill = indptr[:-1].copy()
            for i in range(n):
                for e in range(pa[pix[i]], pa[pix[i] + 1]):
                    g = ids[e]
                    cols[fill[g]] = i
                    cost[fill[g]] = costs[e]
                    fill[g] += 1
            match = _min_cost_max_matching(indptr, cols, cost, n)  # (n_gt,)
            for g in range(n_gt):
                if match[g] >= 0:
                    hit_any[match[g]] = True
                    cnt_r += 1
        else:  # predicted pixels as rows
            indptr = np.zeros(n + 1, np.int64)
            m = 0
            for i in range(n):
                for e in range(pa[pix[i]], pa[pix[i] + 1]):
                    cols[m] = ids[e]
                    cost[m] = costs[e]
                    m += 1
                indptr[i + 1] = m
            match = _min_cost_max_matching(indptr, cols, cost, n_gt)  # (n,)
            for i in range(n):
                if match[i] >= 0:
                    hit_any[i] = True
                    cnt_r += 1
    return cnt_r, int(hit_any.sum()), n

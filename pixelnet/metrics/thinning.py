"""Morphological thinning of binary maps: MATLAB's bwmorph(bmap, 'thin', inf).

`thin` equals skimage.morphology.thin bit for bit (the Guo-Hall two-sub-iteration thinning,
repeated until nothing changes, with a zero frame around the map). It is the Numba kernel
`_thin_kernel`, which visits only the pixels that can still change, so the boundary benchmark
can thin each of its 99 binarised maps in a few milliseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _thin_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two Guo-Hall sub-iterations, as skimage's `thin` (MATLAB's
    bwmorph 'thin') builds them, indexed by the 8-neighbour code E=1, NE=2, N=4, NW=8, W=16,
    SW=32, S=64, SE=128 (bit i is neighbour x_{i+1}, counter-clockwise from east)."""
    b = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)  # (256, 8)
    g1 = sum((~b[:, i] & (b[:, i + 1] | b[:, (i + 2) % 8])).astype(int) for i in (0, 2, 4, 6)) == 1
    n1 = sum((b[:, k] | b[:, k - 1]).astype(int) for k in (1, 3, 5, 7))
    n2 = sum((b[:, k] | b[:, (k + 1) % 8]).astype(int) for k in (1, 3, 5, 7))
    g2 = (np.minimum(n1, n2) >= 2) & (np.minimum(n1, n2) <= 3)
    g3 = ~((b[:, 1] | b[:, 2] | ~b[:, 7]) & b[:, 0])
    g3p = ~((b[:, 5] | b[:, 6] | ~b[:, 3]) & b[:, 4])
    return g1 & g2 & g3, g1 & g2 & g3p


_LUT1, _LUT2 = _thin_luts()  # (256,) bool each
_FOUR = 0b01010101  # E, N, W, S: G1 needs one of them off, so `_thin_kernel` starts from
# the pixels with an off 4-neighbour (tests check that no table deletes the others).


@njit(cache=True)
def _thin_kernel(raw: np.ndarray, lut1: np.ndarray, lut2: np.ndarray) -> np.ndarray:
    """skimage.morphology.thin(raw), bit for bit, touching only pixels that can change.

    Each sub-iteration decides every deletion from the map as it was before it (parallel
    thinning), as skimage does with a whole-image correlate. A pixel's decision depends only
    on its 8 neighbours, so once it has survived both tables since its neighbourhood last
    changed it cannot go until a neighbour does: `pending` counts the tables still owed.
    """
    h, w = raw.shape
    w2 = w + 2
    sk = np.zeros((h + 2) * w2, np.uint8)  # zero frame: the constant mode of skimage
    n_on = 0
    for y in range(h):
        for x in range(w):
            if raw[y, x]:
                sk[(y + 1) * w2 + x + 1] = 1
                n_on += 1
    nb = np.array([1, 1 - w2, -w2, -w2 - 1, -1, w2 - 1, w2, w2 + 1])  # code bit order
    pending = np.zeros(sk.size, np.uint8)
    cur = np.empty(n_on, np.int64)
    nxt = np.empty(n_on, np.int64)
    dels = np.empty(n_on, np.int64)
    n_cur = 0
    for y in range(1, h + 1):
        for x in range(1, w + 1):
            p = y * w2 + x
            if sk[p] and not (sk[p + 1] and sk[p - 1] and sk[p + w2] and sk[p - w2]):
                pending[p] = 2
                cur[n_cur] = p
                n_cur += 1
    sub = 0
    while n_cur > 0:
        lut = lut1 if sub % 2 == 0 else lut2
        n_del = 0
        for t in range(n_cur):
            p = cur[t]
            code = 0
            for b in range(8):
                code |= sk[p + nb[b]] << b
            if lut[code]:
                dels[n_del] = p
                n_del += 1
        for t in range(n_del):
            sk[dels[t]] = 0
        n_nxt = 0
        for t in range(n_cur):
            p = cur[t]
            if sk[p] == 0:
                pending[p] = 0
                continue
            pending[p] -= 1
            if pending[p] > 0:
                nxt[n_nxt] = p
                n_nxt += 1
        for t in range(n_del):
            for b in range(8):
                q = dels[t] + nb[b]
                if sk[q]:
                    if pending[q] == 0:
                        nxt[n_nxt] = q
                        n_nxt += 1
                    pending[q] = 2
        cur, nxt = nxt, cur
        n_cur = n_nxt
        sub += 1
    out = np.empty((h, w), np.bool_)
    for y in range(h):
        for x in range(w):
            out[y, x] = sk[(y + 1) * w2 + x + 1] != 0
    return out


def thin(raw: np.ndarray) -> np.ndarray:
    """bwmorph(raw, 'thin', inf): equal to skimage.morphology.thin(raw), in Numba.

    raw is a 2-D map (any dtype, non-zero is on); returns a boolean map of the same shape.
    """
    return _thin_kernel(np.ascontiguousarray(raw, dtype=bool), _LUT1, _LUT2)

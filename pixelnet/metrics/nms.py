"""Edge non-maximum suppression as the CNN edge benchmarks run it (Dollár's `edgesNmsMex`).

Benchmarks of CNN edge detectors (HED, RCF, PixelNet, ...) thin the soft map before the BSDS
evaluation with the `nms_process` recipe of HED and RCF:

    E = convTri(single(E), 1);  [Ox, Oy] = gradient2(convTri(E, 4));
    [Oxx, ~] = gradient2(Ox);  [Oxy, Oyy] = gradient2(Oy);
    O = mod(atan(Oyy .* sign(-Oxy) ./ (Oxx + 1e-5)), pi);  E = edgesNmsMex(E, O, 1, 5, 1.01, 4);

i.e. the map is first smoothed with a radius-1 triangle filter; the orientation comes from the
second derivatives of that map smoothed again (radius 4); then each pixel of the *smoothed* map
is kept only if it is at least as strong (within a 1% margin) as its bilinearly interpolated
neighbours along the normal, and strengths fade linearly to zero over the last `s` pixels
before the image border. pyEdgeEval's `fast_nms` (its `apply_nms=True`) runs the same steps,
so numbers stay comparable with published ones. We work in double precision as pyEdgeEval
does (nms_process.m runs in single); `edge_nms(..., smooth=0)` skips the pre-smoothing.

One deliberate departure from the toolbox: its orientation `atan(Oyy * sign(-Oxy) / Oxx)`
collapses to 0 wherever Oxy is exactly 0, so a perfectly horizontal ridge would be compared
along x and never thinned. We take sign(0) as +1 there; pixels with Oxy != 0 are unchanged.

Differences from pyEdgeEval's `fast_nms` (its C++ `nms` is edgesNmsMex line by line, and our
kernel gives the same map for the same orientation): besides sign(0), pyEdgeEval replaces
Oxx == 0 by 1e-5 where MATLAB (and we) add 1e-5 to every Oxx, which changes the orientation of
pixels with |Oxx| of the order of 1e-5 (faint, flat parts of the map); its Cython wrapper
passes the margin as a C float (1.01f); and its triangle filter is a 2-D `convolve2d`, which
rounds differently from our separable one, which matters only where the derivatives are ~0.
On the five BSDS500 maps of the benchmark fixture, 2-4.5% of the pixels that survive in
either thinned map differ, ~95% of those weaker than 0.05 (seen only by the four lowest
thresholds), and each image's best F moves by at most 0.0005 (tests/test_nms.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.ndimage import convolve1d

# nms_process.m (HED, RCF) and pyEdgeEval: the map smoothed with convTri(E, 1), orientation
# from convTri(E, 4) of that, nms radius 1, border ramp of 5 px, and a 1% margin so that
# plateaus are not wiped out.
SMOOTH_RADIUS = 1
ORIENT_RADIUS = 4
NMS_RADIUS = 1
BORDER = 5
MARGIN = 1.01


def conv_tri(image: np.ndarray, r: float) -> np.ndarray:
    """Piotr's convTri: separable triangle filter, symmetric ('reflect') padding.

    For r >= 1 the 1-D filter is [1..r, r+1, r..1] / (r+1)^2; for 0 < r < 1 it is the
    [1 p 1] / (2+p) filter of the same standard deviation (the toolbox's fine-grained case).
    """
    image = np.asarray(image, dtype=np.float64)
    if r <= 0:
        return image.copy()
    if r < 1:
        p = 12.0 / r / (r + 2.0) - 2.0
        f = np.array([1.0, p, 1.0]) / (2.0 + p)
    else:
        r = int(r)
        f = np.r_[np.arange(1, r + 2), np.arange(r, 0, -1)] / float((r + 1) ** 2)
    # scipy's 'reflect' (d c b a | a b c d) is MATLAB's padarray 'symmetric'.
    out = convolve1d(image, f, axis=0, mode="reflect")
    return convolve1d(out, f, axis=1, mode="reflect")


def _gradient(a: np.ndarray, axis: int) -> np.ndarray:
    """MATLAB's gradient along one axis (central inside, one-sided at the ends); 0 if size 1."""
    if a.shape[axis] < 2:
        return np.zeros_like(a)
    return np.gradient(a, axis=axis)


def edge_orientation(edges: np.ndarray, radius: float = ORIENT_RADIUS) -> np.ndarray:
    """Normal direction of the edges in [0, pi), 0 = across a vertical edge (along x).

    The toolbox's cheap estimate from second derivatives of the smoothed map (see the module
    docstring for the sign(0) case): O = mod(atan(Oyy * sign(-Oxy) / (Oxx + 1e-5)), pi).
    """
    smooth = conv_tri(edges, radius)  # (H, W)
    ox, oy = _gradient(smooth, 1), _gradient(smooth, 0)
    oxx = _gradient(ox, 1)
    oxy, oyy = _gradient(oy, 1), _gradient(oy, 0)
    sign = np.where(oxy > 0, -1.0, 1.0)  # sign(-Oxy), with sign(0) taken as +1
    return np.mod(np.arctan(oyy * sign / (oxx + 1e-5)), np.pi)


@njit(cache=True)
def _interp(e: np.ndarray, x: float, y: float) -> float:
    """Bilinear e[y, x], clamped inside the image exactly as the toolbox's interp()."""
    h, w = e.shape
    x = min(max(x, 0.0), w - 1.001)
    y = min(max(y, 0.0), h - 1.001)
    x0, y0 = int(x), int(y)
    dx, dy = x - x0, y - y0
    return (
        e[y0, x0] * (1 - dx) * (1 - dy)
        + e[y0, x0 + 1] * dx * (1 - dy)
        + e[y0 + 1, x0] * (1 - dx) * dy
        + e[y0 + 1, x0 + 1] * dx * dy
    )


@njit(cache=True)
def _suppress(e: np.ndarray, o: np.ndarray, r: int, m: float) -> np.ndarray:
    """Zero every pixel that, times m, is weaker than a neighbour at +-1..r along o."""
    h, w = e.shape
    out = e.copy()
    for y in range(h):
        for x in range(w):
            v = e[y, x]
            if v == 0:
                continue
            v *= m
            c, s = math.cos(o[y, x]), math.sin(o[y, x])
            for d in range(-r, r + 1):
                if d != 0 and v < _interp(e, x + d * c, y + d * s):
                    out[y, x] = 0.0
                    break
    return out


def _border_ramp(n: int, s: int) -> np.ndarray:
    """(n,) weights: k / s for the k-th pixel from either end while k < s, 1 inside."""
    k = np.arange(n)
    return np.minimum(np.minimum(k, n - 1 - k), s) / float(s)


def _fade_border(e: np.ndarray, s: int) -> np.ndarray:
    """Linear ramp to 0 over the last s pixels of every side (s capped at half the size)."""
    h, w = e.shape
    s = min(s, w // 2, h // 2)
    if s <= 0:
        return e
    return e * _border_ramp(h, s)[:, None] * _border_ramp(w, s)[None, :]  # (H, W)


def edge_nms(
    edges: np.ndarray,
    orientation: np.ndarray | None = None,
    r: int = NMS_RADIUS,
    s: int = BORDER,
    m: float = MARGIN,
    smooth: float = SMOOTH_RADIUS,
) -> np.ndarray:
    """Thin a soft edge map (H, W) as nms_process.m does: E = convTri(E, smooth), then
    edgesNmsMex(E, O, r, s, m) with O from `edge_orientation(E)`.

    The result is the thinned *smoothed* map, so a surviving pixel may differ from its input
    value. A given `orientation` must be that of the smoothed map; smooth=0 skips the
    smoothing (then, with O given, this is edgesNmsMex itself).
    """
    e = np.asarray(edges)
    if e.ndim != 2:
        raise ValueError(f"edge map must be 2-D (H, W), got shape {e.shape}")
    if min(e.shape) < 2:
        raise ValueError(f"edge map must be at least 2 x 2 for interpolation, got {e.shape}")
    e = np.ascontiguousarray(conv_tri(e, smooth))  # (H, W) float64
    o = edge_orientation(e) if orientation is None else np.asarray(orientation, dtype=np.float64)
    if o.shape != e.shape:
        raise ValueError(f"orientation has shape {o.shape}, edge map has {e.shape}")
    return _fade_border(_suppress(e, np.ascontiguousarray(o), int(r), float(m)), int(s))


def _suppress_reference(e: np.ndarray, o: np.ndarray, r: int, m: float) -> np.ndarray:
    """Vectorised NumPy twin of `_suppress`, for tests."""
    h, w = e.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)  # (H, W) each
    keep = np.ones(e.shape, dtype=bool)
    for d in [d for d in range(-r, r + 1) if d]:
        x = np.clip(xx + d * np.cos(o), 0.0, w - 1.001)
        y = np.clip(yy + d * np.sin(o), 0.0, h - 1.001)
        x0, y0 = x.astype(np.int64), y.astype(np.int64)
        dx, dy = x - x0, y - y0
        near = (
            e[y0, x0] * (1 - dx) * (1 - dy)
            + e[y0, x0 + 1] * dx * (1 - dy)
            + e[y0 + 1, x0] * (1 - dx) * dy
            + e[y0 + 1, x0 + 1] * dx * dy
        )
        keep &= ~(e * m < near)
    return np.where(keep, e, 0.0)

"""Float64 arithmetic that gives the same bits on every CPU.

numpy's SIMD dispatch (exp, log, power, arccos), glibc's FMA variants (sin, cos, exp, log) and the
BLAS kernel behind `@` each round differently from one CPU to the next. The embedded dataset must be
the same bytes everywhere, so its renderer (`pixelnet.data.synthetic`) uses only operations that
IEEE 754 rounds exactly (+, −, ×, ÷, sqrt, floor/rint, comparisons) and these helpers built on them:
sine, cosine and log by fdlibm-style reduction and polynomials (within about 1 ulp), Box–Muller
normal draws from the generator's uniform doubles, dot products and small matrix products summed
left to right, and integer powers by repeated squaring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# pi/2 in two parts (fdlibm's pio2_1, pio2_1t): q * _PIO2_HI is exact for |q| < 2^20, so the
# reduction below loses nothing for the arguments used here (|x| < 10^5).
_PIO2_HI = 1.57079632673412561417e00
_PIO2_LO = 6.07710050650619224932e-11
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's ln2 split: e * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SQRT_HALF = 0.70710678118654752440


def horner(x: np.ndarray, coefs: Sequence[float]) -> np.ndarray:
    """c0 + x (c1 + x (c2 + ...)), one rounded multiply and one rounded add per step."""
    acc = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        acc = acc * x + c
    return acc


# Taylor coefficients; on |r| <= pi/4 the first omitted terms are below 1e-16.
_SIN_C = [(1 - 2 * (k % 2)) / math.factorial(2 * k + 1) for k in range(8)]  # r, r^3, ..., r^15
_COS_C = [(1 - 2 * (k % 2)) / math.factorial(2 * k) for k in range(9)]  # 1, r^2, ..., r^16


def sin_cos(x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) to about 1 ulp, identically on every CPU (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    q = np.rint(x * (2.0 / np.pi))  # quadrant; r = x - q pi/2 lies in [-pi/4, pi/4]
    r = (x - q * _PIO2_HI) - q * _PIO2_LO
    z = r * r
    sin_r = r * horner(z, _SIN_C)
    cos_r = horner(z, _COS_C)
    n = q - 4.0 * np.floor(q * 0.25)  # q mod 4, exactly: 0, 1, 2 or 3
    sin = np.where(n == 0, sin_r, np.where(n == 1, cos_r, np.where(n == 2, -sin_r, -cos_r)))
    cos = np.where(n == 0, cos_r, np.where(n == 1, -sin_r, np.where(n == 2, -cos_r, sin_r)))
    return sin, cos


def sin(x: np.ndarray | float) -> np.ndarray:
    return sin_cos(x)[0]


def log(x: np.ndarray) -> np.ndarray:
    """Natural log of x > 0: exact frexp, then 2 atanh(s) with s = (m - 1) / (m + 1), |s| < 0.172."""
    m, e = np.frexp(np.asarray(x, dtype=np.float64))  # x = m 2^e, m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)  # now m in [sqrt(1/2), sqrt(2)); both steps exact
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    log_m = 2.0 * s * horner(z, [1.0 / (2 * k + 1) for k in range(10)])  # to s^19; rest < 1e-16
    return e * _LN2_HI + (log_m + e * _LN2_LO)


def normal(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Standard normal draws by Box-Muller on the generator's uniform doubles, portable bits."""
    n = int(np.prod(shape))
    half = (n + 1) // 2
    u1 = 1.0 - rng.random(half)  # (0, 1]: log is finite
    u2 = rng.random(half)
    radius = np.sqrt(-2.0 * log(u1))
    sin, cos = sin_cos(2.0 * np.pi * u2)
    return np.concatenate([radius * cos, radius * sin])[:n].reshape(shape)


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of a[..., j] * b[..., j] over the last axis (length 3 or 4), left to right."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    acc = a[..., 0] * b[..., 0]
    for j in range(1, a.shape[-1]):
        acc = acc + a[..., j] * b[..., j]
    return acc


def apply(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """p @ m for p (N, 3) and m (3, K), summed left to right instead of through BLAS."""
    if len(p) > 1 and p.strides[0] == 0:  # one ray direction broadcast to every row: work on one row
        return np.broadcast_to(apply(p[:1], m), (len(p), m.shape[1]))
    pt = np.ascontiguousarray(p.T)  # (3, N): contiguous rows make the products below fast
    out = np.empty((m.shape[1], len(p)))
    for k in range(m.shape[1]):
        out[k] = pt[0] * m[0, k] + pt[1] * m[1, k] + pt[2] * m[2, k]
    return out.T


def norm(a: np.ndarray) -> np.ndarray:
    """Euclidean length over the last axis."""
    return np.sqrt(dot(a, a))


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def ipow(x: np.ndarray, n: int) -> np.ndarray:
    """x ** n for an integer n >= 1 by repeated squaring: multiplies only, no libm pow."""
    result, base = None, x
    while True:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if not n:
            return result
        base = base * base

"""Edge NMS (Structured Edge toolbox recipe): known cases, and the Numba kernel against its NumPy twin."""

from __future__ import annotations

import numpy as np
import pytest

from pixelnet.metrics import nms as N
from pixelnet.metrics.nms import conv_tri, edge_nms, edge_orientation

SIZE = 64


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
    assert ys.size == 48 and np.all(out[band][ys, xs] == 1.0)  # the whole ridge, unattenuated


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
    np.testing.assert_allclose(out[20:40, 2], 2 / 5)
    assert np.count_nonzero(out[20:40]) == 20


def test_isolated_maximum_survives() -> None:
    yy, xx = _grid()
    blob = np.exp(-((yy - 30) ** 2 + (xx - 33) ** 2) / (2 * 2.0**2))
    out = edge_nms(blob)
    assert out[30, 33] == 1.0
    assert np.all(out <= blob) and out.max() == 1.0


def test_zeros_stay_zero_and_nothing_grows() -> None:
    rng = np.random.default_rng(1)
    edges = rng.random((30, 40)) * (rng.random((30, 40)) < 0.5)
    out = edge_nms(edges)
    assert np.all(out[edges == 0] == 0)
    assert np.all(out <= edges) and np.all(out >= 0)


@pytest.mark.parametrize(("r", "m"), [(1, 1.01), (2, 1.0), (3, 1.1)])
def test_numba_kernel_matches_numpy_twin(r: int, m: float) -> None:
    rng = np.random.default_rng(r)
    for shape in [(2, 2), (7, 31), (40, 33)]:
        edges = rng.random(shape) ** 2
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
    port = pytest.importorskip("pyEdgeEval._lib")
    toolbox = pytest.importorskip("pyEdgeEval.preprocess.nms.toolbox")
    rng = np.random.default_rng(3)
    yy, xx = _grid()
    for edges in (rng.random((50, 60)) ** 3, _ridge(np.hypot(yy - 30, xx - 28) - 15)):
        np.testing.assert_allclose(conv_tri(edges, 4), toolbox.conv_tri(edges, 4), atol=1e-12)
        o = edge_orientation(edges)
        for r, s, m in ((1, 5, 1.01), (2, 3, 1.0)):
            np.testing.assert_allclose(edge_nms(edges, o, r, s, m), port.nms(edges, o, r=r, s=s, m=m), atol=1e-12)

"""Surface-normal angular error, pooled over every valid pixel of a split (NYUDv2 protocol).

A ground-truth vector that is non-finite or all-zero marks a pixel without ground truth
and is ignored. A prediction that is non-finite or shorter than `_EPS` at a valid pixel
has no direction; it is scored as 90 degrees (orthogonal: no better than a random
guess on average) rather than dropped, so a model cannot gain by abstaining.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_EPS = 1e-8  # below this length a predicted vector has no direction
_WITHIN = (11.25, 22.5, 30.0)  # degrees, the usual thresholds


def _check(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"normals must be (H, W, 3), got {pred.shape}")


def angular_error(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angle in degrees between pred and gt at valid pixels: (errors (M,), valid mask (H, W))."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    _check(pred, gt)
    gt_norm = np.linalg.norm(gt, axis=-1)  # (H, W); NaN/inf propagate
    valid = np.isfinite(gt).all(axis=-1) & (gt_norm > 0)  # (H, W)
    p = pred[valid]  # (M, 3)
    g = gt[valid] / gt_norm[valid][:, None]  # (M, 3) unit
    p_norm = np.linalg.norm(p, axis=-1)  # (M,)
    ok = np.isfinite(p).all(axis=-1) & (p_norm > _EPS)
    errors = np.full(p.shape[0], 90.0)  # degenerate predictions: no direction
    cos = np.einsum("mc,mc->m", p[ok], g[ok]) / p_norm[ok]
    errors[ok] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return errors, valid


class NormalsMeter:
    """Accumulates angular errors over a split; keeps them all for the exact median."""

    def __init__(self) -> None:
        self._errors: list[np.ndarray] = []  # float32 chunks, one per image
        self._count = 0
        self._sum = 0.0  # float64 running sums: mean and RMSE need no second pass
        self._sum_sq = 0.0
        self._within = np.zeros(len(_WITHIN), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: pred and gt (H, W, 3); raises ValueError on shape mismatch."""
        errors, _ = angular_error(pred, gt)
        self._errors.append(errors.astype(np.float32))
        self._count += errors.size
        self._sum += float(errors.sum())
        self._sum_sq += float(np.square(errors).sum())
        self._within += [int((errors < t).sum()) for t in _WITHIN]

    def errors(self) -> np.ndarray:
        """Every valid pixel's angular error seen so far, (M,) degrees (for plots)."""
        return np.concatenate(self._errors) if self._errors else np.zeros(0, dtype=np.float32)

    def compute(self) -> dict[str, float]:
        """mean, median, rmse (degrees); within_* (percent); valid_pixels (int)."""
        if self._count == 0:
            raise ValueError("no valid ground-truth normals were seen")
        # overwrite_input: the concatenation is already a private copy.
        median = float(np.median(self.errors(), overwrite_input=True))
        pct = 100.0 * self._within / self._count
        return {
            "mean": self._sum / self._count,
            "median": median,
            "rmse": float(np.sqrt(self._sum_sq / self._count)),
            "within_11_25": float(pct[0]),
            "within_22_5": float(pct[1]),
            "within_30": float(pct[2]),
            "valid_pixels": int(self._count),
        }


def plot_error_cdf(errors: dict[str, np.ndarray], path: Path) -> None:
    """Share of pixels within each angle, one curve per method, with the 11.25/22.5/30° marks."""
    from matplotlib.figure import Figure

    from pixelnet.report import save_figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    grid = np.linspace(0, 90, 181)
    for name, err in errors.items():
        share = 100.0 * np.searchsorted(np.sort(err), grid, side="left") / max(err.size, 1)
        ax.plot(grid, share, linewidth=2, label=f"{name} [mean {err.mean():.1f}°]")
    for t in _WITHIN:
        ax.axvline(t, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlim(0, 90)
    ax.set_ylim(0, 100)
    ax.set_xlabel("angular error (degrees)")
    ax.set_ylabel("% of valid pixels within")
    ax.grid(True, linewidth=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path, dpi=100)

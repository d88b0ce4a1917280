"""Pictures people would rather look at than read: prediction grids and loss curves, and the one
place every figure (these, and the metrics' PR curves, error CDFs and confusion matrices) is saved.

Figures are made with `matplotlib.figure.Figure`, never pyplot: no global backend to set, no figure
registry to leak into, so importing this module changes nothing for a caller's own plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pixelnet.atomic import atomic_file


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Write `fig` to `path` in the format its suffix names (PNG without one) under a temporary
    name, renamed into place when complete, so a crash leaves no half-written picture."""
    path = Path(path)
    with atomic_file(path) as tmp:  # the temp name ends in .tmp: the format is passed, not inferred
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure from a caller: let pyplot forget it
        import matplotlib.pyplot as plt

        plt.close(fig)


def picture_grid(rows: list[list[np.ndarray]], columns: list[str], row_labels: list[str], path: Path, title: str = "") -> None:
    """One row per example, one column per view (input, ground truth, prediction, baseline…)."""
    if not rows:
        return
    n, m = len(rows), len(columns)
    fig = Figure(figsize=(1.9 * m, 1.9 * n))
    axes = fig.subplots(n, m, squeeze=False)
    for i, row in enumerate(rows):
        for j, picture in enumerate(row):
            ax = axes[i][j]
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def loss_curve(steps: np.ndarray, losses: np.ndarray, path: Path, title: str) -> None:
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)

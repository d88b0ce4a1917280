"""Semantic segmentation scores from one confusion matrix over a whole split.

mIoU averages over classes whose union (TP + FP + FN) is non-empty, so a class that is
predicted but absent from the ground truth counts as 0, as in FCN and mmsegmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ConfusionMeter:
    """Accumulates a (C, C) confusion matrix, rows = ground truth, cols = prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index {ignore_index} is a class id (num_classes {num_classes})"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)  # (C, C)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image of integer class ids, pred and gt (H, W); gt == ignore_index is skipped."""
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
        for name, arr in (("pred", pred), ("gt", gt)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
        keep = gt != self.ignore_index
        g = gt[keep].astype(np.int64)  # (M,)
        p = pred[keep].astype(np.int64)  # (M,)
        c = self.num_classes
        for name, arr in (("gt", g), ("pred", p)):
            bad = arr[(arr < 0) | (arr >= c)]
            if bad.size:
                raise ValueError(
                    f"{name} holds class id {int(bad[0])}, outside [0, {c}) "
                    f"and not the ignore index {self.ignore_index}"
                )
        self.matrix += np.bincount(g * c + p, minlength=c * c).reshape(c, c)

    def compute(self) -> dict[str, float]:
        """miou, pixel_accuracy, mean_class_accuracy (fractions 0..1) and iou_per_class.

        iou_per_class holds None for a class neither in the ground truth nor predicted.
        """
        m = self.matrix.astype(np.float64)
        total = m.sum()
        if total == 0:
            raise ValueError("no labelled pixels were seen")
        tp = np.diag(m)  # (C,)
        gt_count = m.sum(axis=1)
        union = gt_count + m.sum(axis=0) - tp
        seen = union > 0
        iou = np.divide(tp, union, out=np.zeros_like(tp), where=seen)
        present = gt_count > 0
        class_acc = np.divide(tp, gt_count, out=np.zeros_like(tp), where=present)
        return {
            "miou": float(iou[seen].mean()),
            "pixel_accuracy": float(tp.sum() / total),
            "mean_class_accuracy": float(class_acc[present].mean()),
            "iou_per_class": [float(v) if s else None for v, s in zip(iou, seen)],
        }


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path) -> None:
    """Row-normalised confusion heatmap (each ground-truth class sums to 1) as an image file."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    from pixelnet.report import save_figure

    matrix = np.asarray(matrix, dtype=np.float64)
    c = matrix.shape[0]
    if matrix.shape != (c, c) or len(class_names) != c:
        raise ValueError(f"matrix {matrix.shape} and {len(class_names)} class names disagree")
    rows = matrix.sum(axis=1, keepdims=True)  # (C, 1)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(4.0, 0.25 * c + 2)
    fontsize = 8 if c <= 30 else 5
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(c), class_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(c), class_names, fontsize=fontsize)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    save_figure(fig, path, dpi=100)

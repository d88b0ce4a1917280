"""Semantic segmentation: K-way softmax, cross-entropy with 255 ignored, one confusion matrix per split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pixelnet.data.shards import Record
from pixelnet.metrics.segmentation import ConfusionMeter

IGNORE = 255


class SegMeter:
    def __init__(self, num_classes: int) -> None:
        self.inner = ConfusionMeter(num_classes, ignore_index=IGNORE)

    def update(self, prediction: np.ndarray, record: Record) -> None:
        self.inner.update(prediction, record["label"])

    def compute(self) -> dict[str, float]:
        out = self.inner.compute()
        return {"miou": float(out["miou"]), "pixel_accuracy": float(out["pixel_accuracy"]),
                "mean_class_accuracy": float(out["mean_class_accuracy"])}


class MajorityBaseline:
    """The most frequent training class, predicted everywhere."""

    name = "majority_class"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.majority = 0

    def fit(self, records) -> None:
        hist = np.zeros(self.num_classes, dtype=np.int64)
        for record in records:
            lab = record["label"]
            hist += np.bincount(lab[lab < self.num_classes], minlength=self.num_classes)
        self.majority = int(hist.argmax())

    def predict(self, record: Record) -> np.ndarray:
        return np.full(record["label"].shape, self.majority, dtype=np.uint8)


def palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8: the PASCAL VOC colour map, so familiar classes get familiar colours."""
    out = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for k in range(num_classes):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[k] = (r, g, b)
    return out


@dataclass
class SegmentationTask:
    num_classes: int
    name: str = "segmentation"
    field: str = "label"

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def strata(self, record: Record) -> np.ndarray:
        lab = record["label"].astype(np.int32)
        return np.where((lab == IGNORE) | (lab >= self.num_classes), -1, lab)

    def gather(self, record: Record, indices: np.ndarray) -> np.ndarray:
        return record["label"].ravel()[indices].astype(np.int64)  # (N,)

    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        return targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(outputs, targets, ignore_index=IGNORE, reduction="none")  # (M,)
        w = weight * (targets != IGNORE)
        return (ce * w).sum() / w.sum().clamp(min=1)

    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(outputs, dim=1)

    def unflip(self, activated: torch.Tensor) -> torch.Tensor:
        return activated

    def finalize(self, activated: np.ndarray) -> np.ndarray:
        return activated.argmax(axis=-1).astype(np.uint8)  # (H, W) class ids

    def meter(self) -> SegMeter:
        return SegMeter(self.num_classes)

    def baseline(self) -> MajorityBaseline:
        return MajorityBaseline(self.num_classes)

    def visualize(self, array: np.ndarray) -> np.ndarray:
        colours = palette(256)
        colours[IGNORE] = (255, 255, 255)
        return colours[array.astype(np.uint8)]

"""Semantic segmentation: K-way softmax, cross-entropy with 255 ignored, one confusion matrix per split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from pixelnet.atomic import write_png
from pixelnet.metrics.segmentation import ConfusionMeter
from pixelnet.tasks.base import BaselineCheck, ReportContext, TaskContext, checked_channels

if TYPE_CHECKING:
    import torch

    from pixelnet.data.shards import Record
    from pixelnet.inputs import OutputConfig

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


def legend(labels: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """(h, w, 3) uint8 picture listing the classes present in `labels`: swatch, id, name, share of pixels."""
    from PIL import Image, ImageDraw, ImageFont

    ids, counts = np.unique(labels, return_counts=True)
    colours = palette(256)
    font = ImageFont.load_default(size=14)
    lines = [f"{k:3d}  {classes[k] if k < len(classes) else k}  ({100 * c / labels.size:.1f}%)" for k, c in zip(ids, counts)]
    row, pad, swatch = 22, 8, 16
    width = pad * 3 + swatch + max(int(font.getlength(t)) for t in lines)
    canvas = Image.new("RGB", (width, pad * 2 + row * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (k, text) in enumerate(zip(ids, lines)):
        top = pad + i * row
        draw.rectangle([pad, top + 2, pad + swatch, top + 2 + swatch], fill=tuple(int(v) for v in colours[k]), outline=(0, 0, 0))
        draw.text((pad * 2 + swatch, top + 2), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


@dataclass(frozen=True)
class SegmentationSettings:
    """tasks.segmentation.*: no keys of its own (the classes come from the shards)."""


@dataclass
class SegmentationTask:
    num_classes: int
    name: str = "segmentation"
    field: str = "label"

    Settings: ClassVar[type] = SegmentationSettings
    # Class ids losslessly, a coloured picture and its legend; npy would add nothing to the label PNG.
    output_suffixes: ClassVar[dict[str, tuple[str, ...]]] = {"png": ("_labels.png", "_segmentation.png", "_legend.png")}
    thin_edges: ClassVar[bool] = False
    # Pixel accuracy: the majority class's strength (its mIoU is low by construction, so beating that proves little).
    baseline_check: ClassVar[BaselineCheck] = BaselineCheck("pixel_accuracy", "higher", "pixel accuracy",
                                                            "the majority class", ".3f")
    pr_curve: ClassVar[str | None] = None

    @property
    def out_channels(self) -> int:
        return self.num_classes

    @classmethod
    def from_settings(cls, settings: SegmentationSettings, context: TaskContext) -> SegmentationTask:
        if context.classes is None:
            raise ValueError("segmentation needs the shard folder to know its classes")
        return cls(num_classes=len(context.classes))

    @classmethod
    def from_checkpoint(cls, payload: dict, out_channels: int, where: Path) -> tuple[SegmentationTask, list[str]]:
        """The task and its class names (the checkpoint's, else "0".."K-1")."""
        task = cls(num_classes=out_channels)
        checked_channels(task, out_channels, where)
        if out_channels > 255:
            raise ValueError(f"{where}: {out_channels} classes do not fit a one-channel 8-bit label map (at most 255)")
        classes = payload.get("classes")
        if classes is None:
            return task, [str(k) for k in range(out_channels)]
        if not isinstance(classes, (list, tuple)) or len(classes) != out_channels:
            raise ValueError(f"{where}: 'classes' must list {out_channels} names, got {classes!r:.80}")
        return task, [str(c) for c in classes]

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
        import torch.nn.functional as F

        ce = F.cross_entropy(outputs, targets, ignore_index=IGNORE, reduction="none")  # (M,)
        w = weight * (targets != IGNORE)
        return (ce * w).sum() / w.sum().clamp(min=1)

    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        import torch

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

    def report(self, meters: dict[str, SegMeter], out_dir: Path, context: ReportContext) -> None:
        """confusion.png: the model's confusion matrix over the split, classes named."""
        from pixelnet.metrics.segmentation import plot_confusion

        plot_confusion(meters["model"].inner.matrix, list(context.classes), out_dir / "confusion.png")

    def write_outputs(self, prediction: np.ndarray, paths: Sequence[Path], classes: Sequence[str],
                      outputs: OutputConfig) -> None:
        labels = prediction.astype(np.uint8)  # (H, W) class ids
        write_png(paths[0], labels)
        write_png(paths[1], self.visualize(labels))  # (H, W, 3) palette colours
        write_png(paths[2], legend(labels, classes))

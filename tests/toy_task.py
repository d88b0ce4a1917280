"""A task the project does not ship, written as a new task would be: objects against background.

It reads the synthetic scenes' class labels (any class >= `threshold` is an object), so the test
data serves it as it is. tests/test_task_plugin.py registers it with one line and runs it through
every stage and `pixelnet predict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pixelnet.atomic import write_json, write_png
from pixelnet.tasks.base import BaselineCheck, ReportContext, TaskContext, checked_channels

IGNORE = 255


@dataclass(frozen=True)
class ToySettings:
    """tasks.toy.*"""

    threshold: int = 1   # class ids from here up are objects

    def __post_init__(self) -> None:
        if not 1 <= self.threshold < IGNORE:
            raise ValueError(f"threshold: must be in 1..254, got {self.threshold}")


class AccuracyMeter:
    def __init__(self, task: ToyTask) -> None:
        self.task = task
        self.right = self.total = 0

    def update(self, prediction: np.ndarray, record) -> None:
        target = self.task.strata(record)  # (H, W) 0 / 1, -1 unlabelled
        keep = target >= 0
        self.right += int((prediction[keep] == target[keep]).sum())
        self.total += int(keep.sum())

    def compute(self) -> dict[str, float]:
        return {"accuracy": self.right / max(self.total, 1)}


class BackgroundBaseline:
    name = "all_background"

    def fit(self, records) -> None:
        pass

    def predict(self, record) -> np.ndarray:
        return np.zeros(record["label"].shape, dtype=np.uint8)


@dataclass
class ToyTask:
    threshold: int = 1
    name: str = "toy"
    field: str = "label"
    out_channels: int = 2

    Settings: ClassVar[type] = ToySettings
    output_suffixes: ClassVar[dict[str, tuple[str, ...]]] = {"png": ("_objects.png",)}
    thin_edges: ClassVar[bool] = False
    baseline_check: ClassVar[BaselineCheck] = BaselineCheck("accuracy", "higher", "accuracy", "all background", ".3f")
    pr_curve: ClassVar[str | None] = None

    @classmethod
    def from_settings(cls, settings: ToySettings, context: TaskContext) -> ToyTask:
        return cls(threshold=settings.threshold)

    @classmethod
    def from_checkpoint(cls, payload: dict, out_channels: int, where: Path) -> tuple[ToyTask, list[str]]:
        task = cls()
        checked_channels(task, out_channels, where)
        return task, ["background", "object"]

    def strata(self, record) -> np.ndarray:
        label = record["label"].astype(np.int32)
        return np.where(label == IGNORE, -1, label >= self.threshold).astype(np.int32)

    def gather(self, record, indices: np.ndarray) -> np.ndarray:
        return np.maximum(self.strata(record).ravel()[indices], 0).astype(np.int64)  # (N,)

    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        return targets

    def loss(self, outputs, targets, weight):
        import torch.nn.functional as F

        ce = F.cross_entropy(outputs, targets, reduction="none")  # (M,)
        return (ce * weight).sum() / weight.sum().clamp(min=1)

    def activate(self, outputs):
        return outputs.softmax(dim=1)

    def unflip(self, activated):
        return activated

    def finalize(self, activated: np.ndarray) -> np.ndarray:
        return activated.argmax(axis=-1).astype(np.uint8)  # (H, W) 0 / 1

    def meter(self) -> AccuracyMeter:
        return AccuracyMeter(self)

    def baseline(self) -> BackgroundBaseline:
        return BackgroundBaseline()

    def visualize(self, array: np.ndarray) -> np.ndarray:
        grey = np.where(self._binary(array), 255, 0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)

    def _binary(self, array: np.ndarray) -> np.ndarray:
        # A label map (ground truth) or a 0/1 prediction: objects are classes >= threshold, or 1.
        return (array >= self.threshold) & (array != IGNORE)

    def report(self, meters: dict, out_dir: Path, context: ReportContext) -> None:
        write_json(out_dir / "toy.json", {"dataset": context.dataset, "split": context.split,
                                          "baseline": context.baseline,
                                          "accuracy": {k: m.compute()["accuracy"] for k, m in meters.items()}})

    def write_outputs(self, prediction: np.ndarray, paths: Sequence[Path], classes: Sequence[str], outputs) -> None:
        write_png(paths[0], (255 * prediction).astype(np.uint8))  # (H, W) white objects

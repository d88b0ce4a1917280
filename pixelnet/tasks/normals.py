"""Surface normals: three outputs normalised to a unit vector, cosine (or L2) loss, angular error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from pixelnet.atomic import write_npy, write_png
from pixelnet.metrics.normals import NormalsMeter
from pixelnet.tasks.base import BaselineCheck, ReportContext, TaskContext, checked_channels

if TYPE_CHECKING:
    import torch

    from pixelnet.data.shards import Record
    from pixelnet.inputs import OutputConfig

LOSSES = ("cosine", "l2")


def valid_mask(normal: np.ndarray) -> np.ndarray:
    return np.isfinite(normal).all(axis=-1) & (np.abs(normal).sum(axis=-1) > 0)


class NormalMeter:
    def __init__(self) -> None:
        self.inner = NormalsMeter()

    def update(self, prediction: np.ndarray, record: Record) -> None:
        self.inner.update(prediction, record["normal"])

    def compute(self) -> dict[str, float]:
        out = self.inner.compute()
        return {k: float(out[k]) for k in ("mean", "median", "rmse", "within_11_25", "within_22_5", "within_30")}


class MeanNormalBaseline:
    """The training set's mean normal, predicted everywhere."""

    name = "mean_normal"

    def __init__(self) -> None:
        self.mean = np.array([0.0, 0.0, 1.0], dtype=np.float32)

    def fit(self, records) -> None:
        total = np.zeros(3, dtype=np.float64)
        for record in records:
            n = record["normal"]
            total += n[valid_mask(n)].sum(axis=0)
        self.mean = (total / max(np.linalg.norm(total), 1e-12)).astype(np.float32)

    def predict(self, record: Record) -> np.ndarray:
        h, w = record["image"].shape[:2]
        return np.broadcast_to(self.mean, (h, w, 3)).copy()


@dataclass(frozen=True)
class NormalsSettings:
    """tasks.normals.* in params.yaml."""

    loss: str = "l2"   # "l2" (Euclidean on raw outputs, the paper's) or "cosine"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss: must be 'cosine' or 'l2', got {self.loss!r}")


@dataclass
class NormalsTask:
    loss_kind: str = "l2"
    name: str = "normals"
    field: str = "normal"
    out_channels: int = 3

    Settings: ClassVar[type] = NormalsSettings
    # png: the picture, with the exact vectors beside it; npy: the vectors alone.
    output_suffixes: ClassVar[dict[str, tuple[str, ...]]] = {"png": ("_normals.png", "_normals.npy"),
                                                              "npy": ("_normals.npy",)}
    thin_edges: ClassVar[bool] = False
    baseline_check: ClassVar[BaselineCheck] = BaselineCheck("mean", "lower", "mean angular error",
                                                            "the mean training normal", ".1f")
    pr_curve: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if self.loss_kind not in LOSSES:
            raise ValueError(f"tasks.normals.loss must be 'cosine' or 'l2', got {self.loss_kind!r}")

    @classmethod
    def from_settings(cls, settings: NormalsSettings, context: TaskContext) -> NormalsTask:
        return cls(loss_kind=settings.loss)

    @classmethod
    def from_checkpoint(cls, payload: dict, out_channels: int, where: Path) -> tuple[NormalsTask, list[str]]:
        task = cls()
        checked_channels(task, out_channels, where)
        return task, []

    def strata(self, record: Record) -> np.ndarray:
        return np.where(valid_mask(record["normal"]), 0, -1).astype(np.int32)

    def gather(self, record: Record, indices: np.ndarray) -> np.ndarray:
        return record["normal"].reshape(-1, 3)[indices].astype(np.float32)  # (N, 3)

    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        out = targets.copy()
        out[..., 0] = -out[..., 0]
        return out

    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        # Camera frame: x right, y up, so a counter-clockwise turn of the picture turns (x, y) the same way.
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        out = targets.copy()
        out[..., 0] = c * targets[..., 0] - s * targets[..., 1]
        out[..., 1] = s * targets[..., 0] + c * targets[..., 1]
        return out

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        w = weight * (targets.abs().sum(dim=1) > 0)
        if self.loss_kind == "l2":
            # The paper's Euclidean loss on the raw outputs: the head learns unit length itself, and
            # gradients stay bounded near zero output (normalising there multiplies them by 1/|o|).
            per = ((outputs - targets) ** 2).sum(dim=1)  # (M,)
        else:
            per = 1 - (F.normalize(outputs, dim=1, eps=1e-6) * targets).sum(dim=1)  # (M,)
        return (per * w).sum() / w.sum().clamp(min=1)

    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.normalize(outputs, dim=1, eps=1e-6)

    def unflip(self, activated: torch.Tensor) -> torch.Tensor:
        return activated * activated.new_tensor([-1.0, 1.0, 1.0])

    def finalize(self, activated: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(activated, axis=-1, keepdims=True)
        return (activated / np.maximum(norm, 1e-6)).astype(np.float32)  # (H, W, 3)

    def meter(self) -> NormalMeter:
        return NormalMeter()

    def baseline(self) -> MeanNormalBaseline:
        return MeanNormalBaseline()

    def visualize(self, array: np.ndarray) -> np.ndarray:
        # The usual encoding: (n + 1) / 2 as RGB; invalid pixels black.
        rgb = ((array + 1) * 127.5).clip(0, 255).astype(np.uint8)
        rgb[~valid_mask(array)] = 0
        return rgb

    def report(self, meters: dict[str, NormalMeter], out_dir: Path, context: ReportContext) -> None:
        """angular_error.png: the share of pixels within each angle, model and baseline."""
        from pixelnet.metrics.normals import plot_error_cdf

        plot_error_cdf({"PixelNet": meters["model"].inner.errors(), context.baseline: meters["baseline"].inner.errors()},
                       out_dir / "angular_error.png")

    def write_outputs(self, prediction: np.ndarray, paths: Sequence[Path], classes: Sequence[str],
                      outputs: OutputConfig) -> None:
        if outputs.format == "npy":
            write_npy(paths[0], prediction.astype(np.float32))  # (H, W, 3)
        else:
            write_png(paths[0], self.visualize(prediction))  # (H, W, 3) (n + 1) * 127.5
            write_npy(paths[1], prediction.astype(np.float32))  # (H, W, 3)

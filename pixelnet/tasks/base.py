"""The Task protocol: everything that differs between edges, normals and segmentation.

The training loop and dense inference never branch on the task; they call these methods.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from pixelnet.data.shards import Record


class Meter(Protocol):
    def update(self, prediction: np.ndarray, record: Record) -> None: ...
    def compute(self) -> dict[str, float]: ...


class Baseline(Protocol):
    name: str
    def fit(self, records: Any) -> None: ...
    def predict(self, record: Record) -> np.ndarray: ...


class Task(Protocol):
    name: str
    field: str            # the Record field holding the target
    out_channels: int

    def strata(self, record: Record) -> np.ndarray:
        """(H, W) int32 map the sampler draws from: class / positive flag / 0, with -1 = never sample."""
    def gather(self, record: Record, indices: np.ndarray) -> np.ndarray:
        """Targets at flat pixel indices, (N, ...) as the loss wants them."""
    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        """Targets after a horizontal flip of the image (normals negate x)."""
    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        """Targets after rotating the image `degrees` counter-clockwise as displayed (normals turn x, y)."""
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Scalar loss from (M, K) outputs, (M, ...) targets and (M,) 0/1 weights."""
    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        """(M, K) raw outputs -> the quantity averaged over test-time scales and flips."""
    def unflip(self, activated: torch.Tensor) -> torch.Tensor:
        """Undo a horizontal flip's effect on activated outputs (normals negate x)."""
    def finalize(self, activated: np.ndarray) -> np.ndarray:
        """(H, W, K) averaged activations -> the prediction map the metric reads."""
    def meter(self) -> Meter: ...
    def baseline(self) -> Baseline: ...
    def visualize(self, array: np.ndarray) -> np.ndarray:
        """A target or prediction as an (H, W, 3) uint8 picture for the report grid."""

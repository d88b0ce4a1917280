"""Dense inference for every task: the trunk runs once per scale, the head runs on chunks of pixels.

The head reads hypercolumns through the same sparse sampler used in training, at every pixel of the
original image mapped into each test scale, so memory stays bounded by ``chunk_pixels`` and scales
average at exactly the same pixels without resizing predictions. Every tap is read at its
stride-true positions (`pixelnet.model.hypercolumn`), as in training, whatever the scaled size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pixelnet.model.pixelnet import PixelNet
from pixelnet.tasks.base import Task


@dataclass(frozen=True)
class InferConfig:
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    chunk_pixels: int = 65536

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"evaluate.scales must be a non-empty list of positive numbers, got {list(self.scales)}")
        if self.chunk_pixels < 1:
            raise ValueError(f"evaluate.chunk_pixels must be >= 1, got {self.chunk_pixels}")


def predict(model: PixelNet, task: Task, image: np.ndarray, config: InferConfig, device: str | torch.device = "cpu") -> np.ndarray:
    """(H, W, 3) uint8 image -> the task's prediction map (see Task.finalize)."""
    return task.finalize(activations(model, task, image, config, device))


@torch.no_grad()
def activations(model: PixelNet, task: Task, image: np.ndarray, config: InferConfig, device: str | torch.device = "cpu") -> np.ndarray:
    """(H, W, 3) uint8 image -> (H, W, K) float32 activations averaged over scales and flips, before
    Task.finalize: the quantity that may be averaged further (e.g. over overlapping tiles)."""
    model.eval()
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    base = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)  # (HW, 2) pixel centres
    total = None
    views = 0
    for s in config.scales:
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        scaled = image if (sh, sw) == (h, w) else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_LINEAR)
        coords = (base + 0.5) * np.array([sw / w, sh / h], dtype=np.float32) - 0.5  # (HW, 2) in the scaled image
        for flipped in (False, True) if config.flip else (False,):
            view = scaled[:, ::-1] if flipped else scaled
            c = coords.copy()
            if flipped:
                c[:, 0] = sw - 1 - c[:, 0]
            out = _head_dense(model, task, view, c, config.chunk_pixels, device)  # (HW, K)
            if flipped:
                out = task.unflip(out)
            total = out if total is None else total + out
            views += 1
    return (total / views).view(h, w, -1).cpu().numpy()  # (H, W, K)


def _head_dense(model: PixelNet, task: Task, image: np.ndarray, coords: np.ndarray, chunk: int, device) -> torch.Tensor:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].to(device)  # (1, 3, h, w)
    feats = model.features(x)
    parts = []
    cache: dict = {}  # first-layer projections of the deep taps, computed once per view
    for start in range(0, len(coords), chunk):
        c = torch.from_numpy(coords[start : start + chunk]).to(device)[None]  # (1, n, 2)
        parts.append(task.activate(model.head_at(feats, c, cache)[0].float()))  # (n, K)
    return torch.cat(parts)  # (HW, K)


def predict_many(model: PixelNet, task: Task, images: Sequence[np.ndarray], config: InferConfig, device="cpu") -> list[np.ndarray]:
    return [predict(model, task, im, config, device) for im in images]

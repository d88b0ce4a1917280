"""Dense inference for every task: the trunk runs once per scale and flip, the head over every pixel.

Scales average at exactly the pixels of the original image, without resizing predictions: each
original pixel is mapped into every test view (rescaled, mirrored) and every tap is read at its
stride-true position there (`pixelnet.model.hypercolumn`), as in training, whatever the scaled size.

Two paths compute the same maps (`InferConfig.dense`):

* the dense fast path (the default, `pixelnet.dense_head`): the head's first layer runs tap by
  tap at each tap's own resolution, and the rest of the head on bands of rows held in cache;
* the sparse path: the training sampler (`PixelNet.head_at`) called at every pixel, ``chunk_pixels``
  at a time. It is several times slower; it stays as the reference the fast path is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pixelnet.dense_head import dense_head
from pixelnet.model.pixelnet import PixelNet
from pixelnet.tasks.base import Task


PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class InferConfig:
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    chunk_pixels: int = 8192    # pixels the head holds at once (the dense path: a band of whole rows)
    dense: bool = True          # the dense fast path; False: the sparse reference path
    precision: str = "fp32"     # fp32, or bf16 autocast (faster where the CPU multiplies bf16 natively)

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"evaluate.scales must be a non-empty list of positive numbers, got {list(self.scales)}")
        if self.chunk_pixels < 1:
            raise ValueError(f"evaluate.chunk_pixels must be >= 1, got {self.chunk_pixels}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")


def predict(model: PixelNet, task: Task, image: np.ndarray, config: InferConfig, device: str | torch.device = "cpu") -> np.ndarray:
    """(H, W, 3) uint8 image -> the task's prediction map (see Task.finalize)."""
    return task.finalize(activations(model, task, image, config, device))


@torch.no_grad()
def activations(model: PixelNet, task: Task, image: np.ndarray, config: InferConfig, device: str | torch.device = "cpu") -> np.ndarray:
    """(H, W, 3) uint8 image -> (H, W, K) float32 activations averaged over scales and flips, before
    Task.finalize: the quantity that may be averaged further (e.g. over overlapping tiles)."""
    model.eval()
    h, w = image.shape[:2]
    base = [np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)]  # pixel centres along x and y
    total = None
    views = 0
    for s in config.scales:
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        scaled = image if (sh, sw) == (h, w) else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_LINEAR)
        # Each original pixel's position in the scaled image, per axis, in float32 as the sampler reads it.
        along = [(b + np.float32(0.5)) * np.float32(r) - np.float32(0.5) for b, r in zip(base, (sw / w, sh / h))]
        for flipped in (False, True) if config.flip else (False,):
            view = scaled[:, ::-1] if flipped else scaled
            cx = sw - 1 - along[0] if flipped else along[0]  # (W,)
            c = (cx, along[1])
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                out = _view(model, task, view, c, config, device)  # (HW, K)
            if flipped:
                out = task.unflip(out)
            total = out if total is None else total + out
            views += 1
    return (total / views).view(h, w, -1).cpu().numpy()  # (H, W, K)


def _view(model: PixelNet, task: Task, image: np.ndarray, coords: tuple[np.ndarray, np.ndarray], config: InferConfig,
          device) -> torch.Tensor:
    """One view's activated outputs at the original pixels, (HW, K) float32, by the configured path."""
    if config.dense:
        return _head_dense(model, task, image, coords, config.chunk_pixels, device)
    grid = np.stack(np.broadcast_arrays(coords[0][None, :], coords[1][:, None]), axis=-1).reshape(-1, 2)  # (HW, 2) x, y
    return _head_sparse(model, task, image, grid, config.chunk_pixels, device)


def _trunk(model: PixelNet, image: np.ndarray, device) -> list[torch.Tensor]:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].to(device)  # (1, 3, h, w): a writable copy
    return model.features(x.contiguous(memory_format=torch.channels_last))


def _head_dense(model: PixelNet, task: Task, image: np.ndarray, coords: tuple[np.ndarray, np.ndarray], chunk: int,
                device) -> torch.Tensor:
    xs, ys = (torch.from_numpy(np.ascontiguousarray(c)).to(device) for c in coords)  # (W,), (H,)
    out = dense_head(model.head, _trunk(model, image, device), model.strides, xs, ys, task.activate, chunk)
    return out.reshape(len(ys) * len(xs), -1)  # (HW, K)


def _head_sparse(model: PixelNet, task: Task, image: np.ndarray, coords: np.ndarray, chunk: int, device) -> torch.Tensor:
    feats = _trunk(model, image, device)
    parts = []
    cache: dict = {}  # first-layer projections of the deep taps, computed once per view
    for start in range(0, len(coords), chunk):
        c = torch.from_numpy(coords[start : start + chunk]).to(device)[None]  # (1, n, 2)
        parts.append(task.activate(model.head_at(feats, c, cache)[0].float()))  # (n, K)
    return torch.cat(parts)  # (HW, K)

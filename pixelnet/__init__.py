"""PixelNet: edges, surface normals and semantic segmentation from one network (Bansal et al., 2017).

The public API is `load`::

    import pixelnet
    model = pixelnet.load("bsds500-edges")   # a shipped model's name, or a path to a model.pt
    edges = model(image)                      # (H, W) float32 edge probabilities

`import pixelnet` stays cheap: torch and the model are imported by the first `load`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixelnet.api import Model

__all__ = ["load"]


def load(name_or_path: str | Path, device: str = "auto", scales: Sequence[float] = (1.0,), flip: bool = False,
         tile: int = 1024, precision: str = "fp32") -> Model:
    """A shipped model by name (``pixelnet/zoo/<name>``) or any model.pt the train stage wrote, as a
    `pixelnet.api.Model`: ``model(image)`` returns the task's map for a numpy or PIL image
    (edges: (H, W) float32 probabilities; normals: (H, W, 3) unit vectors; segmentation: (H, W)
    uint8 class ids) and, for edges, ``model.nms(edges)`` thins it as the benchmark does.

    `device`: "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N". `scales` and `flip`:
    the test-time views averaged per image. `tile`: an image with a longer side is predicted in
    overlapping tiles blended without seams (0: never). See `pixelnet.api.load`.
    `precision`: "fp32", or "bf16" autocast (faster where the CPU multiplies bf16 natively: see
    ``pixelnet bench predict``; maps within a few hundredths of fp32's).
    """
    from pixelnet.api import load as _load

    return _load(name_or_path, device, scales, flip, tile, precision)

"""The Python API: a shipped or trained model as a callable on images in memory (`pixelnet.load`).

Nothing here infers by itself: a `Model` checks and converts its input (`to_rgb8`, the size rule
of `pixelnet.inputs.check_size`) and calls `pixelnet.predict.predict_image`, the very path of
``pixelnet predict`` (tiles, scales and flips included), so both give the same maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pixelnet.data.images import to_rgb8
from pixelnet.infer import InferConfig
from pixelnet.inputs import OutputConfig, check_size
from pixelnet.model.pixelnet import ModelConfig, PixelNet
from pixelnet.predict import TileConfig, load_model, predict_image, resolve_device
from pixelnet.tasks.base import Task
from pixelnet.tasks.edges import edge_map
from pixelnet.zoo import resolve


class Model:
    """A loaded PixelNet: ``model(image)`` returns the task's map for one image.

    `image` is a numpy array or a PIL image (`pixelnet.data.images.to_rgb8`: grey, RGB or RGBA;
    uint8, uint16 or float in [0, 1]) whose sides are at least `min_side` px at every scale. The
    map has the image's height and width: edges (H, W) float32 probabilities in [0, 1]; normals
    (H, W, 3) float32 unit vectors (x right, y up, z towards the viewer); segmentation (H, W) uint8
    class ids, named by `classes`.

    Attributes: `task` (its name), `classes` (segmentation class names, else empty), `config`
    (the `ModelConfig`), `strides` (each tapped layer's stride), `min_side`, `path` (the model.pt),
    `device`, `net` (the `PixelNet` itself, in eval mode) and `infer`, `tiles` (how it predicts).
    """

    def __init__(self, net: PixelNet, task: Task, classes: Sequence[str], path: Path, device: torch.device,
                 infer: InferConfig, tiles: TileConfig) -> None:
        self.net = net
        self._task = task
        self.task: str = task.name
        self.classes: list[str] = list(classes)
        self.config: ModelConfig = net.config
        self.path = Path(path)
        self.device = device
        self.infer = infer
        self.tiles = tiles

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(self.net.strides)

    @property
    def min_side(self) -> int:
        """The smallest side, in px at every scale, the model accepts: its deepest tapped layer's stride."""
        return self.strides[-1]

    def __call__(self, image: object) -> np.ndarray:
        rgb = to_rgb8(image)  # (H, W, 3) uint8
        check_size("image", rgb.shape[:2], self.min_side, self.infer.scales)
        return predict_image(self.net, self._task, rgb, self.infer, self.tiles, self.device)

    def nms(self, edges: np.ndarray) -> np.ndarray:
        """One-pixel-wide edges: (H, W) probabilities -> (H, W) float32, thinned by the edges toolbox's
        non-maximum suppression exactly as the benchmark runs it (`pixelnet.metrics.nms.edge_nms`
        with its defaults): ridges keep their smoothed probabilities, everything else is zero."""
        if not self._task.thin_edges:
            raise ValueError(f"nms thins edge maps; this is a {self.task} model")
        e = np.asarray(edges)
        if e.ndim != 2 or e.dtype.kind not in "fui":
            raise ValueError(f"nms expects an (H, W) map of edge probabilities, got shape {e.shape}, dtype {e.dtype}")
        e = e.astype(np.float64)  # (H, W), as the benchmark's EdgeMeter passes it
        if not np.isfinite(e).all() or e.min() < 0 or e.max() > 1:
            raise ValueError("nms expects edge probabilities in [0, 1] (finite), "
                             f"found [{np.nanmin(e):g}, {np.nanmax(e):g}]")
        return edge_map(e, OutputConfig(nms=True))  # (H, W) float32, as `pixelnet predict --nms` writes it

    def __repr__(self) -> str:
        return f"<pixelnet.Model {self.task} from {self.path} on {self.device}>"


def load(name_or_path: str | Path, device: str = "auto", scales: Sequence[float] = (1.0,), flip: bool = False,
         tile: int = 1024, precision: str = "fp32") -> Model:
    """A shipped model by name (``pixelnet/zoo/<name>``) or any model.pt the train stage wrote, ready to call.

    `device`: "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N". `scales` and `flip`:
    the test-time views averaged per image (as ``pixelnet predict --scales --flip``). `tile`: an
    image with a longer side is predicted in overlapping tiles blended without seams (0: never).
    `precision`: "fp32", or "bf16" autocast (faster where the CPU multiplies bf16 natively: see
    ``pixelnet bench predict``; maps within a few hundredths of fp32's).
    """
    path = resolve(name_or_path)
    dev = resolve_device(device)
    infer = InferConfig(scales=tuple(float(s) for s in scales), flip=bool(flip), precision=precision)
    tiles = TileConfig(size=int(tile))
    net, task, classes = load_model(path, dev)
    if tiles.size:
        tiles.plan(net.strides[-1])  # a tile too small for this model fails here, not at the first call
    return Model(net, task, classes, path, dev, infer, tiles)

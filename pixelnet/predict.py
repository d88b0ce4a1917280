"""Predict with a trained model on the user's own images: tiling for large images, and output files.

Tiling wraps `pixelnet.infer.activations` (the one inference path, multi-scale and flip included):
an image whose side exceeds `TileConfig.size` is cut into overlapping tiles, each tile's
activations are computed as for a whole image, and they are blended back, weighted by the squared
distance to the tile's nearest inner edge and normalised by the summed weights. A weight is zero
at a tile's edge and grows continuously inside it, so the blended map has no seam. Why the grid
and the overlap:

* Tile origins lie on the grid of the deepest tapped layer's stride (4 px for conv3_3, 32 for fc7),
  so each tile's pooling windows coincide with those of the whole image, and every tap is read at
  its stride-true positions, u = (x + 0.5) / s - 0.5 in the tile's own pixels (see
  `pixelnet.model.hypercolumn`), which do not depend on the tile's size: a tile's cell i is the
  whole image's cell i + origin / s, read at the same pixels. Away from its edges a tile's
  features, and the hypercolumns read from them, are exactly the whole image's. (Interior tiles
  are whole multiples of the stride too; the last one need not be.)
* Near a tile's edge they are not: the trunk sees zero padding where the image goes on, and the
  deepest map's bilinear read clamps within half a cell of the edge (and over the last pixels
  that pooling floors away when the side is not a multiple of the stride). So neighbouring tiles share
  at least one deepest-stride cell and at least 32 px (by default an eighth of the tile, so a
  1024 px tile costs ~30% extra work): every pixel near one tile's edge lies well inside another,
  which the blend weights favour. A deep tap's receptive field (hundreds of pixels for fc7) is
  wider than any affordable overlap, so tiled and whole-image predictions agree closely but not
  bit for bit; with multi-scale inference each tile is resized on its own, which adds a little
  more difference. The blended activations, (H, W, K) float32, are held in memory as whole-image
  inference holds them; tiling bounds the trunk's feature maps, the large part.

Outputs per image, written each under a temporary name and renamed (see `write_outputs`), with
`OutputConfig.format` png (the default) or npy; each task names them (`Task.output_suffixes`) and
writes them (`Task.write_outputs`):

* edges: ``<stem>_edges.png``, 8-bit grey, white edges on black (255 * probability): the
  convention of BSDS/HED result images and the format ``pixelnet evaluate-edges`` reads; npy:
  ``<stem>_edges.npy``, (H, W) float32 probabilities. With `OutputConfig.nms` the map is first
  thinned by the edges toolbox's NMS exactly as the benchmark runs it (`pixelnet.metrics.nms.edge_nms`
  with its defaults: one-pixel-wide ridges keeping their smoothed probabilities, zero elsewhere);
  with `OutputConfig.thin` the ridges >= `threshold` are then thinned as the benchmark thins each
  binarised map (`pixelnet.metrics.thinning.thin`) and keep their probabilities, the rest is zero
  (`pixelnet.tasks.edges.edge_map`).
* normals: ``<stem>_normals.png`` (RGB = (n + 1) / 2 * 255; x right, y up, z towards the viewer)
  and ``<stem>_normals.npy``, (H, W, 3) float32 unit vectors; npy: the .npy alone.
* segmentation: ``<stem>_labels.png`` (one channel, the raw class ids), ``<stem>_segmentation.png``
  (the task's palette, PASCAL VOC colours) and ``<stem>_legend.png`` (the classes present, with
  their colours, names and share of the image); npy is refused (the label PNG is lossless).

Every input is checked first by `pixelnet.inputs.check_request` (torch-free, so the CLI runs it
before importing torch); the output folder is made only then, and removed again if the run fails
before anything is written into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pixelnet.data.folder import read_image
from pixelnet.device import resolve_device
from pixelnet.infer import InferConfig, activations
from pixelnet.inputs import CheckedInputs, OutputConfig, check_request
from pixelnet.model.pixelnet import PixelNet, model_from_checkpoint
from pixelnet.tasks import TASKS
from pixelnet.tasks.base import Task

MIN_OVERLAP = 32


@dataclass(frozen=True)
class TileConfig:
    size: int = 1024            # tile side in px; an image with a longer side is tiled; 0 = never tile
    overlap: int | None = None  # px shared by neighbouring tiles; None: max(32, deepest stride, size // 8)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"tile size must be >= 0 px (0 = never tile), got {self.size}")
        if self.overlap is not None and self.overlap < MIN_OVERLAP:
            raise ValueError(f"tile overlap must be >= {MIN_OVERLAP} px, got {self.overlap}")

    def plan(self, grid: int) -> tuple[int, int]:
        """(tile, overlap) in px for a model whose deepest map has stride `grid`: both multiples of it."""
        overlap = self.overlap if self.overlap is not None else max(MIN_OVERLAP, self.size // 8)
        overlap = -(-max(overlap, grid) // grid) * grid  # rounded up to the grid
        tile = self.size // grid * grid
        if tile - overlap < grid:
            raise ValueError(f"tile size {self.size} px is too small for this model: it must exceed the "
                             f"overlap ({overlap} px) by at least its deepest stride ({grid} px)")
        return tile, overlap


def tile_spans(length: int, tile: int, overlap: int, grid: int) -> list[tuple[int, int]]:
    """[start, stop) spans covering 0..length: starts on the grid, spread evenly, neighbours sharing
    >= overlap px (tile and overlap are multiples of grid).

    The last span ends at `length` from a start on the grid, so it may be up to grid - 1 px longer
    than `tile`; spreading the starts evenly avoids a last tile that nearly repeats the one before.
    """
    if length <= tile:
        return [(0, length)]
    n = max(2, -(-(length - overlap) // (tile - overlap)))  # fewest tiles whose steps are <= tile - overlap
    # Flooring each start to the grid keeps every step <= tile - overlap (itself a multiple of the grid).
    starts = sorted({i * (length - tile) // ((n - 1) * grid) * grid for i in range(n)})
    return [(s, s + tile) for s in starts[:-1]] + [(starts[-1], length)]


def blend_weights(start: int, stop: int, length: int) -> np.ndarray:
    """(stop - start,) weights: the squared distance from each pixel centre to the span's nearest inner edge.

    Zero at an inner edge, so the blend is continuous across it (no seam); squared, so a pixel
    leans on the tile that sees it from further inside (on a random VGG trunk, half the error of a
    linear ramp against the whole-image prediction). An edge that is also the image's edge does not
    count: no other tile covers those pixels.
    """
    centres = np.arange(stop - start, dtype=np.float32) + 0.5  # (n,) distance from the start edge
    w = np.full(stop - start, np.inf, dtype=np.float32)
    if start > 0:
        w = np.minimum(w, centres)
    if stop < length:
        w = np.minimum(w, centres[::-1])
    return np.ones_like(w) if start == 0 and stop == length else w**2


def deepest_stride(model: PixelNet) -> int:
    return model.strides[-1]


def tiled_activations(model: PixelNet, task: Task, image: np.ndarray, infer: InferConfig, tiles: TileConfig,
                      device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 image -> (H, W, K) activations, tile by tile when a side exceeds tiles.size."""
    h, w = image.shape[:2]
    if tiles.size == 0 or max(h, w) <= tiles.size:
        return activations(model, task, image, infer, device)
    grid = deepest_stride(model)
    tile, overlap = tiles.plan(grid)
    rows, cols = tile_spans(h, tile, overlap, grid), tile_spans(w, tile, overlap, grid)
    total = None
    weights = np.zeros((h, w), dtype=np.float32)
    bar = tqdm(total=len(rows) * len(cols), desc="tiles", unit="tile", leave=False, disable=not progress)
    for y0, y1 in rows:
        for x0, x1 in cols:
            part = activations(model, task, np.ascontiguousarray(image[y0:y1, x0:x1]), infer, device)  # (th, tw, K)
            wt = np.outer(blend_weights(y0, y1, h), blend_weights(x0, x1, w))  # (th, tw)
            if total is None:
                total = np.zeros((h, w, part.shape[-1]), dtype=np.float32)  # (H, W, K)
            total[y0:y1, x0:x1] += part * wt[..., None]
            weights[y0:y1, x0:x1] += wt
            bar.update()
    bar.close()
    return total / weights[..., None]  # (H, W, K); every weight > 0 (distances start at 0.5 px)


def predict_image(model: PixelNet, task: Task, image: np.ndarray, infer: InferConfig, tiles: TileConfig,
                  device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 image -> the task's prediction map (Task.finalize of the blended activations)."""
    return task.finalize(tiled_activations(model, task, image, infer, tiles, device, progress))


# ----------------------------------------------------------------------------- model and inputs

def task_from_payload(payload: dict, out_channels: int, where: Path) -> tuple[Task, list[str]]:
    """The Task a checkpoint was trained for, and its class names (segmentation; "0".."K-1" if unnamed)."""
    name = payload.get("task")
    if name not in TASKS:
        raise ValueError(f"{where}: checkpoint names no known task ({name!r}; expected one of {list(TASKS)})")
    return TASKS[name].from_checkpoint(payload, out_channels, where)


def load_model(path: Path, device: str | torch.device) -> tuple[PixelNet, Task, list[str]]:
    """A trained checkpoint in eval mode on `device`, its Task and its class names."""
    model, payload = model_from_checkpoint(Path(path))
    task, classes = task_from_payload(payload, model.out_channels, Path(path))
    return model.to(device), task, classes



# ----------------------------------------------------------------------------- outputs

def output_paths(task: Task, out_dir: Path, stem: str, format: str = "png") -> list[Path]:
    """The files `write_outputs` writes for one image: <stem><suffix> for each of the task's suffixes."""
    if format not in task.output_suffixes:
        raise ValueError(f"--format {format}: no {format} output for a {task.name} model")
    return [Path(out_dir) / f"{stem}{suffix}" for suffix in task.output_suffixes[format]]


def write_outputs(task: Task, prediction: np.ndarray, out_dir: Path, stem: str, classes: Sequence[str] = (),
                  outputs: OutputConfig = OutputConfig()) -> list[Path]:
    """Write one image's prediction (Task.finalize's map) as the files named in the module doc; each
    file appears complete or not at all."""
    paths = output_paths(task, out_dir, stem, outputs.format)
    task.write_outputs(prediction, paths, classes, outputs)
    return paths


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders that mkdir(parents=True) would create for `folder`, outermost first."""
    missing = []
    for d in (folder, *folder.parents):
        if d.exists():
            break
        missing.append(d)
    return missing[::-1]


def predict_files(checkpoint: Path, images: Sequence[Path] | CheckedInputs, out_dir: Path, infer: InferConfig,
                  tiles: TileConfig, device: str = "auto", progress: bool = False,
                  on_image: Callable[[Path, list[Path]], None] | None = None,
                  outputs: OutputConfig = OutputConfig(), recursive: bool = False, skip_existing: bool = False,
                  on_skip: Callable[[Path, list[Path]], None] | None = None) -> dict[Path, list[Path]]:
    """Predict every image with the checkpoint's task and write its outputs into out_dir.

    `images` are paths (folders stand for their images, see `pixelnet.inputs`), or what
    `check_request` returned for this checkpoint, scales and outputs (then they are not read twice).
    The model, the tile plan, the output folder and every input are checked before anything is
    predicted or written, and out_dir is made only then; if the run fails, folders it made that are
    still empty are removed (completed files stay: each is written atomically). With
    `skip_existing`, an image whose output files all exist is not predicted: `on_skip(image, files)`
    instead of `on_image(image, written)`, which is called after each image's files are in place.
    A progress bar over the images goes to stderr with `progress`; `on_image` may print meanwhile.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    checked = images if isinstance(images, CheckedInputs) else None
    if checked is None or (checked.model, checked.scales, checked.outputs) != (checkpoint, tuple(infer.scales), outputs):
        checked = check_request(checkpoint, images if checked is None else checked.images, infer.scales, outputs,
                                out_dir, recursive)
    dev = resolve_device(device)
    model, task, classes = load_model(checkpoint, dev)
    if tiles.size:
        tiles.plan(deepest_stride(model))  # a tile too small for this model fails before any work
    made = _missing_dirs(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[Path, list[Path]] = {}
    bar = tqdm(total=len(checked.images), desc="predict", unit="img", disable=not progress)
    try:
        for path in checked.images:
            targets = output_paths(task, out_dir, path.stem, outputs.format)
            if skip_existing and all(t.is_file() for t in targets):
                if on_skip is not None:
                    with tqdm.external_write_mode():  # the bar steps aside while the caller prints
                        on_skip(path, targets)
                bar.update()
                continue
            prediction = predict_image(model, task, read_image(path), infer, tiles, dev, progress)
            written[path] = write_outputs(task, prediction, out_dir, path.stem, classes, outputs)
            if on_image is not None:
                with tqdm.external_write_mode():
                    on_image(path, written[path])
            bar.update()
    except BaseException:  # also Ctrl-C: leave no empty folder behind, then fail as before
        for d in reversed(made):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    finally:
        bar.close()
    return written

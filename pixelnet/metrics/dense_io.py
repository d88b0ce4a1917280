"""Benchmark any model's dense predictions from files: surface normals and semantic labels.

Predictions and ground truth sit in two folders and pair by file stem (``<stem>.npy`` normals,
``<stem>.png`` labels). Every pair is checked (readable, right shape, same size) before any
scoring, so a bad file fails in seconds with its name, and nothing is written. The protocols are
the split-level ones of `pixelnet.metrics.normals` and `pixelnet.metrics.segmentation`: angular
errors pooled over every valid pixel of the split; one confusion matrix over the split.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image
from tqdm import tqdm

from pixelnet.atomic import atomic_dir
from pixelnet.metrics.normals import NormalsMeter, plot_error_cdf
from pixelnet.metrics.segmentation import ConfusionMeter, plot_confusion

IGNORE = 255


def pair_by_stem(predictions: Path, ground_truth: Path, suffix: str) -> list[tuple[str, Path, Path]]:
    """(stem, prediction, ground truth) for every ground-truth `*<suffix>`, sorted by stem; a missing
    prediction is an error naming the file that was expected."""
    predictions, ground_truth = Path(predictions), Path(ground_truth)
    for folder, what in ((predictions, "predictions"), (ground_truth, "ground truth")):
        if not folder.is_dir():
            raise ValueError(f"{folder}: {what} folder does not exist")
    gts = sorted(p for p in ground_truth.iterdir() if p.is_file() and p.suffix.lower() == suffix)
    if not gts:
        raise ValueError(f"{ground_truth}: no ground-truth {suffix} files")
    pairs = []
    for gt in gts:
        pred = predictions / f"{gt.stem}{suffix}"
        if not pred.is_file():
            raise ValueError(f"missing prediction {pred} for ground truth {gt}")
        pairs.append((gt.stem, pred, gt))
    return pairs


def read_normals(source: Path | IO[bytes], where: str | Path | None = None, mmap: bool = False) -> np.ndarray:
    """(H, W, 3) float normals from a .npy file, or from an open one that errors call `where`; any
    other shape or a non-float array is an error naming it. The one reader of normals files: ground
    truth, predictions, a user's folder, NYUDv2's raw frames. `mmap` maps the file instead of reading
    it (its shape and dtype, cheaply)."""
    where = where or source
    try:
        arr = np.load(source, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{where}: not a readable .npy array ({err})") from err
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{where}: normals must be an (H, W, 3) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{where}: normals must be floating point, got dtype {arr.dtype}")
    return arr


def read_labels(path: Path) -> np.ndarray:
    """(H, W) class ids from a PNG of one channel: palette indices ('P', as VOC stores them), 8- or
    16-bit grey. An RGB(A) PNG is refused: its colours are not ids."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I;16", "I;16B", "I", "1"):
                raise ValueError(f"{path}: labels must be a one-channel PNG of class ids (palette or grey), got mode {im.mode}")
            return np.asarray(im if im.mode != "I;16B" else im.convert("I")).astype(np.int64)
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def _size(path: Path) -> tuple[int, int]:
    """(H, W) of a prediction or ground-truth file, from its header: a .npy array, else an image."""
    if path.suffix.lower() == ".npy":
        arr = read_normals(path, mmap=True)  # the header only
        return int(arr.shape[0]), int(arr.shape[1])
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def _checked(pairs: list[tuple[str, Path, Path]]) -> None:
    for _, pred, gt in pairs:
        a, b = _size(pred), _size(gt)
        if a != b:
            raise ValueError(f"{pred}: prediction is {a[0]}x{a[1]} but its ground truth {gt} is {b[0]}x{b[1]}")


def _progress(pairs: list, desc: str, progress: bool) -> Iterator:
    return tqdm(pairs, desc=desc, unit="img", disable=not progress)


def evaluate_normals_directory(predictions: Path, ground_truth: Path, out: Path, progress: bool = True) -> dict:
    """Angular error of every `<stem>.npy` prediction against `<stem>.npy` ground truth.

    Writes out/metrics.json (mean, median, rmse, within_11_25, within_22_5, within_30 in degrees and
    percent, valid_pixels, images) and out/error_cdf.png. Non-finite or all-zero ground-truth vectors
    are invalid pixels; a prediction without a direction at a valid pixel counts as 90 degrees.
    """
    pairs = pair_by_stem(predictions, ground_truth, ".npy")
    _checked(pairs)
    meter = NormalsMeter()
    for _, pred, gt in _progress(pairs, "evaluate normals", progress):
        meter.update(read_normals(pred), read_normals(gt))
    metrics = {**meter.compute(), "images": len(pairs)}
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plot_error_cdf({Path(predictions).name or "predictions": meter.errors()}, tmp / "error_cdf.png")
    return metrics


def evaluate_segmentation_directory(
    predictions: Path, ground_truth: Path, classes: int, out: Path, class_names: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """mIoU, pixel accuracy and mean class accuracy of `<stem>.png` label predictions, from one
    confusion matrix over all images; ground truth 255 is ignored.

    Writes out/metrics.json (miou, pixel_accuracy, mean_class_accuracy as fractions, iou_per_class,
    images), out/confusion.npy and out/confusion.png.
    """
    if classes < 1 or classes > IGNORE:
        raise ValueError(f"--classes must be in 1..{IGNORE}, got {classes}")
    names = list(class_names) if class_names else [str(i) for i in range(classes)]
    if len(names) != classes:
        raise ValueError(f"{len(names)} class names for {classes} classes")
    pairs = pair_by_stem(predictions, ground_truth, ".png")
    _checked(pairs)
    meter = ConfusionMeter(classes, ignore_index=IGNORE)
    for _, pred, gt in _progress(pairs, "evaluate segmentation", progress):
        try:
            meter.update(read_labels(pred), read_labels(gt))
        except ValueError as err:
            raise ValueError(f"{pred} / {gt}: {err}") from err
    metrics = {**meter.compute(), "images": len(pairs)}
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        np.save(tmp / "confusion.npy", meter.matrix)
        plot_confusion(meter.matrix, names, tmp / "confusion.png")
    return metrics

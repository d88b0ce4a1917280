"""Files in and out of the BSDS boundary benchmark: any edge detector's maps against BSDS `.mat`
ground truth, written out as the official benchmark writes them.

Inputs are checked where they enter (every error is a `ValueError` naming the file), all of
them before the slow part, so a bad file is reported in seconds rather than after the run;
outputs are written under temporary names and renamed, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError
from tqdm import tqdm

from pixelnet.metrics.edges import (
    BoundaryConfig,
    BoundaryResult,
    collect,
    image_counts,
    plot_pr,
    thresholds_for,
)
from pixelnet.metrics.published import load_published

log = logging.getLogger(__name__)

PREDICTION_SUFFIXES = (".png", ".npy", ".mat")
# `pixelnet predict` writes <id>_edges.png (or, with --format npy, <id>_edges.npy): read as <id>.
PREDICT_TAG, PREDICT_TAG_SUFFIXES = "_edges", (".png", ".npy")
_NAMED = 5  # ids named in a "missing" or "no ground truth" message before "..."
OFFICIAL_FILES = ("eval_bdry.txt", "eval_bdry_img.txt", "eval_bdry_thr.txt")
# The exact printf formats of collect_eval_bdry.m.
_SUMMARY_FMT = " ".join(["%10g"] * 8) + "\n"  # T, ODS R P F, OIS R P F, AP
_IMAGE_FMT = "%10d" + " %10g" * 4 + "\n"  # index, best T, R, P, F
_THRESHOLD_FMT = " ".join(["%10g"] * 4) + "\n"  # T, R, P, F
_PNG_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# What scipy's MAT parser raises on a damaged, truncated, v7.3 (HDF5) or foreign file.
_MAT_ERRORS = (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, NotImplementedError,
               MatReadError, struct.error, zlib.error)


def _oneline(err: BaseException) -> str:
    """First line of an error message: the CLI promises one line per failure."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_mat(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return loadmat(path)
    except _MAT_ERRORS as err:  # scipy raises all of these for a file it cannot parse
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({_oneline(err)})") from None


def _struct_field(cell: object, name: str, path: Path, index: int) -> np.ndarray:
    """`groundTruth{index}.name`, whether saved as a cell of structs or a struct array."""
    record = cell
    if isinstance(cell, np.ndarray):
        if cell.dtype.names is None or cell.size != 1:
            raise ValueError(f"{path}: groundTruth{{{index + 1}}} is not a struct")
        record = cell.ravel()[0]
    names = getattr(getattr(record, "dtype", None), "names", None) or ()
    if name not in names:
        raise ValueError(f"{path}: groundTruth{{{index + 1}}} has no field {name!r}")
    value = np.asarray(record[name])
    if value.dtype == object and value.size == 1:  # MATLAB fields load as (1, 1) object arrays
        value = np.asarray(value.ravel()[0])
    if value.ndim != 2:
        raise ValueError(f"{path}: groundTruth{{{index + 1}}}.{name} is not 2-D (shape {value.shape})")
    return value


def _annotator_fields(path: Path, name: str) -> list[np.ndarray]:
    """One 2-D field per annotator, all of one size (BSDS has 4-9 annotators per image)."""
    mat = _load_mat(path)
    if "groundTruth" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise ValueError(f"{path}: no 'groundTruth' variable (found: {found})")
    # A 1 x A cell of structs (BSDS), or a 1 x A struct array: either way one entry per annotator.
    cells = list(np.asarray(mat["groundTruth"]).ravel())
    if not cells:
        raise ValueError(f"{path}: groundTruth is empty (no annotators)")
    fields = [_struct_field(c, name, path, i) for i, c in enumerate(cells)]
    shapes = {f.shape for f in fields}
    if len(shapes) != 1:
        raise ValueError(f"{path}: annotators disagree on the image size: {sorted(shapes)}")
    return fields


def read_ground_truth(path: Path) -> list[np.ndarray]:
    """Every annotator's boundary map of one BSDS `.mat` file, bool (H, W) each."""
    return [b.astype(bool) for b in _annotator_fields(Path(path), "Boundaries")]


def read_segmentations(path: Path) -> list[np.ndarray]:
    """Every annotator's segmentation (region labels from 1) of one BSDS `.mat` file, int32 (H, W)."""
    return [s.astype(np.int32) for s in _annotator_fields(Path(path), "Segmentation")]


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"{path}: not a readable PNG ({_oneline(err)})") from None
    # A palette or colour PNG would give indices or 3 channels, not strengths.
    if mode not in ("L", "I;16", "I;16B", "I;16L") or arr.dtype not in _PNG_SCALE:
        raise ValueError(f"{path}: expected a single-channel 8- or 16-bit PNG, got mode {mode!r}")
    return arr / _PNG_SCALE[arr.dtype]


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy array ({_oneline(err)})") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{path}: expected a float array in [0, 1], got dtype {arr.dtype}")
    return arr


def _read_ucm2(path: Path) -> np.ndarray:
    """The official reader's `pb = double(ucm2(3:2:end, 3:2:end))`: the double-size ultrametric
    map keeps contours on the inter-pixel grid; the odd (1-based) samples are the pixels."""
    mat = _load_mat(path)
    if "ucm2" not in mat:
        raise ValueError(f"{path}: no 'ucm2' variable (only ucm2 .mat predictions are supported)")
    ucm2 = np.asarray(mat["ucm2"])
    if ucm2.ndim != 2 or min(ucm2.shape) < 3 or ucm2.shape[0] % 2 == 0 or ucm2.shape[1] % 2 == 0:
        raise ValueError(f"{path}: ucm2 must be a 2-D (2H+1, 2W+1) map, got shape {ucm2.shape}")
    if not (np.issubdtype(ucm2.dtype, np.number) or ucm2.dtype == bool):
        raise ValueError(f"{path}: ucm2 is not numeric (dtype {ucm2.dtype})")
    return ucm2[2::2, 2::2]  # (H, W)


_READERS = {".png": _read_png, ".npy": _read_npy, ".mat": _read_ucm2}


def read_prediction(path: Path) -> np.ndarray:
    """A soft boundary map as float64 (H, W) in [0, 1]: PNG (8-bit /255, 16-bit /65535), a
    float `.npy`, or an official ucm2 `.mat`."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path}: unsupported prediction format (use {', '.join(PREDICTION_SUFFIXES)})")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    pred = np.asarray(reader(path), dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D (H, W) map, got shape {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"{path}: contains NaN or infinite values")
    if pred.size and (pred.min() < 0 or pred.max() > 1):
        raise ValueError(f"{path}: values must lie in [0, 1], found [{pred.min():g}, {pred.max():g}]")
    return pred


@dataclass(frozen=True)
class ImagePair:
    """One benchmark image: its name (the ground truth's stem), prediction file and ground-truth file."""

    name: str
    prediction: Path
    ground_truth: Path


def prediction_id(path: Path) -> str:
    """The image id a prediction file stands for: its stem, less a trailing `_edges` on a `.png`
    or `.npy` (as `pixelnet predict` names them), so `3096.png` and `3096_edges.png` are both 3096."""
    path = Path(path)
    if path.suffix.lower() in PREDICT_TAG_SUFFIXES and path.stem.endswith(PREDICT_TAG) and path.stem != PREDICT_TAG:
        return path.stem[: -len(PREDICT_TAG)]
    return path.stem


def ground_truth_files(ground_truth: Path) -> list[Path]:
    """Every ground-truth `.mat` of a folder, in the official (sorted) order."""
    ground_truth = Path(ground_truth)
    if not ground_truth.is_dir():
        raise ValueError(f"{ground_truth}: ground truth folder does not exist")
    gts = sorted(p for p in ground_truth.iterdir() if p.suffix.lower() == ".mat" and p.is_file())
    if not gts:
        raise ValueError(f"{ground_truth}: no ground-truth .mat files")
    return gts


def _named(items: list[str]) -> str:
    """The first few of `items`, comma-separated, then how many more."""
    more = f", ... ({len(items) - _NAMED} more)" if len(items) > _NAMED else ""
    return ", ".join(items[:_NAMED]) + more


def pair_files(predictions: Path, ground_truth: Path, subset: bool = False) -> tuple[list[ImagePair], list[Path]]:
    """One prediction per ground-truth `.mat`, by image id (see `prediction_id`), in the official
    (sorted) order. Every ground-truth image must have one, unless `subset`: then only those that
    do are paired (at least one must). Two files of one id are an error naming both.

    Returns the pairs and the prediction files that have no ground truth (ignored).
    """
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise ValueError(f"{predictions}: predictions folder does not exist")
    gts = ground_truth_files(ground_truth)
    by_id: dict[str, Path] = {}
    for p in sorted(predictions.iterdir()):
        if p.suffix.lower() in PREDICTION_SUFFIXES and p.is_file():
            key = prediction_id(p)
            if key in by_id:
                raise ValueError(f"{by_id[key]} and {p} are both predictions of image {key}: keep one")
            by_id[key] = p
    missing = [gt.stem for gt in gts if gt.stem not in by_id]
    pairs = [ImagePair(gt.stem, by_id.pop(gt.stem), gt) for gt in gts if gt.stem in by_id]
    if missing and not subset:
        raise ValueError(
            f"{predictions}: no prediction for {len(missing)} of {len(gts)} ground-truth images in {ground_truth}: "
            f"{_named(missing)} (expected <id>.png, <id>_edges.png, .npy or .mat; --subset scores only those present)"
        )
    if not pairs:
        raise ValueError(
            f"{predictions}: no prediction matches any of the {len(gts)} ground-truth images in {ground_truth}")
    return pairs, sorted(by_id.values())


def load_pair(pair: ImagePair) -> tuple[np.ndarray, list[np.ndarray]]:
    """Prediction (H, W) and annotations of one image, checked to agree in size."""
    annotations = read_ground_truth(pair.ground_truth)
    pred = read_prediction(pair.prediction)
    if pred.shape != annotations[0].shape:
        (h, w), (gh, gw) = pred.shape, annotations[0].shape
        raise ValueError(
            f"{pair.prediction}: prediction is {h}x{w} but ground truth {pair.ground_truth} is {gh}x{gw}"
        )
    return pred, annotations


@dataclass(frozen=True)
class _Job:
    pair: ImagePair
    config: BoundaryConfig


def _job_counts(job: _Job) -> np.ndarray:
    """(T, 4) counts of one image (`image_counts`, as the `evaluate` stage's EdgeMeter); module-level
    so that a worker process can run it."""
    pred, annotations = load_pair(job.pair)
    return image_counts(pred, annotations, job.config)


def _all_counts(jobs: list[_Job], workers: int, progress: bool) -> list[np.ndarray]:
    """Counts per image, in order; a pool of `workers` processes when workers > 1."""
    bar = dict(total=len(jobs), desc="evaluate-edges", unit="img", disable=not progress)
    if workers <= 1 or len(jobs) <= 1:
        return [_job_counts(j) for j in tqdm(jobs, **bar)]
    # spawn, not fork: the parent may hold threads (tqdm, numba, torch) that fork would copy
    # mid-flight; workers re-read files by path so only paths cross the process boundary.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(jobs))) as pool:
        return list(tqdm(pool.imap(_job_counts, jobs, chunksize=1), **bar))


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """Yield a temp folder inside `out`; on success move its files into `out`, on failure
    remove it, and `out` itself (and its parents) if this call created them."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: output path exists and is not a folder")
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield tmp
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:  # innermost first
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise
    tmp.rmdir()


def _write_official_files(result: BoundaryResult, folder: Path) -> None:
    ods, ois = result.ods, result.ois
    summary = (ods["threshold"], ods["recall"], ods["precision"], ods["f"])
    summary += (ois["recall"], ois["precision"], ois["f"], result.ap)
    (folder / "eval_bdry.txt").write_text(_SUMMARY_FMT % summary)
    best = enumerate(result.per_image, 1)
    images = [(i, r["threshold"], r["recall"], r["precision"], r["f"]) for i, r in best]
    (folder / "eval_bdry_img.txt").write_text("".join(_IMAGE_FMT % row for row in images))
    rows = zip(result.thresholds, result.recall, result.precision, result.f, strict=True)
    (folder / "eval_bdry_thr.txt").write_text("".join(_THRESHOLD_FMT % tuple(map(float, r)) for r in rows))


def write_official(result: BoundaryResult, out: Path) -> None:
    """eval_bdry.txt, eval_bdry_img.txt and eval_bdry_thr.txt in collect_eval_bdry.m's format,
    so tools that parse the official benchmark's output read ours unchanged."""
    with _staged(out) as tmp:
        _write_official_files(result, tmp)


def read_official(folder: Path) -> dict[str, np.ndarray]:
    """The three official files as arrays: summary (8,), images (N, 5), thresholds (T, 4)."""
    folder = Path(folder)
    arrays = {}
    layout = (
        ("summary", "eval_bdry.txt", 8),
        ("images", "eval_bdry_img.txt", 5),
        ("thresholds", "eval_bdry_thr.txt", 4),
    )
    for key, name, width in layout:
        try:
            arr = np.loadtxt(folder / name, ndmin=2)
        except (OSError, ValueError) as err:
            raise ValueError(f"{folder / name}: cannot parse ({_oneline(err)})") from None
        if arr.shape[1] != width:
            raise ValueError(f"{folder / name}: expected {width} columns, got {arr.shape[1]}")
        arrays[key] = arr[0] if key == "summary" else arr
    return arrays


def metrics_dict(result: BoundaryResult, names: list[str], config: BoundaryConfig) -> dict:
    """The JSON summary DVC tracks: headline figures, the protocol knobs, and per-image bests."""
    rows = zip(names, result.per_image, strict=True)
    per_image = [{"image": n, **{k: float(v) for k, v in r.items()}} for n, r in rows]
    return {
        "ods": result.ods["f"],
        "ois": result.ois["f"],
        "ap": result.ap,
        "r50": result.r50,
        "ods_threshold": result.ods["threshold"],
        "images": len(names),
        "thresholds": config.thresholds,
        "nms": config.nms,
        "thin": config.thin,
        "max_dist": config.max_dist,
        "per_image": per_image,
    }


def evaluate_directory(
    predictions: Path,
    ground_truth: Path,
    out: Path,
    config: BoundaryConfig,
    workers: int = 1,
    progress: bool = True,
    published: bool = False,
    subset: bool = False,
) -> BoundaryResult:
    """Benchmark a folder of edge maps against a folder of BSDS `.mat` ground truth, as `config`
    says (NMS first when `config.nms`).

    Writes the official eval_bdry*.txt files, metrics.json and pr_curve.png into `out`; with
    `published`, the PR plot also draws other detectors' published BSDS500 test curves. With
    `subset`, only the ground-truth images that have a prediction are scored (see `pair_files`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pairs, extra = pair_files(predictions, ground_truth, subset)
    if extra:
        log.warning("%d prediction file(s) in %s have no ground truth in %s and are ignored: %s", len(extra),
                    predictions, ground_truth, _named([p.name for p in extra]))
    for pair in pairs:  # every file checked before the slow part: fail in seconds, not hours
        load_pair(pair)
    counts = _all_counts([_Job(p, config) for p in pairs], workers, progress)
    result = collect(counts, thresholds_for(config.thresholds))
    metrics = metrics_dict(result, [p.name for p in pairs], config)
    with _staged(out) as tmp:
        _write_official_files(result, tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plot_pr({Path(predictions).name or "predictions": result}, tmp / "pr_curve.png",
                load_published() if published else None)
    return result

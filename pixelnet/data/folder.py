"""A user's own data, sharded like any benchmark: a folder of images with label maps and/or normals.

Layout (``data.folder.source``)::

    images/<split>/<name>.jpg|jpeg|png      RGB (grey and RGBA are converted; JPEG bytes are kept)
    labels/<split>/<name>.png               one-channel class ids (palette or grey), 255 = ignore
    normals/<split>/<name>.npy              (H, W, 3) float unit vectors, zero or non-finite = invalid
    normals/<split>/<name>.png              ... or the usual RGB encoding n = rgb / 127.5 - 1, (0, 0, 0) invalid
    classes.txt                             optional: one class name per line (id = line number)

``<split>`` is ``train`` and ``test`` (``val`` is accepted as the held-out split when there is no
``test``). Every image needs at least one target, and every target its image, of the same size.
`install` checks all of that, copies the files into the raw folder with their SHA-256 in
``dataset.json`` and writes nothing when anything is wrong.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pixelnet.atomic import atomic_dir
from pixelnet.data import fetch
from pixelnet.metrics.dense_io import read_normals

NAME = "folder"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_NUMERIC_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # one channel beyond 8 bits: scaled by read_image
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FolderConfig:
    source: str | None = None   # the folder (relative to the repo root); required when `folder` is in datasets

    def __post_init__(self) -> None:
        if self.source is not None and not str(self.source).strip():
            raise ValueError("source must be a folder path or null")


def _images(root: Path, split: str) -> dict[str, Path]:
    folder = root / "images" / split
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in found:
                raise ValueError(f"{p}: two images named {p.stem} ({found[p.stem].name} and {p.name})")
            found[p.stem] = p
    return found


def _target(root: Path, kind: str, split: str, stem: str) -> Path | None:
    suffixes = (".png",) if kind == "labels" else (".npy", ".png")
    hits = [root / kind / split / f"{stem}{s}" for s in suffixes if (root / kind / split / f"{stem}{s}").is_file()]
    if len(hits) > 1:
        raise ValueError(f"{hits[0]}: ambiguous, also {hits[1]}")
    return hits[0] if hits else None


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any single image PIL reads, as it is displayed; names the file on failure.

    EXIF orientation is applied (a phone's portrait JPEG comes out upright). Grey is repeated into
    three channels; alpha is dropped (the stored colour is kept, not composited on a background).
    Values beyond 8 bits, one rule per kind, the same for every image of a set:

    * 16-bit grey (mode I;16) is scaled by its full range, 65535 -> 255 (16-bit RGB PNGs PIL
      already reduces to 8 bits);
    * 32-bit integer grey (mode I): values up to 255 are used as they are, else scaled like 16-bit
      when they fit, else by their maximum; negative values become 0;
    * 32-bit float grey (mode F, e.g. a float TIFF): values in [0, 1] are scaled by 255, values in
      [0, 255] with a maximum above 1 are used as they are; negative, larger or non-finite values
      are refused (ValueError naming the file and the range found), as there is no safe guess.

    Multi-frame files (an animated GIF or PNG, a multi-page TIFF) are refused: which frame is
    meant is the user's call. An MPO (a camera JPEG carrying previews as extra frames) is read as
    its primary image, as every viewer shows it. Truncated or non-image files fail with one line.
    """
    frames, mode, arr = 1, "", np.zeros(0)
    # PIL warns before some failures (a truncated TIFF): held back, so that a failure is one line,
    # and passed on, naming the file, when the image reads after all (e.g. "Corrupt EXIF data").
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as im:
                frames = 1 if im.format == "MPO" else getattr(im, "n_frames", 1)
                if frames == 1:
                    im = ImageOps.exif_transpose(im)
                    mode = im.mode
                    arr = np.array(im if mode in _NUMERIC_GREY else im.convert("RGB"))  # (H, W) or (H, W, 3), writable
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{path}: not a readable image ({reason})") from err
    for w in caught:
        warnings.warn(f"{path}: {w.message}", w.category, stacklevel=2)
    if frames > 1:
        raise ValueError(f"{path}: {frames} frames; pixelnet reads single images (extract the frame you want first)")
    if mode not in _NUMERIC_GREY:
        return arr  # (H, W, 3) uint8
    arr = arr.astype(np.float64)  # (H, W)
    if mode == "F":
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: float image with {int((~np.isfinite(arr)).sum())} non-finite pixels (NaN or inf); "
                             f"pixelnet reads float images in [0, 1] (scaled by 255) or [0, 255]")
        lo, top = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0 or top > 255:
            raise ValueError(f"{path}: float image with values in [{lo:g}, {top:g}]; pixelnet reads float images "
                             f"in [0, 1] (scaled by 255) or [0, 255] (used as they are)")
        if top <= 1:
            arr = arr * 255
    else:
        top = float(arr.max(initial=0))
        if mode != "I" or top > 255:
            arr = arr / (65535.0 if top <= 65535 else top) * 255
    arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return np.repeat(arr[..., None], 3, axis=2)  # (H, W, 3)


def read_label_png(path: Path) -> np.ndarray:
    """(H, W) uint8 class ids from a one-channel PNG (palette indices or grey)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I;16", "I", "1"):
                raise ValueError(f"{path}: labels must be a one-channel PNG of class ids, got mode {im.mode}")
            arr = np.asarray(im).astype(np.int64)
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"{path}: class ids must lie in 0..255 (255 = ignore), found {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def read_normal_map(path: Path) -> np.ndarray:
    """(H, W, 3) float32 unit normals with invalid pixels as (0, 0, 0), from .npy or an RGB PNG."""
    if path.suffix.lower() == ".npy":
        n = read_normals(path).astype(np.float64)  # (H, W, 3)
        invalid = ~np.isfinite(n).all(-1)
    else:
        rgb = read_image(path).astype(np.float64)
        invalid = (rgb == 0).all(-1)
        n = rgb / 127.5 - 1.0
    n[invalid] = 0
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    invalid |= length[..., 0] < 1e-6
    n = np.divide(n, length, out=np.zeros_like(n), where=length > 1e-6)
    n[invalid] = 0
    return n.astype(np.float32)


def _classes(root: Path) -> list[str]:
    path = root / "classes.txt"
    if not path.is_file():
        return []
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) > 255:
        raise ValueError(f"{path}: at most 255 classes (255 is ignore), got {len(names)}")
    return names


def _check_split(root: Path, split: str) -> list[dict]:
    """The split's items, checked: image readable, every target readable and of the image's size."""
    items = []
    images = _images(root, split)
    for kind in ("labels", "normals"):
        folder = root / kind / split
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file() and p.stem not in images:
                    raise ValueError(f"{p}: no image {split}/{p.stem}.(jpg|png) for this target")
    for stem, image in images.items():
        label, normal = _target(root, "labels", split, stem), _target(root, "normals", split, stem)
        if label is None and normal is None:
            raise ValueError(f"{image}: no target (labels/{split}/{stem}.png or normals/{split}/{stem}.npy|png)")
        h, w = read_image(image).shape[:2]
        for path, arr in ((label, label and read_label_png(label)), (normal, normal and read_normal_map(normal))):
            if path is not None and arr.shape[:2] != (h, w):
                raise ValueError(f"{path}: target is {arr.shape[0]}x{arr.shape[1]} but its image {image} is {h}x{w}")
        items.append({"stem": stem, "image": image, "label": label, "normal": normal})
    return items


def install(config: FolderConfig, out_dir: Path, progress: bool = True) -> dict:
    """Check the folder and copy it into out_dir with dataset.json (counts, classes, SHA-256 per file)."""
    if config.source is None:
        raise ValueError("source: set data.folder.source to the folder holding images/, labels/ and/or normals/")
    root = Path(config.source)
    if not root.is_dir():
        raise FileNotFoundError(f"data.folder.source: {root} is not a folder")
    splits = {s: _check_split(root, s) for s in SPLITS}
    splits = {s: items for s, items in splits.items() if items}
    if "train" not in splits:
        raise ValueError(f"{root}: no training images (images/train/*.jpg|png)")
    if "test" not in splits and "val" not in splits:
        raise ValueError(f"{root}: no held-out images (images/test/ or images/val/)")
    classes = _classes(root)
    labels = [np.asarray(read_label_png(i["label"])) for items in splits.values() for i in items if i["label"]]
    if labels and classes:
        top = max(int(x[x != 255].max(initial=0)) for x in labels)
        if top >= len(classes):
            raise ValueError(f"{root / 'classes.txt'}: {len(classes)} classes but a label map holds id {top}")
    if labels and not classes:
        classes = [str(i) for i in range(max(int(x[x != 255].max(initial=0)) for x in labels) + 1)]
    files: dict[str, str] = {}
    with atomic_dir(out_dir) as tmp:
        for items in splits.values():
            for item in items:
                for key in ("image", "label", "normal"):
                    if item[key] is not None:
                        rel = item[key].relative_to(root).as_posix()
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(item[key], tmp / rel)
                        files[rel] = hashlib.sha256((tmp / rel).read_bytes()).hexdigest()
        if (root / "classes.txt").is_file():
            shutil.copyfile(root / "classes.txt", tmp / "classes.txt")
        info = {"name": NAME, "source": str(root), "classes": classes,
                "counts": {s: len(items) for s, items in splits.items()},
                "targets": sorted({k for items in splits.values() for i in items for k in ("label", "normal") if i[k]}),
                "sha256": files}
        fetch.write_meta(tmp, info)
    return info


def read_split(raw_dir: Path, split: str) -> Iterator[dict]:
    """Records of one split of an installed folder, by sorted name."""
    raw_dir = Path(raw_dir)
    for item in _check_split(raw_dir, split):
        record: dict = {"key": f"{NAME}-{split}-{item['stem']}", "image": read_image(item["image"]),
                        "meta": {"annotators": 1, "dataset": NAME, "split": split}}
        if item["image"].suffix.lower() in (".jpg", ".jpeg"):
            data = item["image"].read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                plain = im.mode == "RGB" and im.getexif().get(0x0112, 1) == 1  # no EXIF rotation
            if plain:
                record["image_jpeg"] = data  # stored as published when it decodes to exactly this image
        if item["label"] is not None:
            record["label"] = read_label_png(item["label"])
        if item["normal"] is not None:
            record["normal"] = read_normal_map(item["normal"])
        yield record

"""The one shard format: WebDataset tar files plus a manifest, for every dataset and task.

A sample is a dict ``Record`` with a ``key`` and any of these fields:

========== ============================ ==================================================
field      member in the tar            array
========== ============================ ==================================================
image      ``<key>.image.png|jpg``      (H, W, 3) uint8 RGB (a record's ``image_jpeg``
                                        bytes are stored as published, else PNG)
label      ``<key>.label.png``          (H, W) uint8 class id, 255 = ignore
normal     ``<key>.normal.npy``         (H, W, 3) float32 unit vectors, (0, 0, 0) = invalid
edge       ``<key>.edge.png``           (H, W) uint8: how many annotators marked a boundary
boundaries ``<key>.boundaries.npz``     (A, H, W) bool: every annotator's boundary map, for
                                        the benchmark (``bits`` = np.packbits, ``shape``)
meta       ``<key>.meta.json``          {"height", "width", "annotators", "dataset", "split"}
========== ============================ ==================================================

``shard/<split>-NNNNNN.tar`` files sit beside ``manifest.json`` (counts, image sizes, class
histogram, per-shard SHA-256). Writing goes to a temporary folder renamed into place at the end,
so an interrupted ``shard`` never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

from pixelnet.atomic import atomic_dir

Record = dict[str, Any]

FIELDS = ("image", "label", "normal", "edge", "boundaries")


class ShardError(ValueError):
    """A shard or a sample inside it cannot be read; the message names the shard and key."""


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _packed(array: np.ndarray) -> bytes:
    """(A, H, W) bool -> npz of its packed bits and shape: 1 bit a pixel, then deflated (maps are sparse)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, bits=np.packbits(array, axis=None), shape=np.asarray(array.shape, dtype=np.int64))
    return buf.getvalue()


def _unpacked(raw: bytes) -> np.ndarray:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        bits, shape = npz["bits"], tuple(int(n) for n in npz["shape"])
    size = int(np.prod(shape))
    if len(shape) != 3 or bits.dtype != np.uint8 or len(bits) != (size + 7) // 8:
        raise ValueError(f"boundaries: {len(bits)} packed bytes do not hold shape {shape}")
    return np.unpackbits(bits, count=size).astype(bool).reshape(shape)  # (A, H, W)


def encode(record: Record) -> dict[str, Any]:
    """Record -> WebDataset sample dict of bytes, checking shapes and dtypes on the way in."""
    key = record["key"]
    image = record["image"]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ShardError(f"{key}: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    sample: dict[str, Any] = {"__key__": key}
    sample["image.jpg" if "image_jpeg" in record else "image.png"] = record.get("image_jpeg") or _png(image)
    for name in ("label", "edge"):
        if name in record:
            arr = record[name]
            if arr.shape != (h, w) or arr.dtype != np.uint8:
                raise ShardError(f"{key}: {name} must be ({h}, {w}) uint8, got {arr.shape} {arr.dtype}")
            sample[f"{name}.png"] = _png(arr)
    if "normal" in record:
        arr = record["normal"]
        if arr.shape != (h, w, 3):
            raise ShardError(f"{key}: normal must be ({h}, {w}, 3), got {arr.shape}")
        sample["normal.npy"] = _npy(arr.astype(np.float32))
    if "boundaries" in record:
        arr = record["boundaries"]
        if arr.ndim != 3 or arr.shape[1:] != (h, w) or arr.dtype != np.bool_ or len(arr) == 0:
            raise ShardError(f"{key}: boundaries must be (A, {h}, {w}) bool with A >= 1, got {arr.shape} {arr.dtype}")
        annotators = record.get("meta", {}).get("annotators", len(arr))
        if annotators != len(arr):
            raise ShardError(f"{key}: meta says {annotators} annotators, boundaries hold {len(arr)}")
        sample["boundaries.npz"] = _packed(arr)
    meta = {"height": h, "width": w, **record.get("meta", {})}
    sample["meta.json"] = json.dumps(meta).encode()
    return sample


def decode(sample: dict[str, Any], source: str = "", fields: Collection[str] | None = None) -> Record:
    """WebDataset sample of bytes -> Record; raises ShardError naming the shard and key.

    `fields` names the targets to decode (label, edge, normal, boundaries; None: all of them): the
    training loader asks for its task's only, which saves decoding the others.
    """
    wanted = (lambda name: True) if fields is None else (lambda name: name in fields)
    key = sample.get("__key__", "?")
    where = f"{source or sample.get('__url__', '?')}: {key}"
    try:
        record: Record = {"key": key, "meta": json.loads(sample["meta.json"])}
        raw = sample.get("image.png") or sample.get("image.jpg")
        if raw is None:
            raise ShardError(f"{where}: no image member")
        image = Image.open(io.BytesIO(raw))
        record["image"] = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        for name in ("label", "edge"):
            if f"{name}.png" in sample and wanted(name):
                record[name] = np.asarray(Image.open(io.BytesIO(sample[f"{name}.png"])))
        if "normal.npy" in sample and wanted("normal"):
            record["normal"] = np.load(io.BytesIO(sample["normal.npy"]), allow_pickle=False)
        if "boundaries.npz" in sample and wanted("boundaries"):
            record["boundaries"] = _unpacked(sample["boundaries.npz"])
    except ShardError:
        raise
    except (OSError, ValueError, KeyError, SyntaxError, json.JSONDecodeError, zipfile.BadZipFile) as err:
        # PIL reports a PNG chunk with a bad CRC as SyntaxError("broken PNG file")
        raise ShardError(f"{where}: cannot decode sample ({err})") from err
    h, w = record["image"].shape[:2]
    for name in ("label", "edge", "normal"):
        if name in record and record[name].shape[:2] != (h, w):
            raise ShardError(f"{where}: {name} is {record[name].shape[:2]}, image is {(h, w)}")
    if "boundaries" in record and record["boundaries"].shape[1:] != (h, w):
        raise ShardError(f"{where}: boundaries are {record['boundaries'].shape[1:]}, image is {(h, w)}")
    return record


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shards(
    splits: dict[str, Iterable[Record]],
    out_dir: Path,
    dataset: str,
    classes: list[str],
    shard_size: int = 100,
) -> dict:
    """Write every split's records into out_dir/<split>-NNNNNN.tar and out_dir/manifest.json.

    The whole folder is built under a temporary name and renamed into place, replacing any old one.
    """
    if shard_size < 1:
        raise ValueError(f"data.shard_size must be >= 1, got {shard_size}")
    manifest: dict[str, Any] = {"dataset": dataset, "classes": classes, "format": 1, "splits": {}}
    with atomic_dir(Path(out_dir)) as tmp:
        for split, records in splits.items():
            manifest["splits"][split] = _write_split(records, tmp, split, len(classes), shard_size)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _write_split(records: Iterable[Record], folder: Path, split: str, num_classes: int, shard_size: int) -> dict:
    sizes: Counter[str] = Counter()
    histogram = np.zeros(max(num_classes, 1), dtype=np.int64)
    fields: set[str] = set()
    shards: list[dict[str, Any]] = []
    writer = None
    count = 0
    seen: set[str] = set()
    for record in records:
        if record["key"] in seen:
            raise ShardError(f"duplicate key {record['key']} in split {split}")
        seen.add(record["key"])
        if count % shard_size == 0:
            if writer is not None:
                writer.close()
            name = f"{split}-{len(shards):06d}.tar"
            shards.append({"name": name, "count": 0, "keys": []})
            writer = wds.TarWriter(str(folder / name), mtime=0)  # fixed mtime: the same records give the same bytes
        writer.write(encode(record))
        shards[-1]["count"] += 1
        shards[-1]["keys"].append(record["key"])  # lets training name the samples a damaged shard loses
        count += 1
        h, w = record["image"].shape[:2]
        sizes[f"{h}x{w}"] += 1
        fields.update(f for f in FIELDS if f in record)
        if "label" in record:
            lab = record["label"]
            histogram += np.bincount(lab[lab < num_classes].ravel(), minlength=len(histogram))[: len(histogram)]
    if writer is not None:
        writer.close()
    for shard in shards:
        shard["sha256"] = _sha256(folder / shard["name"])
    return {
        "count": count,
        "shards": shards,
        "fields": sorted(fields),
        "image_sizes": dict(sizes),
        "class_histogram": histogram.tolist(),
    }


def read_manifest(shard_dir: Path) -> dict:
    path = Path(shard_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no shard manifest (run the shard stage first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ShardError(f"{path}: not valid JSON ({err})") from err


def shard_paths(shard_dir: Path, split: str) -> list[Path]:
    """The tar files of one split, in order, as the manifest lists them."""
    manifest = read_manifest(shard_dir)
    if split not in manifest["splits"]:
        raise ShardError(f"{shard_dir}: no split {split!r}; have {sorted(manifest['splits'])}")
    return [Path(shard_dir) / s["name"] for s in manifest["splits"][split]["shards"]]


def read_shards(paths: list[Path]) -> Iterator[Record]:
    """Every record of the given shards in order; any unreadable shard or sample raises ShardError."""
    for path in paths:
        if not Path(path).is_file():
            raise ShardError(f"{path}: shard file is missing")
        dataset = wds.WebDataset(str(path), shardshuffle=False, empty_check=False, handler=wds.reraise_exception)
        try:
            for sample in dataset:
                yield decode(sample, str(path))
        except ShardError:
            raise
        except (OSError, ValueError, KeyError) as err:
            raise ShardError(f"{path}: unreadable shard ({err})") from err

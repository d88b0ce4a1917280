"""BSDS500 (Arbeláez et al., 2011) and HED's augmented training set (Xie & Tu, 2015) as Records.

``install`` brings the data in from the official archive by URL, a local copy of that archive, or a
folder laid out as inside it, and copies only what the pipeline reads into a raw folder::

    <raw>/images/<split>/<id>.jpg               the published JPEG bytes
    <raw>/groundTruth/<split>/<id>.mat          every annotator's Segmentation and Boundaries
    <raw>/hed/train_pair.lst, <raw>/hed/...     optional: the HED-BSDS pairs of those ids
    <raw>/dataset.json                          counts, classes, origin, digests

``read_split`` and ``read_hed`` turn that folder into Records for the shard stage.

HED-BSDS ground truth is a grey PNG per augmented image whose value is the fraction of annotators
who marked the pixel, resampled with the image (rotated, flipped, rescaled). Our ``edge`` field
counts annotators, so a HED pixel becomes ``round(f * A)`` with A the annotator count of the source
image (from its BSDS .mat), and ``meta.annotators = A``. The consensus rule (``edge >= min(k, A)``)
then means the same on HED pairs as on BSDS images: on the un-augmented pair the count is exactly
the BSDS count, and a pixel smeared by resampling counts as positive when the nearest whole number
of annotators reaches the consensus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixelnet.atomic import atomic_dir
from pixelnet.data import fetch
from pixelnet.data.images import decode_rgb
from pixelnet.data.shards import Record
from pixelnet.metrics.edges_io import read_ground_truth

OFFICIAL_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
OFFICIAL_MD5 = "0b17383ff0b21fe43d2f28e624203169"  # one source; no SHA-256 is published
SPLITS = ("train", "val", "test")
CLASSES = ("background", "boundary")
NAME = "bsds500"

# <prefix>images/<split>/<id>.jpg and <prefix>groundTruth/<split>/<id>.mat, whatever the prefix
# (BSR/BSDS500/data/ inside the archive, BSDS500/data/ below a BSR folder, nothing below data/).
_MEMBER = re.compile(r"^(.*?)(images|groundTruth)/(train|val|test)/([A-Za-z0-9_-]+)\.(jpg|mat)$")
_HED_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


@dataclass(frozen=True)
class BsdsConfig:
    source: str | None = None               # local archive or extracted folder; None = download `url`
    url: str = OFFICIAL_URL
    sha256: str | None = None               # verified when set
    md5: str | None = OFFICIAL_MD5          # verified when set
    train_splits: tuple[str, ...] = ("train", "val")  # the edge literature trains on train+val
    limit: int = 0                          # at most this many images per split (sorted ids); 0 = all
    hed_archive: str | None = None          # HED-BSDS.tar (URL, archive or folder): the training set
    hed_sha256: str | None = None           # verified when set (none is published)
    eval_split: str = "test"                # the held-out split the shards carry: test, or val while
                                            # choosing settings (train on train, score val; test untouched)

    def __post_init__(self) -> None:
        if not self.train_splits:
            raise ValueError("train_splits must name at least one of train, val")
        for split in self.train_splits:
            if split == "test":
                raise ValueError("train_splits: test is the held-out evaluation split; use train and/or val")
            if split not in SPLITS:
                raise ValueError(f"train_splits: unknown split {split!r}; allowed: train, val")
        if len(set(self.train_splits)) != len(self.train_splits):
            raise ValueError(f"train_splits: repeated split in {list(self.train_splits)}")
        if self.eval_split not in ("test", "val"):
            raise ValueError(f"eval_split must be test or val, got {self.eval_split!r}")
        if self.eval_split in self.train_splits:
            raise ValueError(f"eval_split: {self.eval_split} is also in train_splits {list(self.train_splits)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"limit must be an integer >= 0, got {self.limit!r}")
        if not self.url:
            raise ValueError("url must not be empty")
        for name, algorithm in (("sha256", "sha256"), ("md5", "md5"), ("hed_sha256", "sha256")):
            try:
                fetch.check_digest(algorithm, getattr(self, name))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None


# ----------------------------------------------------------------------------- install


def _select(origin: fetch.Archive, limit: int) -> tuple[str, dict[str, list[str]]]:
    """The common prefix of the BSDS500 layout in `origin`, and the sorted ids per split."""
    found: dict[str, dict[tuple[str, str], set[str]]] = {}
    for name in origin.names:
        m = _MEMBER.match(name)
        if m:
            prefix, kind, split, stem, _ = m.groups()
            found.setdefault(prefix, {}).setdefault((kind, split), set()).add(stem)
    if not found:
        raise FileNotFoundError(
            f"{origin.path}: no BSDS500 layout found (expected [BSR/]BSDS500/data/{{images,groundTruth}}/{{train,val,test}}/)"
        )
    if len(found) > 1:
        raise ValueError(f"{origin.path}: several BSDS500 layouts inside ({', '.join(sorted(p or '.' for p in found))})")
    prefix, groups = next(iter(found.items()))
    ids: dict[str, list[str]] = {}
    for split in SPLITS:
        images, truths = groups.get(("images", split), set()), groups.get(("groundTruth", split), set())
        if not images:
            raise FileNotFoundError(f"{origin.path}: {prefix}images/{split}/ holds no .jpg")
        for stem in sorted(images ^ truths):
            missing = f"groundTruth/{split}/{stem}.mat" if stem in images else f"images/{split}/{stem}.jpg"
            raise FileNotFoundError(f"{origin.path}: {prefix}{missing} is missing")
        ids[split] = sorted(images)[: limit or None]
    return prefix, ids


def _checksums(origin: fetch.Archive, prefix: str) -> dict[str, str]:
    """The folder's own SHA256SUMS (name -> digest), if it ships one ('<hex>  ./images/train/x.jpg')."""
    name = f"{prefix}SHA256SUMS"
    if name not in origin.names:
        return {}
    sums: dict[str, str] = {}
    for line in origin.read(name).decode().splitlines():
        if line.strip():
            digest, _, path = line.strip().partition("  ")
            sums[prefix + path.strip().removeprefix("./")] = digest
    return sums


def install(config: BsdsConfig, out_dir: Path, progress: bool = True) -> dict:
    """Copy BSDS500 (and HED-BSDS when configured) into out_dir atomically; returns dataset.json's dict."""
    location = config.source if config.source is not None else config.url
    with atomic_dir(Path(out_dir)) as tmp:
        origin, provenance = fetch.bring_archive(location, tmp, "source", {"sha256": config.sha256, "md5": config.md5},
                                                 progress)
        with origin:
            prefix, ids = _select(origin, config.limit)
            selected = {}
            for split, stems in ids.items():
                for stem in stems:
                    selected[f"{prefix}images/{split}/{stem}.jpg"] = tmp / "images" / split / f"{stem}.jpg"
                    selected[f"{prefix}groundTruth/{split}/{stem}.mat"] = tmp / "groundTruth" / split / f"{stem}.mat"
            copied = origin.copy(selected, "bsds500", progress)
            sums = _checksums(origin, prefix)
            for name, digest in copied.items():
                if sums and sums.get(name) != digest:
                    raise fetch.FetchError(f"{origin.path}/{name}: sha256 {digest} does not match SHA256SUMS ({sums.get(name, 'not listed')})")
            provenance["files_verified"] = len(copied) if sums else 0
        hed = None
        if config.hed_archive is not None:
            trainval = {stem for split in ("train", "val") for stem in ids[split]}
            hed = _install_hed(config, tmp, trainval, progress)
        fetch.remove_downloads(tmp)  # a downloaded archive: extracted, no longer needed
        meta = {
            "name": NAME,
            "classes": list(CLASSES),
            "counts": {split: len(stems) for split, stems in ids.items()},
            "limit": config.limit,
            "source": provenance,
            "hed": hed,
        }
        fetch.write_meta(tmp, meta)
    return meta


def _install_hed(config: BsdsConfig, tmp: Path, trainval: set[str], progress: bool) -> dict:
    """Copy the HED-BSDS pairs whose image is one of `trainval` into tmp/hed, with their own list."""
    origin, provenance = fetch.bring_archive(config.hed_archive, tmp, "hed_archive", {"sha256": config.hed_sha256},
                                             progress)
    with origin:
        lists = [n for n in origin.names if n.rsplit("/", 1)[-1] == "train_pair.lst"]
        if len(lists) != 1:
            raise FileNotFoundError(f"{origin.path}: expected one HED-BSDS/train_pair.lst, found {lists or 'none'}")
        list_name = lists[0]
        prefix = list_name[: -len("train_pair.lst")]
        pairs = _parse_pairs(origin.read(list_name).decode(), f"{origin.path}/{list_name}")
        kept = [(img, gt) for img, gt in pairs if Path(img).stem in trainval]
        selected: dict[str, Path] = {}
        for img, gt in kept:
            for rel in (img, gt):
                if prefix + rel not in origin.names:
                    raise FileNotFoundError(f"{origin.path}: {prefix}{rel} (listed in {list_name}) is missing")
                selected[prefix + rel] = tmp / "hed" / rel
        origin.copy(selected, "hed-bsds", progress)
    (tmp / "hed").mkdir(exist_ok=True)
    (tmp / "hed" / "train_pair.lst").write_text("".join(f"{img} {gt}\n" for img, gt in kept))
    return {**provenance, "pairs_listed": len(pairs), "pairs": len(kept)}


def _parse_pairs(text: str, where: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not all(_HED_PATH.match(p) and ".." not in p.split("/") for p in parts):
            raise ValueError(f"{where}:{number}: expected 'image_path gt_path' (relative), got {line!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


# ----------------------------------------------------------------------------- read


def read_boundaries(path: Path) -> np.ndarray:
    """(A, H, W) bool: every annotator's boundary map from a BSDS ground-truth .mat."""
    return np.stack(read_ground_truth(Path(path)))  # (A, H, W)


def read_split(raw_dir: Path, split: str) -> Iterator[Record]:
    """Records of one split in sorted id order: image (+ its JPEG bytes), edge count, boundaries."""
    if split not in SPLITS:
        raise ValueError(f"unknown BSDS500 split {split!r}; allowed: {', '.join(SPLITS)}")
    raw_dir = Path(raw_dir)
    expected = int(fetch.read_meta(raw_dir, NAME, lambda meta: int(meta["counts"][split]))["counts"][split])
    images = sorted((raw_dir / "images" / split).glob("*.jpg"))
    if len(images) != expected:
        raise ValueError(f"{raw_dir / 'images' / split}: {len(images)} images, but dataset.json says {expected}")
    for path in images:
        jpeg = path.read_bytes()
        image = decode_rgb(jpeg, path)
        mat = raw_dir / "groundTruth" / split / f"{path.stem}.mat"
        if not mat.is_file():
            raise FileNotFoundError(f"{mat}: not found")
        boundaries = read_boundaries(mat)  # (A, H, W)
        if boundaries.shape[1:] != image.shape[:2]:
            raise ValueError(f"{mat}: boundaries are {boundaries.shape[1:]}, image {path.name} is {image.shape[:2]}")
        yield {
            "key": f"{split}-{path.stem}",
            "image": image,
            "image_jpeg": jpeg,
            "edge": boundaries.sum(axis=0, dtype=np.uint8),  # (H, W) annotators per pixel
            "boundaries": boundaries,
            "meta": {"annotators": len(boundaries), "dataset": NAME, "split": split, "id": path.stem},
        }


def split_ids(raw_dir: Path, splits: tuple[str, ...]) -> set[str]:
    """The image ids of the given splits in a raw folder."""
    return {p.stem for split in splits for p in (Path(raw_dir) / "images" / split).glob("*.jpg")}


def annotator_counts(raw_dir: Path, splits: tuple[str, ...]) -> dict[str, int]:
    """{id: number of annotators} for every image of the given splits."""
    return {
        mat.stem: len(read_boundaries(mat))
        for split in splits
        for mat in sorted((Path(raw_dir) / "groundTruth" / split).glob("*.mat"))
    }


def hed_pair_count(raw_dir: Path, ids: set[str]) -> int:
    """How many HED pairs in the raw folder belong to the given image ids."""
    pairs = _parse_pairs((Path(raw_dir) / "hed" / "train_pair.lst").read_text(), str(raw_dir))
    return sum(Path(img).stem in ids for img, _ in pairs)


def hed_edge_count(grey: np.ndarray, annotators: int) -> np.ndarray:
    """HED's consensus fraction (uint8 grey, 255 = every annotator) -> nearest annotator count."""
    count = np.rint(grey.astype(np.float32) * (annotators / 255.0))  # (H, W)
    return np.clip(count, 0, annotators).astype(np.uint8)


def read_hed(raw_dir: Path, annotators: dict[str, int]) -> Iterator[Record]:
    """HED-BSDS pairs whose source image id is in `annotators`, in list order (see the module doc)."""
    hed = Path(raw_dir) / "hed"
    pairs = _parse_pairs((hed / "train_pair.lst").read_text(), str(hed / "train_pair.lst"))
    for img, gt in pairs:
        stem = Path(img).stem
        if stem not in annotators:
            continue
        jpeg = (hed / img).read_bytes()
        image = decode_rgb(jpeg, hed / img)
        try:
            with Image.open(hed / gt) as im:
                if im.mode not in ("L", "RGB", "RGBA", "LA"):
                    raise ValueError(f"mode {im.mode}, expected 8-bit grey")
                grey = np.asarray(im.convert("L"))  # (H, W)
        except (OSError, ValueError) as err:
            raise ValueError(f"{hed / gt}: unreadable HED ground truth ({err})") from err
        if grey.shape != image.shape[:2]:
            raise ValueError(f"{hed / gt}: {grey.shape}, but {img} is {image.shape[:2]}")
        key = "hed-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(Path(img).with_suffix("")).replace(".", "p").replace("/", "-"))
        a = annotators[stem]
        yield {
            "key": key,
            "image": image,
            "image_jpeg": jpeg,
            "edge": hed_edge_count(grey, a),
            "meta": {"annotators": a, "dataset": NAME, "split": "hed", "id": stem},
        }


# ----------------------------------------------------------------------------- what `shard` reads


def _use_hed(config: BsdsConfig, raw_dir: Path, info: dict) -> bool:
    if config.hed_archive is not None and not info.get("hed"):
        raise ValueError(f"data.bsds500.hed_archive is set but {raw_dir} holds no HED-BSDS pairs (re-run download)")
    return config.hed_archive is not None


def shard_counts(config: BsdsConfig, raw_dir: Path, info: dict) -> dict[str, int]:
    """Images per output split: train (train_splits, or their HED pairs) and the held-out eval_split."""
    if _use_hed(config, raw_dir, info):
        train = hed_pair_count(raw_dir, split_ids(raw_dir, config.train_splits))
    else:
        train = sum(int(info["counts"][s]) for s in config.train_splits)
    return {"train": train, config.eval_split: int(info["counts"][config.eval_split])}


def shard_records(config: BsdsConfig, raw_dir: Path, info: dict, split: str) -> Iterator[Record]:
    """The Records of one output split (train: train_splits or HED-BSDS; the held-out eval_split as it is)."""
    if split == config.eval_split:
        yield from read_split(raw_dir, split)
    elif _use_hed(config, raw_dir, info):
        yield from read_hed(raw_dir, annotator_counts(raw_dir, config.train_splits))
    else:
        for s in config.train_splits:
            yield from read_split(raw_dir, s)

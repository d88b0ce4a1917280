"""PASCAL-Context (Mottaghi et al., 2014) and PASCAL VOC 2012 (+ SBD, Hariharan et al., 2011) as Records.

``install_context`` and ``install_voc2012`` bring the published files in (URL, local archive or
extracted folder; checksums verified when known) and copy what the reader needs, as published, into
a raw folder built atomically::

    <raw>/images/<id>.jpg          the published JPEG bytes
    <raw>/labels/<id>.mat          pascal_context: the 459-class LabelMap, as published
    <raw>/labels.txt               pascal_context: "id: name" for the 459 classes, as published
    <raw>/voc/<id>.png             voc2012: SegmentationClass palette PNG, as published
    <raw>/sbd/<id>.mat             voc2012 with SBD: GTcls of the train_aug images VOC does not label
    <raw>/splits/{train,val}.txt   the image ids of each split, one per line, in reading order
    <raw>/dataset.json             name, classes, counts, the label protocol, provenance

One ``read_split(raw_dir, split)`` serves both datasets (it dispatches on dataset.json's name) and
yields ``{"key": "<dataset>-<split>-<id>", "image", "image_jpeg", "label", "meta"}`` in id order.

Label protocols, and where they come from
-----------------------------------------
PASCAL-Context, 59 classes (``classes=59``). The class set is the dataset site's 59_labels.txt (not
readable here: its names are taken from mmsegmentation's PascalContextDataset59 and FCN's loader,
which agree). It is a fixed list, not "the 59 most frequent" recomputed: by the site's image counts
"pole" (1,555 images) is out and "keyboard" (140) is in. The 459 -> 59 reduction is by class NAME
through the published labels.txt, every other class (including "unknown", 3,734 images) and id 0
becoming background -- the rule of FCN's reference loader
(shelhamer/fcn.berkeleyvision.org, pascalcontext_layers.py), which also documents that 59_labels.txt
spells three names differently from labels.txt (diningtable/table, bedcloth/bedclothes,
clothes/cloth). Class k (1..59) is the k-th of the 59 by labels.txt id, i.e. alphabetical: the order
and the ids of mmsegmentation's converter (tools/dataset_converters/pascal_context.py, ``_mapping``)
and of its PascalContextDataset / PascalContextDataset59 class tuples. mmsegmentation derives its
masks from the Detail API's trainval_merged.json, which we do not read; this module reads the
original .mat LabelMaps. 59_labels.txt's own line order may differ (VOC's 20 first); order does not
change any metric, and a supplied 59_labels.txt is checked by its set of names only.

Background. ``background="class"`` (default) keeps background as label 0 of 60, a class like the
others: FCN's PASCAL-Context nets have 60 outputs and its loader never emits 255, so background is
trained (and, in FCN's scoring, averaged into mean IU over all outputs); PixelNet's Table 7 compares
with FCN-8s under that 59 + background protocol, and mmsegmentation's PascalContextDataset documents
the same ("0 stands for background, which is included in 60 categories"). ``background="ignore"``
is mmsegmentation's PascalContextDataset59 (``reduce_zero_label=True``): background -> 255, the
classes become 0..58.

PASCAL-Context, 33 classes (``classes=33``): the dataset site's 33_labels.txt -- VOC's 20 classes in
VOC order, then sky, grass, ground, road, building, tree, water, mountain, wall, floor, track,
keyboard, ceiling -- read from a mirror of that site (github.com/vietjtnguyen/pascal-regions-website,
33_labels.txt; other repositories download it from cs.stanford.edu/~roozbeh/pascal-context/). No
checksum for it is known. Its classes keep that file's order; everything else is background, with
the same ``background`` rule. All 33 are among the 59 (diningtable is labels.txt's "table").

Splits: PASCAL-Context train/val are VOC2010's ImageSets/Main/{train,val}.txt (4,998 / 5,105
images, all annotated in trainval.tar.gz), as FCN's loader reads them.

VOC 2012: SegmentationClass PNGs are palette images whose pixel VALUES are the class ids (0..20,
255 = border/ignore); the palette indices are read, never the colours. With SBD, train is
"train_aug": SBD train + SBD val + VOC train, minus every VOC2012 val image (10,582 ids with the
real data), as in mmsegmentation's tools/dataset_converters/voc_aug.py; an image of VOC train keeps
its VOC PNG (with its 255 borders), the others use SBD's GTcls.Segmentation. val is always VOC2012
val (1,449).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from scipy.io.matlab import MatReadError

from pixelnet.atomic import atomic_dir
from pixelnet.data import fetch
from pixelnet.data.images import decode_rgb
from pixelnet.data.shards import Record

CONTEXT = "pascal_context"
VOC = "voc2012"
SPLITS = ("train", "val")
IGNORE = 255

VOC2010_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar"
VOC2010_MD5 = "da459979d0c395079b5c75ee67908abb"
CONTEXT_URL = "https://www.cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz"
CONTEXT_MD5 = "df034edb2c12aa7d33b42b20bb1796e3"  # the dataset page (as mirrored) and one repository
LABELS59_MD5 = "993901f2d930cc038c406845f08fa082"  # 59_labels.txt; one source
VOC2012_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC2012_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
SBD_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"
SBD_MD5 = "82b4d87ceb2ed10f6038a1cba92111cb"

# The 59 classes as (name in labels.txt, id in labels.txt); label k is the k-th (see the module doc).
CONTEXT59 = (
    ("aeroplane", 2), ("bag", 9), ("bed", 18), ("bedclothes", 19), ("bench", 22), ("bicycle", 23),
    ("bird", 25), ("boat", 31), ("book", 33), ("bottle", 34), ("building", 44), ("bus", 45),
    ("cabinet", 46), ("car", 59), ("cat", 65), ("ceiling", 68), ("chair", 72), ("cloth", 80),
    ("computer", 85), ("cow", 98), ("cup", 104), ("curtain", 105), ("dog", 113), ("door", 115),
    ("fence", 144), ("floor", 158), ("flower", 159), ("food", 162), ("grass", 187), ("ground", 189),
    ("horse", 207), ("keyboard", 220), ("light", 232), ("motorbike", 258), ("mountain", 259),
    ("mouse", 260), ("person", 284), ("plate", 295), ("platform", 296), ("pottedplant", 308),
    ("road", 324), ("rock", 326), ("sheep", 347), ("shelves", 349), ("sidewalk", 354), ("sign", 355),
    ("sky", 360), ("snow", 366), ("sofa", 368), ("table", 397), ("track", 415), ("train", 416),
    ("tree", 420), ("truck", 424), ("tvmonitor", 427), ("wall", 440), ("water", 445), ("window", 454),
    ("wood", 458),
)
# 33_labels.txt in its own order, by labels.txt name (the file writes "diningtable" for "table").
CONTEXT33 = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor", "sky", "grass",
    "ground", "road", "building", "tree", "water", "mountain", "wall", "floor", "track", "keyboard", "ceiling",
)
# 59_labels.txt / 33_labels.txt name -> labels.txt name (FCN's pascalcontext_layers.py).
_LIST_SYNONYMS = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

_ID = re.compile(r"^[A-Za-z0-9_]+$")


def _check_common(config: PascalContextConfig | Voc2012Config, digests: tuple[tuple[str, str], ...],
                  locations: tuple[str, ...]) -> None:
    limit = config.limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be an integer >= 0, got {limit!r}")
    for name in locations:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name} must be a URL, an archive or a folder, got {value!r}")
    for name, algorithm in digests:
        try:
            fetch.check_digest(algorithm, getattr(config, name))
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None


@dataclass(frozen=True)
class PascalContextConfig:
    images: str = VOC2010_URL                 # VOCtrainval_03-May-2010.tar: URL, archive or extracted folder
    images_md5: str | None = VOC2010_MD5      # verified when set (archives and downloads)
    images_sha256: str | None = None
    annotations: str = CONTEXT_URL            # trainval.tar.gz (trainval/<id>.mat, labels.txt): URL, archive, folder
    annotations_md5: str | None = CONTEXT_MD5
    annotations_sha256: str | None = None
    labels59: str | None = None               # 59_labels.txt (URL or file) to check the class set against;
    labels59_md5: str | None = LABELS59_MD5   #   None = the one inside `annotations`, if there is one
    labels33: str | None = None               # 33_labels.txt, likewise (no published checksum)
    labels33_md5: str | None = None
    classes: int = 59                         # 59 or 33 (see the module doc)
    background: str = "class"                 # "class": label 0 of 60 (34), counted; "ignore": 255
    limit: int = 0                            # at most this many images per split (sorted ids); 0 = all

    def __post_init__(self) -> None:
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes not in (59, 33):
            raise ValueError(f"classes must be 59 or 33, got {self.classes!r} (the 60-label variant is classes=59 "
                             f"with background='class')")
        if self.background not in ("class", "ignore"):
            raise ValueError(f"background must be 'class' (label 0, counted) or 'ignore' (255), got {self.background!r}")
        for name in ("images", "annotations"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        _check_common(self, (("images_md5", "md5"), ("images_sha256", "sha256"), ("annotations_md5", "md5"),
                             ("annotations_sha256", "sha256"), ("labels59_md5", "md5"), ("labels33_md5", "md5")),
                      ("images", "annotations", "labels59", "labels33"))


@dataclass(frozen=True)
class Voc2012Config:
    source: str = VOC2012_URL                 # VOCtrainval_11-May-2012.tar: URL, archive or extracted folder
    md5: str | None = VOC2012_MD5             # verified when set (archives and downloads)
    sha256: str | None = None
    sbd: str | None = None                    # benchmark.tgz (URL, archive, folder): train becomes train_aug
    sbd_md5: str | None = SBD_MD5
    sbd_sha256: str | None = None
    limit: int = 0                            # at most this many images per split (sorted ids); 0 = all

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ValueError("source must not be empty")
        _check_common(self, (("md5", "md5"), ("sha256", "sha256"), ("sbd_md5", "md5"), ("sbd_sha256", "sha256")),
                      ("source", "sbd"))


# ----------------------------------------------------------------------------- bringing files in


def _open(location: str, field: str, workdir: Path, expected: dict[str, str | None], progress: bool) -> tuple[fetch.Archive, dict]:
    """A URL (downloaded into workdir), a local archive or a folder; archives' digests verified."""
    return fetch.bring_archive(location, workdir, field, expected, progress, what=f"archive or folder ({field})")


def _text(location: str, field: str, workdir: Path, expected: dict[str, str | None], progress: bool) -> tuple[str, str, dict]:
    """(text, where, provenance) of a small published text file given by URL or path."""
    if not fetch.is_url(location) and not Path(location).is_file():
        raise FileNotFoundError(f"{Path(location)}: no such file ({field})")
    path, provenance = fetch.bring(location, workdir, field, expected, progress, file_origin="file")
    where = provenance["location"]
    try:
        return path.read_text(encoding="utf-8"), where, provenance
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not a text file ({err})") from err


def _require(origin: fetch.Archive, names: set[str], name: str, why: str = "") -> str:
    if name not in names:
        raise FileNotFoundError(f"{origin.path}: {name} is missing{why}")
    return name


def _devkit_prefix(origin: fetch.Archive, year: str, listfile: str) -> str:
    """The path before <listfile> inside a VOC devkit: 'VOCdevkit/<year>/', '<year>/' or ''."""
    prefixes = sorted({n[: -len(listfile)] for n in origin.names
                       if n == listfile or n.endswith("/" + listfile)})
    if not prefixes:
        raise FileNotFoundError(f"{origin.path}: no {listfile} (expected [VOCdevkit/]{year}/{listfile})")
    if len(prefixes) > 1:
        raise ValueError(f"{origin.path}: several devkits inside ({', '.join(p or '.' for p in prefixes)})")
    prefix = prefixes[0]
    if prefix and prefix.rstrip("/").rsplit("/", 1)[-1] != year:
        raise ValueError(f"{origin.path}: found {prefix}{listfile}, but this must be the {year} devkit")
    return prefix


def _one_prefix(origin: fetch.Archive, pattern: str, what: str, marker: str | None = None) -> str:
    """The one folder prefix (group 1 of pattern) among origin's members. Where several match, the
    one holding `marker` wins if exactly one does: SBD's benchmark.tgz ships a demo folder
    (benchmark_code_RELEASE/demo/datadir/cls/) beside dataset/cls/, and only dataset/ has train.txt."""
    found = sorted({m.group(1) for m in map(re.compile(pattern).match, origin.names) if m})
    if not found:
        raise FileNotFoundError(f"{origin.path}: no {what} found")
    if len(found) == 1:
        return found[0]
    note = ""
    if marker is not None:
        names = set(origin.names)
        marked = [p for p in found if f"{p}{marker}" in names]
        if len(marked) == 1:
            return marked[0]
        note = f"; {len(marked) or 'none'} of them with {marker}"
    raise ValueError(f"{origin.path}: several {what} folders inside ({', '.join(p or '.' for p in found)}){note}")


def _parse_ids(text: str, where: str) -> list[str]:
    ids: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not _ID.match(line.strip()):
            raise ValueError(f"{where}:{number}: expected one image id per line, got {line!r}")
        ids.append(line.strip())
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}: repeated image ids")
    return ids


def _ids(origin: fetch.Archive, names: set[str], name: str) -> list[str]:
    _require(origin, names, name)
    try:
        text = origin.read(name).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{origin.path}/{name}: not a text file ({err})") from err
    return _parse_ids(text, f"{origin.path}/{name}")


def _parse_label_list(text: str, where: str) -> dict[int, str]:
    """'<id>: <name>' lines (labels.txt, 59_labels.txt, 33_labels.txt) -> {id: name}."""
    labels: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        left, sep, right = line.partition(":")
        if not sep or not left.strip().isdigit() or not right.strip():
            raise ValueError(f"{where}:{number}: expected '<id>: <name>', got {line!r}")
        if int(left) in labels:
            raise ValueError(f"{where}:{number}: id {int(left)} listed twice")
        labels[int(left)] = right.strip()
    if not labels:
        raise ValueError(f"{where}: no labels listed")
    return labels


def _finish(tmp: Path, ids: dict[str, list[str]], meta: dict) -> None:
    fetch.remove_downloads(tmp)  # downloaded archives: copied from, no longer needed
    (tmp / "splits").mkdir(exist_ok=True)
    for split, stems in ids.items():
        (tmp / "splits" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    fetch.write_meta(tmp, meta)


# ----------------------------------------------------------------------------- size checks


def _image_hw(path: Path, where: str) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as err:
        raise ValueError(f"{where}: unreadable image ({err})") from err


def _png_label_hw(path: Path, where: str) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            mode, hw = im.mode, (im.height, im.width)
    except OSError as err:
        raise ValueError(f"{where}: unreadable label PNG ({err})") from err
    if mode not in ("P", "L"):
        raise ValueError(f"{where}: label PNG is mode {mode}; expected a palette ('P') PNG whose values are class ids")
    return hw


def _label_map_hw(path: Path, where: str) -> tuple[int, int]:
    try:
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
    except (MatReadError, OSError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: unreadable .mat ({err})") from err
    if "LabelMap" not in shapes or len(shapes["LabelMap"]) != 2:
        raise ValueError(f"{where}: no 2-D LabelMap (has {sorted(shapes)})")
    return tuple(shapes["LabelMap"])  # type: ignore[return-value]


def _check_sizes(pairs: list[tuple[Path, str, Path, str]], label_hw: Callable[[Path, str], tuple[int, int]]) -> None:
    """(image file, its source name, label file, its source name): the same height and width."""
    for image, image_where, label, label_where in pairs:
        ih, lh = _image_hw(image, image_where), label_hw(label, label_where)
        if ih != lh:
            raise ValueError(f"{label_where}: label is {lh[0]}x{lh[1]}, but its image {image_where} is {ih[0]}x{ih[1]}")


# ----------------------------------------------------------------------------- PASCAL-Context install


def _context_protocol(labels: dict[int, str], classes: int, background: str, where: str) -> dict:
    """Check labels.txt against the known ids and describe the reduction for the reader."""
    for name, known in CONTEXT59:
        if labels.get(known) != name:
            raise ValueError(f"{where}: id {known} is {labels.get(known)!r}, expected {name!r} "
                             f"(not the PASCAL-Context 459-class labels.txt)")
    ids = dict(CONTEXT59)
    kept = [name for name, _ in CONTEXT59] if classes == 59 else list(CONTEXT33)
    counted = background == "class"
    return {
        "classes": classes,
        "background": background,
        "background_label": 0 if counted else IGNORE,
        "source_ids": [[ids[name]] for name in kept],  # labels.txt ids of each output class, in label order
        "first_label": 1 if counted else 0,
        "max_source_id": max(labels),
        "names": (["background"] if counted else []) + kept,
    }


def _check_class_list(text: str, where: str, classes: int) -> None:
    """A 59_labels.txt / 33_labels.txt must list exactly our class set (by name; order is not checked)."""
    listed = _parse_label_list(text, where)
    if sorted(listed) != list(range(1, classes + 1)):
        raise ValueError(f"{where}: expected ids 1..{classes}, got {len(listed)} ids")
    names = {_LIST_SYNONYMS.get(n.lower().replace(" ", ""), n.lower().replace(" ", "")) for n in listed.values()}
    expected = {n for n, _ in CONTEXT59} if classes == 59 else set(CONTEXT33)
    if names != expected:
        raise ValueError(f"{where}: not the PASCAL-Context {classes}-class list (missing {sorted(expected - names)}, "
                         f"unexpected {sorted(names - expected)})")


def _find_labels_txt(annotations: fetch.Archive, prefix: str) -> str:
    if f"{prefix}labels.txt" in annotations.names:
        return f"{prefix}labels.txt"
    found = [n for n in annotations.names if n.rsplit("/", 1)[-1] == "labels.txt"]
    if len(found) != 1:
        raise FileNotFoundError(f"{annotations.path}: expected one labels.txt beside trainval/, found {found or 'none'}")
    return found[0]


def _verify_class_list(config: PascalContextConfig, annotations: fetch.Archive, tmp: Path, progress: bool) -> dict | None:
    """Check the configured <classes>_labels.txt, else one found inside the annotations; its provenance, or None."""
    classes = config.classes
    location = config.labels59 if classes == 59 else config.labels33
    if location is not None:
        md5 = config.labels59_md5 if classes == 59 else config.labels33_md5
        text, where, provenance = _text(location, f"labels{classes}", tmp, {"md5": md5}, progress)
        _check_class_list(text, where, classes)
        return provenance
    inside = [n for n in annotations.names if n.rsplit("/", 1)[-1] == f"{classes}_labels.txt"]
    if len(inside) != 1:
        return None  # nothing to check against: the built-in list stands alone
    _check_class_list(annotations.read(inside[0]).decode("utf-8", "replace"), f"{annotations.path}/{inside[0]}", classes)
    return {"origin": "annotations", "location": inside[0]}


def install_context(config: PascalContextConfig, out_dir: Path, progress: bool = True) -> dict:
    """Copy PASCAL-Context's images, LabelMaps and labels.txt into out_dir atomically; returns dataset.json's dict."""
    with atomic_dir(Path(out_dir)) as tmp:
        with ExitStack() as stack:
            images, image_prov = _open(config.images, "images", tmp,
                                       {"md5": config.images_md5, "sha256": config.images_sha256}, progress)
            stack.enter_context(images)
            annotations, ann_prov = _open(config.annotations, "annotations", tmp,
                                          {"md5": config.annotations_md5, "sha256": config.annotations_sha256}, progress)
            stack.enter_context(annotations)
            image_names, ann_names = set(images.names), set(annotations.names)

            prefix = _devkit_prefix(images, "VOC2010", "ImageSets/Main/train.txt")
            ids = {s: sorted(_ids(images, image_names, f"{prefix}ImageSets/Main/{s}.txt")) for s in SPLITS}
            both = set(ids["train"]) & set(ids["val"])
            if both:
                raise ValueError(f"{images.path}: {len(both)} ids in both ImageSets/Main train and val, e.g. {min(both)}")
            ids = {s: stems[: config.limit or None] for s, stems in ids.items()}

            ann_prefix = _one_prefix(annotations, r"^(.*?)trainval/[A-Za-z0-9_]+\.mat$", "trainval/<id>.mat")
            labels_txt = _find_labels_txt(annotations, ann_prefix)
            where = f"{annotations.path}/{labels_txt}"
            protocol = _context_protocol(_parse_label_list(annotations.read(labels_txt).decode("utf-8", "replace"), where),
                                         config.classes, config.background, where)
            list_prov = _verify_class_list(config, annotations, tmp, progress)

            selected_images, selected_labels, pairs = {}, {}, []
            for split, stems in ids.items():
                for stem in stems:
                    jpg = _require(images, image_names, f"{prefix}JPEGImages/{stem}.jpg",
                                   f" (listed in ImageSets/Main/{split}.txt)")
                    mat = _require(annotations, ann_names, f"{ann_prefix}trainval/{stem}.mat", f" (image {stem} of {split})")
                    selected_images[jpg] = tmp / "images" / f"{stem}.jpg"
                    selected_labels[mat] = tmp / "labels" / f"{stem}.mat"
                    pairs.append((tmp / "images" / f"{stem}.jpg", f"{images.path}/{jpg}", tmp / "labels" / f"{stem}.mat",
                                  f"{annotations.path}/{mat}"))
            selected_labels[labels_txt] = tmp / "labels.txt"
            images.copy(selected_images, "voc2010 images", progress)
            annotations.copy(selected_labels, "pascal-context labels", progress)
        _check_sizes(pairs, _label_map_hw)
        meta = {
            "name": CONTEXT,
            "classes": protocol.pop("names"),
            "counts": {split: len(stems) for split, stems in ids.items()},
            "ignore_index": IGNORE,
            "limit": config.limit,
            "protocol": protocol,
            "source": {"images": image_prov, "annotations": ann_prov, "class_list": list_prov},
        }
        _finish(tmp, ids, meta)
    return meta


# ----------------------------------------------------------------------------- VOC 2012 install


def install_voc2012(config: Voc2012Config, out_dir: Path, progress: bool = True) -> dict:
    """Copy VOC2012 segmentation (and SBD's train_aug labels when configured) into out_dir atomically."""
    with atomic_dir(Path(out_dir)) as tmp:
        with ExitStack() as stack:
            voc, voc_prov = _open(config.source, "source", tmp, {"md5": config.md5, "sha256": config.sha256}, progress)
            stack.enter_context(voc)
            voc_names = set(voc.names)
            prefix = _devkit_prefix(voc, "VOC2012", "ImageSets/Segmentation/train.txt")
            voc_ids = {s: _ids(voc, voc_names, f"{prefix}ImageSets/Segmentation/{s}.txt") for s in SPLITS}
            val = sorted(voc_ids["val"])
            voc_train = set(voc_ids["train"])
            sbd = sbd_prov = None
            if config.sbd is None:
                train = sorted(voc_train - set(val))
            else:
                sbd, sbd_prov = _open(config.sbd, "sbd", tmp, {"md5": config.sbd_md5, "sha256": config.sbd_sha256}, progress)
                stack.enter_context(sbd)
                sbd_names = set(sbd.names)
                sbd_prefix = _one_prefix(sbd, r"^(.*?)cls/[A-Za-z0-9_]+\.mat$", "SBD dataset/cls/<id>.mat",
                                         marker="train.txt")
                sbd_ids = set(_ids(sbd, sbd_names, f"{sbd_prefix}train.txt")) | set(_ids(sbd, sbd_names, f"{sbd_prefix}val.txt"))
                train = sorted((voc_train | sbd_ids) - set(val))  # train_aug: no VOC2012 val image, ever
                sbd_prov["listed"] = len(sbd_ids)
            ids = {"train": train[: config.limit or None], "val": val[: config.limit or None]}

            from_voc, from_sbd, pairs = {}, {}, []
            for split, stems in ids.items():
                for stem in stems:
                    jpg = f"{prefix}JPEGImages/{stem}.jpg"
                    if jpg in voc_names:
                        from_voc[jpg] = tmp / "images" / f"{stem}.jpg"
                        image_where = f"{voc.path}/{jpg}"
                    elif sbd is not None and f"{sbd_prefix}img/{stem}.jpg" in sbd_names:  # not in VOC: SBD's copy
                        from_sbd[f"{sbd_prefix}img/{stem}.jpg"] = tmp / "images" / f"{stem}.jpg"
                        image_where = f"{sbd.path}/{sbd_prefix}img/{stem}.jpg"
                    else:
                        elsewhere = f" and SBD has no {sbd_prefix}img/{stem}.jpg" if sbd is not None else ""
                        raise FileNotFoundError(f"{voc.path}: {jpg} is missing (image of {split}){elsewhere}")
                    if split == "val" or stem in voc_train:
                        png = _require(voc, voc_names, f"{prefix}SegmentationClass/{stem}.png", f" (image {stem} of {split})")
                        from_voc[png] = label = tmp / "voc" / f"{stem}.png"
                        label_where = f"{voc.path}/{png}"
                    else:
                        mat = _require(sbd, sbd_names, f"{sbd_prefix}cls/{stem}.mat", " (listed in SBD train/val)")
                        from_sbd[mat] = label = tmp / "sbd" / f"{stem}.mat"
                        label_where = f"{sbd.path}/{mat}"
                    pairs.append((tmp / "images" / f"{stem}.jpg", image_where, label, label_where))
            voc.copy(from_voc, "voc2012", progress)
            if sbd is not None:
                sbd.copy(from_sbd, "sbd", progress)
        _check_sizes([p for p in pairs if p[2].suffix == ".png"], _png_label_hw)
        _check_sizes([p for p in pairs if p[2].suffix == ".mat"], lambda path, where: _sbd_segmentation(path, where).shape)
        meta = {
            "name": VOC,
            "classes": list(VOC_CLASSES),
            "counts": {split: len(stems) for split, stems in ids.items()},
            "ignore_index": IGNORE,
            "train_set": "train_aug" if config.sbd is not None else "train",
            "limit": config.limit,
            "source": {"voc": voc_prov, "sbd": sbd_prov},
        }
        _finish(tmp, ids, meta)
    return meta


# ----------------------------------------------------------------------------- read


def _check_meta(meta: dict) -> None:
    """What the reader needs of dataset.json (a KeyError, TypeError or ValueError where it is not there)."""
    if meta["name"] not in (CONTEXT, VOC) or not isinstance(meta["counts"], dict):
        raise ValueError(f"name {meta['name']!r} is not {CONTEXT} or {VOC}")
    if meta["name"] == CONTEXT:
        _context_lut(meta["protocol"])  # every key the reader needs is there


def _context_lut(protocol: dict) -> np.ndarray:
    """labels.txt id -> output label: the kept classes in order, everything else background."""
    lut = np.full(int(protocol["max_source_id"]) + 1, protocol["background_label"], dtype=np.uint8)
    for k, source_ids in enumerate(protocol["source_ids"]):
        lut[source_ids] = protocol["first_label"] + k
    return lut


def read_context_label(path: Path, lut: np.ndarray) -> np.ndarray:
    """(H, W) uint8 reduced label of one PASCAL-Context .mat (see the module doc for the rule)."""
    try:
        label_map = scipy.io.loadmat(path)["LabelMap"]
    except (MatReadError, OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: no readable LabelMap ({err})") from err
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.number):
        raise ValueError(f"{path}: LabelMap must be a 2-D array of ids, got {label_map.shape} {label_map.dtype}")
    ids = label_map.astype(np.int64)  # (H, W)
    if ids.size and (ids.min() < 0 or ids.max() >= len(lut)):
        raise ValueError(f"{path}: LabelMap holds ids {ids.min()}..{ids.max()}, labels.txt has 0..{len(lut) - 1}")
    return lut[ids]  # (H, W) uint8


def read_voc_label(path: Path) -> np.ndarray:
    """(H, W) uint8 class ids of a VOC SegmentationClass PNG: its palette indices, not its colours."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"mode {im.mode}; expected a palette ('P') PNG whose values are class ids")
            label = np.array(im)  # (H, W): for mode P these are the palette indices
    except OSError as err:
        raise ValueError(f"{path}: unreadable label PNG ({err})") from err
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    _check_voc_values(label, path)
    return label


def _sbd_segmentation(path: Path, where: str | Path) -> np.ndarray:
    try:
        gt = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
        seg = np.asarray(gt.Segmentation)
    except (MatReadError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{where}: no readable GTcls.Segmentation ({err})") from err
    if seg.ndim != 2:
        raise ValueError(f"{where}: GTcls.Segmentation must be 2-D, got {seg.shape}")
    return seg


def read_sbd_label(path: Path) -> np.ndarray:
    """(H, W) uint8 class ids of an SBD dataset/cls/<id>.mat (GTcls.Segmentation; no ignore border)."""
    seg = _sbd_segmentation(path, path)
    if seg.size and (seg.min() < 0 or seg.max() > 255):
        raise ValueError(f"{path}: GTcls.Segmentation holds {seg.min()}..{seg.max()}")
    label = seg.astype(np.uint8)
    _check_voc_values(label, path)
    return label


def _check_voc_values(label: np.ndarray, path: Path) -> None:
    bad = np.setdiff1d(np.unique(label), [*range(len(VOC_CLASSES)), IGNORE])
    if bad.size:
        raise ValueError(f"{path}: label values {bad.tolist()[:5]} are not VOC class ids (0..20, 255 = ignore)")


def split_ids(raw_dir: Path, split: str) -> list[str]:
    """The image ids of one split of a raw folder, in reading order."""
    path = Path(raw_dir) / "splits" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    return _parse_ids(path.read_text(), str(path))


def read_split(raw_dir: Path, split: str) -> Iterator[Record]:
    """Records of one split of a pascal_context or voc2012 raw folder, in sorted id order."""
    raw_dir = Path(raw_dir)
    meta = fetch.read_meta(raw_dir, f"{CONTEXT} or {VOC}", _check_meta)
    name = meta["name"]
    if split not in meta["counts"]:
        raise ValueError(f"unknown {name} split {split!r}; allowed: {', '.join(meta['counts'])}")
    ids = split_ids(raw_dir, split)
    if len(ids) != int(meta["counts"][split]):
        raise ValueError(f"{raw_dir / 'splits' / f'{split}.txt'}: {len(ids)} ids, but dataset.json says {meta['counts'][split]}")
    lut = _context_lut(meta["protocol"]) if name == CONTEXT else None
    for stem in ids:
        jpg = raw_dir / "images" / f"{stem}.jpg"
        if not jpg.is_file():
            raise FileNotFoundError(f"{jpg}: not found")
        jpeg = jpg.read_bytes()
        image = decode_rgb(jpeg, jpg)
        if lut is not None:
            label_path, reader = raw_dir / "labels" / f"{stem}.mat", partial(read_context_label, lut=lut)
        elif (raw_dir / "voc" / f"{stem}.png").is_file():
            label_path, reader = raw_dir / "voc" / f"{stem}.png", read_voc_label
        else:
            label_path, reader = raw_dir / "sbd" / f"{stem}.mat", read_sbd_label
        if not label_path.is_file():
            raise FileNotFoundError(f"{label_path}: not found (label of {stem})")
        label = reader(label_path)  # (H, W) uint8
        if label.shape != image.shape[:2]:
            raise ValueError(f"{label_path}: label is {label.shape}, image {jpg.name} is {image.shape[:2]}")
        yield {
            "key": f"{name}-{split}-{stem}",
            "image": image,
            "image_jpeg": jpeg,
            "label": label,
            "meta": {"annotators": 1, "dataset": name, "split": split, "id": stem},
        }

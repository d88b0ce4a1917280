"""Small PASCAL VOC 2012, SBD and PASCAL-Context sources in their published formats, for tests.

Every builder writes real files: JPEGs, palette ('P') PNGs with 255 borders, MATLAB .mat files
(scipy.io.savemat: a LabelMap per image, SBD's GTcls struct), VOC split lists and the label-list
text files ("<id>: <name>"), laid out as inside the published archives, and the archives themselves
(plain tar for VOC, .tar.gz for SBD and the PASCAL-Context labels). Images are about 40 x 56 px.
Nothing here is a stand-in for code under test: the module only writes files.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from pixelnet.data.pascal import CONTEXT33, CONTEXT59

H, W = 40, 56

# VOC2012: 3 train + 2 val segmentation ids, one detection-only JPEG; SBD lists one VOC val id in
# each of its lists (train_aug must drop them), one VOC train id (VOC's own label wins) and three
# images VOC does not segment (one of them only in SBD's img/).
VOC_TRAIN = ("2007_000032", "2007_000039", "2008_000008")
VOC_VAL = ("2007_000033", "2009_000012")
VOC_OTHER = ("2010_000002",)
SBD_TRAIN = ("2007_000033", "2008_000008", "2008_000045", "2011_000003")
SBD_VAL = ("2009_000012", "2008_000050")
SBD_ONLY_IMAGE = "2011_000003"  # in SBD's img/ but not in VOC2012's JPEGImages
# benchmark.tgz also ships the benchmark code's demo data, benchmark_code_RELEASE/demo/datadir/ with
# cls/, img/, inst/ of its own (different labels here) and no train.txt: never to be read.
SBD_DEMO = ("2008_000050", "2008_000051")
TRAIN_AUG = ("2007_000032", "2007_000039", "2008_000008", "2008_000045", "2008_000050", "2011_000003")

# PASCAL-Context over VOC2010: ImageSets/Main train/val, 3 + 2 images, one extra unannotated JPEG.
CONTEXT_TRAIN = ("2008_000002", "2008_000003", "2009_000001")
CONTEXT_VAL = ("2008_000007", "2010_000001")
UNKNOWN_ID = 431    # labels.txt's "unknown": not among the 59
OTHER_ID = 300      # any other class outside the 59 (a filler name in the fake labels.txt)
LABEL_COUNT = 459


def voc_palette() -> list[int]:
    """The VOC colour map (VOCdevkit's VOClabelcolormap): 256 RGB triples, flattened."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _hw(stem: str) -> tuple[int, int]:
    return (W, H) if stem.endswith("9") else (H, W)  # a few portrait images


def _jpeg(path: Path, stem: str, seed: int) -> np.ndarray:
    h, w = _hw(stem)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=90)
    return image


def write_palette_png(path: Path, label: np.ndarray) -> None:
    """A VOC SegmentationClass file: mode 'P', pixel values = class ids, VOC colours in the palette."""
    im = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label, dtype=np.uint8).tobytes())
    im.putpalette(voc_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _voc_label(stem: str, seed: int, border: bool) -> np.ndarray:
    """Two objects on background; VOC draws a 255 band around each object, SBD does not."""
    h, w = _hw(stem)
    rng = np.random.default_rng(seed)
    a, b = (int(c) for c in rng.choice(np.arange(1, 21), 2, replace=False))
    label = np.zeros((h, w), np.uint8)
    label[5:20, 6:26] = a
    label[h - 16:h - 4, w - 22:w - 5] = b
    label[0, 0] = 15  # person, VOC colour (192, 128, 128): must read back as 15
    if border:
        edge = np.zeros((h, w), bool)
        edge[4:21, 5:27] = True
        edge[5:20, 6:26] = False
        label[edge] = 255
    return label


def _write_sbd_mat(path: Path, seg: np.ndarray) -> None:
    """SBD dataset/cls/<id>.mat: struct GTcls with Segmentation, Boundaries (20 sparse maps), CategoriesPresent."""
    boundaries = np.empty((20, 1), dtype=object)
    for k in range(20):
        edge = np.zeros(seg.shape, bool)
        if np.any(seg == k + 1):
            edge[np.nonzero(seg == k + 1)[0].min(), :] = True
        boundaries[k, 0] = scipy.sparse.csc_matrix(edge)
    present = np.unique(seg[(seg > 0) & (seg < 255)]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": seg.astype(np.uint8), "Boundaries": boundaries,
                                      "CategoriesPresent": present}})


def _tar(folder: Path, arcname: str, out: Path, mode: str) -> Path:
    with tarfile.open(out, mode) as tar:
        tar.add(folder, arcname=arcname)
    return out


def make_voc2012_sources(tmp_path: Path) -> dict:
    """VOCtrainval_11-May-2012 (folder and .tar) and SBD benchmark (folder and .tgz), with the expected labels.

    Returns {"voc_dir", "voc_tar", "sbd_dir", "sbd_tgz", "voc_labels": {id: (H, W)}, "sbd_labels": {id: (H, W)},
    "sbd_demo_labels": {id: (H, W)}, "images": {id: (H, W, 3) as written}}. ``voc_dir``/``sbd_dir`` are the
    folders the archives extract to; SBD's holds dataset/ and the demo's benchmark_code_RELEASE/ as published.
    """
    root = tmp_path / "voc-src"
    devkit = root / "VOCdevkit" / "VOC2012"
    images, voc_labels, sbd_labels = {}, {}, {}
    every = sorted(set(VOC_TRAIN + VOC_VAL + VOC_OTHER + SBD_TRAIN + SBD_VAL))
    for i, stem in enumerate(every):
        if stem != SBD_ONLY_IMAGE:
            images[stem] = _jpeg(devkit / "JPEGImages" / f"{stem}.jpg", stem, i)
    for i, stem in enumerate(VOC_TRAIN + VOC_VAL):
        voc_labels[stem] = _voc_label(stem, 100 + i, border=True)
        write_palette_png(devkit / "SegmentationClass" / f"{stem}.png", voc_labels[stem])
        obj = devkit / "SegmentationObject" / f"{stem}.png"  # present in the real archive, never read
        write_palette_png(obj, (voc_labels[stem] > 0).astype(np.uint8))
    sets = devkit / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("".join(f"{s}\n" for s in VOC_TRAIN))
    (sets / "val.txt").write_text("".join(f"{s}\n" for s in VOC_VAL))
    (sets / "trainval.txt").write_text("".join(f"{s}\n" for s in sorted(VOC_TRAIN + VOC_VAL)))
    (devkit / "ImageSets" / "Main").mkdir(parents=True)
    (devkit / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{s}\n" for s in every))
    (devkit / "Annotations").mkdir()
    (devkit / "Annotations" / f"{VOC_TRAIN[0]}.xml").write_text("<annotation/>\n")

    sbd = tmp_path / "sbd-src" / "benchmark_RELEASE" / "dataset"
    for i, stem in enumerate(sorted(set(SBD_TRAIN + SBD_VAL))):
        sbd_labels[stem] = _voc_label(stem, 200 + i, border=False)
        _write_sbd_mat(sbd / "cls" / f"{stem}.mat", sbd_labels[stem])
        _write_sbd_mat(sbd / "inst" / f"{stem}.mat", sbd_labels[stem])  # instance files: never read
        image = images.get(stem)
        if image is None:
            image = _jpeg(sbd / "img" / f"{stem}.jpg", stem, 300 + i)
            images[stem] = image
        else:
            (sbd / "img").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(sbd / "img" / f"{stem}.jpg", format="JPEG", quality=90)
    (sbd / "train.txt").write_text("".join(f"{s}\n" for s in SBD_TRAIN))
    (sbd / "val.txt").write_text("".join(f"{s}\n" for s in SBD_VAL))
    demo = sbd.parent / "benchmark_code_RELEASE" / "demo" / "datadir"
    demo_labels = {}
    for i, stem in enumerate(SBD_DEMO):
        demo_labels[stem] = _voc_label(stem, 400 + i, border=False)
        _write_sbd_mat(demo / "cls" / f"{stem}.mat", demo_labels[stem])
        _write_sbd_mat(demo / "inst" / f"{stem}.mat", demo_labels[stem])
        _jpeg(demo / "img" / f"{stem}.jpg", stem, 500 + i)
    (demo / "val.txt").write_text("".join(f"{s}\n" for s in SBD_DEMO))

    return {
        "voc_dir": root,
        "voc_tar": _tar(root / "VOCdevkit", "VOCdevkit", tmp_path / "VOCtrainval_11-May-2012.tar", "w"),
        "sbd_dir": sbd.parent,  # benchmark_RELEASE/
        "sbd_tgz": _tar(sbd.parent, "benchmark_RELEASE", tmp_path / "benchmark.tgz", "w:gz"),
        "voc_labels": voc_labels,
        "sbd_labels": sbd_labels,
        "sbd_demo_labels": demo_labels,
        "images": images,
    }


def labels_txt() -> str:
    """A 459-line labels.txt: the 59 (and "unknown") at their published ids, filler names elsewhere."""
    names = {i: f"other thing {i}" for i in range(1, LABEL_COUNT + 1)}
    names.update({i: name for name, i in CONTEXT59})
    names[UNKNOWN_ID] = "unknown"
    return "".join(f"{i}: {names[i]}\n" for i in range(1, LABEL_COUNT + 1))


def labels59_txt() -> str:
    """A 59_labels.txt: VOC's 20 first, spelled as that file spells them (diningtable, bedcloth, clothes)."""
    spelled = {"table": "diningtable", "bedclothes": "bedcloth", "cloth": "clothes"}
    first = [n for n in CONTEXT33[:20]]
    rest = [n for n, _ in CONTEXT59 if n not in first]
    return "".join(f"{i}: {spelled.get(n, n)}\n" for i, n in enumerate(first + rest, 1))


def labels33_txt() -> str:
    """33_labels.txt as published (its last line has a trailing space, and a blank line follows)."""
    lines = [f"{i}: {'diningtable' if n == 'table' else n}" for i, n in enumerate(CONTEXT33, 1)]
    return "\n".join(lines) + " \n\n"


def context_label_map(stem: str, seed: int) -> np.ndarray:
    """(H, W) uint16 LabelMap with aeroplane, bag, person, sky, table, wood, unknown and an unlisted class."""
    h, w = _hw(stem)
    ids = dict(CONTEXT59)
    rng = np.random.default_rng(seed)
    label = np.full((h, w), ids["sky"], np.uint16)
    label[h // 2:, :] = ids["wood"]
    label[2:12, 3:20] = ids["aeroplane"]
    label[14:24, 3:12] = ids["bag"]
    label[14:30, 14:24] = ids["person"]
    label[26:36, 26:40] = ids["table"]
    label[2:10, 30:40] = UNKNOWN_ID
    label[12:20, 44:52] = OTHER_ID
    label[int(rng.integers(30, h)), int(rng.integers(0, w))] = ids["cat"]
    return label


def make_context_sources(tmp_path: Path) -> dict:
    """VOCtrainval_03-May-2010 (folder, .tar), PASCAL-Context trainval (folder, .tar.gz) and the label lists.

    Returns {"voc_dir", "voc_tar", "context_dir", "context_tgz", "labels59", "labels33", "label_maps": {id: (H, W)}}.
    """
    root = tmp_path / "voc2010-src"
    devkit = root / "VOCdevkit" / "VOC2010"
    every = sorted(CONTEXT_TRAIN + CONTEXT_VAL + ("2010_000099",))
    for i, stem in enumerate(every):
        _jpeg(devkit / "JPEGImages" / f"{stem}.jpg", stem, i)
    main = devkit / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("".join(f"{s}\n" for s in CONTEXT_TRAIN))
    (main / "val.txt").write_text("".join(f"{s}\n" for s in CONTEXT_VAL))
    (main / "aeroplane_train.txt").write_text("".join(f"{s} -1\n" for s in CONTEXT_TRAIN))
    (devkit / "ImageSets" / "Segmentation").mkdir(parents=True)
    (devkit / "ImageSets" / "Segmentation" / "train.txt").write_text(f"{CONTEXT_TRAIN[0]}\n")

    context = tmp_path / "context-src"
    label_maps = {}
    for i, stem in enumerate(CONTEXT_TRAIN + CONTEXT_VAL):
        label_maps[stem] = context_label_map(stem, i)
        (context / "trainval").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(context / "trainval" / f"{stem}.mat", {"LabelMap": label_maps[stem]})
    (context / "labels.txt").write_text(labels_txt())
    tgz = tmp_path / "trainval.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        for path in sorted(context.rglob("*")):
            tar.add(path, arcname=path.relative_to(context).as_posix(), recursive=False)
    (tmp_path / "59_labels.txt").write_text(labels59_txt())
    (tmp_path / "33_labels.txt").write_text(labels33_txt())
    return {
        "voc_dir": root,
        "voc_tar": _tar(root / "VOCdevkit", "VOCdevkit", tmp_path / "VOCtrainval_03-May-2010.tar", "w"),
        "context_dir": context,
        "context_tgz": tgz,
        "labels59": tmp_path / "59_labels.txt",
        "labels33": tmp_path / "33_labels.txt",
        "label_maps": label_maps,
    }

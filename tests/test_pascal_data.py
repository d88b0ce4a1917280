"""PASCAL-Context and VOC 2012 (+ SBD): install from archives and folders, label protocols, errors, read, shard.

The sources are small files in the published formats, written by tests/fakes_pascal.py; a file://
URL exercises the download path. Nothing touches the network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from fakes_archives import cut_before_last_member
from fakes_pascal import (
    CONTEXT_TRAIN,
    CONTEXT_VAL,
    OTHER_ID,
    SBD_DEMO,
    SBD_ONLY_IMAGE,
    SBD_TRAIN,
    SBD_VAL,
    TRAIN_AUG,
    UNKNOWN_ID,
    VOC_TRAIN,
    VOC_VAL,
    make_context_sources,
    make_voc2012_sources,
    write_palette_png,
)
from PIL import Image

from pixelnet.data import pascal
from pixelnet.data.fetch import FetchError
from pixelnet.data.pascal import CONTEXT59, PascalContextConfig, Voc2012Config
from pixelnet.data.shards import read_shards, shard_paths, write_shards


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> dict:
    return make_voc2012_sources(tmp_path_factory.mktemp("voc"))


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> dict:
    return make_context_sources(tmp_path_factory.mktemp("context"))


def _voc_config(src: dict, kind: str, sbd: bool = True, **kw) -> Voc2012Config:
    if kind == "archive":
        return Voc2012Config(source=str(src["voc_tar"]), md5=_md5(src["voc_tar"]),
                             sbd=str(src["sbd_tgz"]) if sbd else None, sbd_md5=_md5(src["sbd_tgz"]), **kw)
    return Voc2012Config(source=str(src["voc_dir"]), sbd=str(src["sbd_dir"]) if sbd else None, **kw)


def _context_config(src: dict, kind: str, **kw) -> PascalContextConfig:
    if kind == "archive":
        base = {"images": str(src["voc_tar"]), "images_md5": _md5(src["voc_tar"]),
                "annotations": str(src["context_tgz"]), "annotations_md5": _md5(src["context_tgz"])}
    else:
        base = {"images": str(src["voc_dir"]), "annotations": str(src["context_dir"])}
    if "labels59" in kw and "labels59_md5" not in kw:
        kw["labels59_md5"] = _md5(Path(kw["labels59"]))
    return PascalContextConfig(**{**base, **kw})


def _nothing_left(parent: Path) -> None:
    assert list(parent.iterdir()) == [], "a failed install left files behind"


# ----------------------------------------------------------------------------- VOC 2012


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_voc_train_aug_from_archives_and_folders(tmp_path, voc, kind):
    meta = pascal.install_voc2012(_voc_config(voc, kind), tmp_path / "raw", progress=False)
    assert meta["name"] == "voc2012" and meta["classes"][0] == "background" and len(meta["classes"]) == 21
    assert meta["counts"] == {"train": len(TRAIN_AUG), "val": len(VOC_VAL)} and meta["train_set"] == "train_aug"
    assert meta["source"]["voc"]["origin"] == kind and meta["source"]["sbd"]["listed"] == 6
    assert json.loads((tmp_path / "raw" / "dataset.json").read_text()) == meta
    train = list(pascal.read_split(tmp_path / "raw", "train"))
    assert [r["meta"]["id"] for r in train] == list(TRAIN_AUG)
    assert not {r["meta"]["id"] for r in train} & set(VOC_VAL)  # SBD lists VOC val images; train_aug drops them
    val = list(pascal.read_split(tmp_path / "raw", "val"))
    assert [r["key"] for r in val] == [f"voc2012-val-{s}" for s in VOC_VAL]
    for r in train + val:
        stem = r["meta"]["id"]
        assert r["meta"] == {"annotators": 1, "dataset": "voc2012", "split": r["key"].split("-")[1], "id": stem}
        assert r["image"].shape == (*r["label"].shape, 3) and r["label"].dtype == np.uint8
        want = voc["voc_labels"][stem] if stem in VOC_TRAIN + VOC_VAL else voc["sbd_labels"][stem]
        np.testing.assert_array_equal(r["label"], want)  # VOC's own PNG wins for VOC train images
    sbd_only = next(r for r in train if r["meta"]["id"] == SBD_ONLY_IMAGE)
    src = voc["sbd_dir"] / "dataset" / "img" / f"{SBD_ONLY_IMAGE}.jpg"
    assert sbd_only["image_jpeg"] == src.read_bytes()  # not in VOC's JPEGImages: SBD's copy


def test_voc_palette_values_are_class_ids_not_colours(tmp_path, voc):
    pascal.install_voc2012(_voc_config(voc, "folder", sbd=False), tmp_path / "raw", progress=False)
    records = {r["meta"]["id"]: r for r in pascal.read_split(tmp_path / "raw", "train")}
    assert sorted(records) == sorted(VOC_TRAIN)  # no SBD: VOC train as listed
    label = records[VOC_TRAIN[0]]["label"]
    png = voc["voc_dir"] / "VOCdevkit" / "VOC2012" / "SegmentationClass" / f"{VOC_TRAIN[0]}.png"
    with Image.open(png) as im:
        assert im.mode == "P"
        colours = np.asarray(im.convert("RGB"))
    assert label[0, 0] == 15 and tuple(colours[0, 0]) == (192, 128, 128)  # person: the id, not its colour
    assert 255 in label and set(np.unique(label)) <= set(range(21)) | {255}  # the ignore border survives
    np.testing.assert_array_equal(label, voc["voc_labels"][VOC_TRAIN[0]])


def test_voc_rgb_label_png_is_refused(tmp_path, voc):
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match=rf"{rgb}: mode RGB; expected a palette"):
        pascal.read_voc_label(rgb)
    bad = tmp_path / "bad.png"
    write_palette_png(bad, np.full((4, 5), 40, np.uint8))
    with pytest.raises(ValueError, match=rf"{bad}: label values \[40\] are not VOC class ids"):
        pascal.read_voc_label(bad)


def test_voc_by_url_and_limit(tmp_path, voc):
    cfg = Voc2012Config(source=voc["voc_tar"].as_uri(), md5=_md5(voc["voc_tar"]), sbd=voc["sbd_tgz"].as_uri(),
                        sbd_md5=_md5(voc["sbd_tgz"]), limit=2)
    meta = pascal.install_voc2012(cfg, tmp_path / "out" / "raw", progress=False)
    assert meta["counts"] == {"train": 2, "val": 2} and meta["source"]["sbd"]["origin"] == "url"
    assert (tmp_path / "out" / "raw" / "splits" / "train.txt").read_text().split() == list(TRAIN_AUG[:2])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["raw"]  # downloads gone
    assert not (tmp_path / "out" / "raw" / ".downloads").exists()
    copied = sorted(p.name for p in (tmp_path / "out" / "raw" / "images").iterdir())
    assert copied == [f"{s}.jpg" for s in sorted(TRAIN_AUG[:2] + VOC_VAL)]


def test_voc_wrong_md5_names_the_file_and_leaves_nothing(tmp_path, voc):
    (tmp_path / "out").mkdir()
    cfg = Voc2012Config(source=str(voc["voc_tar"]), md5=_md5(voc["voc_tar"]), sbd=str(voc["sbd_tgz"]))  # official SBD md5
    message = rf"{voc['sbd_tgz']}: md5 mismatch: expected {pascal.SBD_MD5}, got {_md5(voc['sbd_tgz'])}"
    with pytest.raises(FetchError, match=message):
        pascal.install_voc2012(cfg, tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


@pytest.mark.parametrize("which", ["voc_tar", "sbd_tgz"])
def test_truncated_archive_is_named_and_leaves_nothing(tmp_path, voc, which):
    cut = tmp_path / voc[which].name
    data = voc[which].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    (tmp_path / "out").mkdir()
    paths = {"voc_tar": str(voc["voc_tar"]), "sbd_tgz": str(voc["sbd_tgz"]), which: str(cut)}
    cfg = Voc2012Config(source=paths["voc_tar"], md5=None, sbd=paths["sbd_tgz"], sbd_md5=None)
    with pytest.raises(ValueError, match=rf"{cut}: (truncated|not a readable)"):
        pascal.install_voc2012(cfg, tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


def test_truncated_download_is_named_by_its_url(tmp_path, voc):
    cut = cut_before_last_member(Path(shutil.copy(voc["voc_tar"], tmp_path)))
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match=rf"{cut.as_uri()}: truncated tar archive"):
        pascal.install_voc2012(Voc2012Config(source=cut.as_uri(), md5=None), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_sbd_demo_folder_beside_the_dataset_is_not_read(tmp_path, voc, kind):
    """benchmark.tgz as published holds two cls/ folders: dataset/ (with train.txt) is the one read."""
    with tarfile.open(voc["sbd_tgz"]) as tar:
        mats = [n for n in tar.getnames() if n.endswith(".mat") and "/cls/" in n]
    assert {n.rsplit("cls/", 1)[0] for n in mats} == {
        "benchmark_RELEASE/dataset/", "benchmark_RELEASE/benchmark_code_RELEASE/demo/datadir/"}
    shared = sorted(set(SBD_DEMO) & set(SBD_VAL))
    assert shared and all(not np.array_equal(voc["sbd_demo_labels"][s], voc["sbd_labels"][s]) for s in shared)

    meta = pascal.install_voc2012(_voc_config(voc, kind), tmp_path / "raw", progress=False)
    assert meta["source"]["sbd"]["listed"] == len(set(SBD_TRAIN + SBD_VAL))  # dataset/'s lists, not the demo's
    train = {r["meta"]["id"]: r for r in pascal.read_split(tmp_path / "raw", "train")}
    assert sorted(train) == sorted(TRAIN_AUG) and not (set(SBD_DEMO) - set(SBD_VAL)) & set(train)
    for stem in shared:
        np.testing.assert_array_equal(train[stem]["label"], voc["sbd_labels"][stem])
        copied = tmp_path / "raw" / "sbd" / f"{stem}.mat"
        assert copied.read_bytes() == (voc["sbd_dir"] / "dataset" / "cls" / f"{stem}.mat").read_bytes()

    # Only train.txt tells them apart: with one in both, the archive is ambiguous again, and said to be.
    sbd = _copy_tree(voc["sbd_dir"], tmp_path / "sbd")
    shutil.copy(sbd / "dataset" / "train.txt", sbd / "benchmark_code_RELEASE" / "demo" / "datadir" / "train.txt")
    (tmp_path / "out").mkdir()
    message = (r"several SBD dataset/cls/<id>.mat folders inside \(benchmark_code_RELEASE/demo/datadir/, dataset/\)"
               r"; 2 of them with train.txt")
    with pytest.raises(ValueError, match=message):
        pascal.install_voc2012(Voc2012Config(source=str(voc["voc_dir"]), sbd=str(sbd)), tmp_path / "out" / "raw",
                               progress=False)
    _nothing_left(tmp_path / "out")


def _copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_member_and_size_mismatch_are_named(tmp_path, voc):
    root = _copy_tree(voc["voc_dir"], tmp_path / "voc")
    devkit = root / "VOCdevkit" / "VOC2012"
    (tmp_path / "out").mkdir()
    png = devkit / "SegmentationClass" / f"{VOC_VAL[1]}.png"
    write_palette_png(png, np.zeros((12, 7), np.uint8))
    with pytest.raises(ValueError, match=rf"{png}: label is 12x7, but its image .*{VOC_VAL[1]}.jpg is 40x56"):
        pascal.install_voc2012(Voc2012Config(source=str(root)), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")
    png.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{root}: VOCdevkit/VOC2012/SegmentationClass/{VOC_VAL[1]}.png is missing"):
        pascal.install_voc2012(Voc2012Config(source=str(root)), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")

    sbd = _copy_tree(voc["sbd_dir"], tmp_path / "sbd")
    mat = sbd / "dataset" / "cls" / "2008_000045.mat"
    scipy.io.savemat(mat, {"GTcls": {"Segmentation": np.zeros((40, 55), np.uint8)}})
    cfg = Voc2012Config(source=str(voc["voc_dir"]), sbd=str(sbd))
    with pytest.raises(ValueError, match=rf"{mat}: label is 40x55, but its image .*2008_000045.jpg is 40x56"):
        pascal.install_voc2012(cfg, tmp_path / "out" / "raw", progress=False)
    mat.unlink()
    with pytest.raises(FileNotFoundError, match=r"dataset/cls/2008_000045.mat is missing"):
        pascal.install_voc2012(cfg, tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


def test_voc2010_is_not_accepted_as_voc2012(tmp_path, context):
    message = r"found VOCdevkit/VOC2010/ImageSets/Segmentation/train.txt, but this must be the VOC2012 devkit"
    with pytest.raises(ValueError, match=message):
        pascal.install_voc2012(Voc2012Config(source=str(context["voc_dir"])), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_voc_shard_round_trip_keeps_jpeg_and_labels(tmp_path, voc):
    pascal.install_voc2012(_voc_config(voc, "folder", limit=3), tmp_path / "raw", progress=False)
    records = list(pascal.read_split(tmp_path / "raw", "train"))
    write_shards({"train": records}, tmp_path / "shards", "voc2012", list(pascal.VOC_CLASSES), shard_size=2)
    back = list(read_shards(shard_paths(tmp_path / "shards", "train")))
    assert [r["key"] for r in back] == [r["key"] for r in records]
    for a, b in zip(records, back, strict=True):
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_array_equal(a["image"], b["image"])
    with tarfile.open(shard_paths(tmp_path / "shards", "train")[0]) as tar:
        assert tar.extractfile(f"{records[0]['key']}.image.jpg").read() == records[0]["image_jpeg"]


# ----------------------------------------------------------------------------- PASCAL-Context


def _expected_context(label_map: np.ndarray, classes: tuple[str, ...], counted: bool) -> np.ndarray:
    """The reduction written out by hand: kept names by their labels.txt ids, everything else background."""
    ids = dict(CONTEXT59)
    out = np.full(label_map.shape, 0 if counted else 255, np.uint8)
    for k, name in enumerate(classes):
        out[label_map == ids[name]] = k + (1 if counted else 0)
    return out


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_context59_from_archives_and_folders(tmp_path, context, kind):
    meta = pascal.install_context(_context_config(context, kind, labels59=str(context["labels59"])), tmp_path / "raw",
                                  progress=False)
    assert meta["name"] == "pascal_context" and meta["counts"] == {"train": 3, "val": 2}
    assert meta["classes"][:3] == ["background", "aeroplane", "bag"] and len(meta["classes"]) == 60
    assert meta["classes"][1:] == [n for n, _ in CONTEXT59]
    assert meta["source"]["images"]["origin"] == kind and meta["source"]["class_list"]["md5"] == _md5(context["labels59"])
    names = pascal.CONTEXT59
    train = list(pascal.read_split(tmp_path / "raw", "train"))
    assert [r["key"] for r in train] == [f"pascal_context-train-{s}" for s in CONTEXT_TRAIN]
    for r in train + list(pascal.read_split(tmp_path / "raw", "val")):
        stem = r["meta"]["id"]
        label_map = context["label_maps"][stem]
        np.testing.assert_array_equal(r["label"], _expected_context(label_map, tuple(n for n, _ in names), True))
        assert r["meta"] == {"annotators": 1, "dataset": "pascal_context", "split": r["key"].split("-")[1], "id": stem}
    label, label_map = train[0]["label"], context["label_maps"][CONTEXT_TRAIN[0]]
    # Known ids: aeroplane (labels.txt 2) -> 1, bag (9) -> 2, person (284) -> 37, table (397) -> 50, wood (458) -> 59;
    # "unknown" (431) and any class outside the 59 -> background 0, counted.
    for source, want in ((2, 1), (9, 2), (284, 37), (397, 50), (458, 59), (UNKNOWN_ID, 0), (OTHER_ID, 0)):
        assert np.all(label[label_map == source] == want), source
    assert (tmp_path / "raw" / "labels" / f"{CONTEXT_TRAIN[0]}.mat").read_bytes() == \
        (context["context_dir"] / "trainval" / f"{CONTEXT_TRAIN[0]}.mat").read_bytes()  # as published


def test_context59_background_ignored(tmp_path, context):
    meta = pascal.install_context(_context_config(context, "folder", background="ignore", limit=1), tmp_path / "raw",
                                  progress=False)
    assert meta["classes"] == [n for n, _ in CONTEXT59] and meta["counts"] == {"train": 1, "val": 1}
    r = next(pascal.read_split(tmp_path / "raw", "train"))
    label_map = context["label_maps"][CONTEXT_TRAIN[0]]
    for source, want in ((2, 0), (9, 1), (458, 58), (UNKNOWN_ID, 255), (OTHER_ID, 255)):
        assert np.all(r["label"][label_map == source] == want), source


def test_context33(tmp_path, context):
    cfg = _context_config(context, "archive", classes=33, labels33=str(context["labels33"]))
    meta = pascal.install_context(cfg, tmp_path / "raw", progress=False)
    assert meta["classes"] == ["background", *pascal.CONTEXT33] and len(meta["classes"]) == 34
    r = next(pascal.read_split(tmp_path / "raw", "val"))
    label_map = context["label_maps"][CONTEXT_VAL[0]]
    np.testing.assert_array_equal(r["label"], _expected_context(label_map, pascal.CONTEXT33, True))
    # aeroplane -> 1, table ("diningtable") -> 11, person -> 15, sky -> 21; bag, wood, unknown -> background.
    for source, want in ((2, 1), (397, 11), (360, 21), (284, 15), (9, 0), (458, 0), (UNKNOWN_ID, 0)):
        assert np.all(r["label"][label_map == source] == want), source


def test_context_class_lists_are_checked(tmp_path, context):
    wrong = tmp_path / "59_labels.txt"
    wrong.write_text(context["labels59"].read_text().replace(": wood", ": pole"))
    message = rf"{wrong}: not the PASCAL-Context 59-class list \(missing \['wood'\], unexpected \['pole'\]\)"
    with pytest.raises(ValueError, match=message):
        pascal.install_context(_context_config(context, "folder", labels59=str(wrong), labels59_md5=None),
                               tmp_path / "raw", progress=False)
    with pytest.raises(FetchError, match=rf"{wrong}: md5 mismatch: expected {pascal.LABELS59_MD5}"):
        pascal.install_context(_context_config(context, "folder", labels59=str(wrong), labels59_md5=pascal.LABELS59_MD5),
                               tmp_path / "raw", progress=False)
    with pytest.raises(ValueError, match=r"33_labels.txt: not the PASCAL-Context 59-class list|expected ids 1..59"):
        pascal.install_context(_context_config(context, "folder", labels59=str(context["labels33"]), labels59_md5=None),
                               tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()

    ann = _copy_tree(context["context_dir"], tmp_path / "ann")  # a 59_labels.txt beside labels.txt is checked too
    (ann / "59_labels.txt").write_text(context["labels59"].read_text())
    meta = pascal.install_context(PascalContextConfig(images=str(context["voc_dir"]), annotations=str(ann)),
                                  tmp_path / "raw", progress=False)
    assert meta["source"]["class_list"] == {"origin": "annotations", "location": "59_labels.txt"}
    (ann / "59_labels.txt").write_text(wrong.read_text())
    with pytest.raises(ValueError, match=rf"{ann}/59_labels.txt: not the PASCAL-Context 59-class list"):
        pascal.install_context(PascalContextConfig(images=str(context["voc_dir"]), annotations=str(ann)),
                               tmp_path / "raw", progress=False)
    assert meta == json.loads((tmp_path / "raw" / "dataset.json").read_text())  # the old folder stays whole


def test_context_wrong_labels_txt_is_named(tmp_path, context):
    ann = _copy_tree(context["context_dir"], tmp_path / "ann")
    (ann / "labels.txt").write_text((ann / "labels.txt").read_text().replace("284: person", "284: people"))
    with pytest.raises(ValueError, match=rf"{ann}/labels.txt: id 284 is 'people', expected 'person'"):
        pascal.install_context(PascalContextConfig(images=str(context["voc_dir"]), annotations=str(ann)),
                               tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_context_errors_leave_nothing(tmp_path, context):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "raw"
    with pytest.raises(FetchError, match=rf"{context['voc_tar']}: md5 mismatch: expected {pascal.VOC2010_MD5}"):
        pascal.install_context(PascalContextConfig(images=str(context["voc_tar"]), annotations=str(context["context_dir"])),
                               out, progress=False)
    _nothing_left(tmp_path / "out")

    cut = tmp_path / "trainval.tar.gz"
    cut.write_bytes(context["context_tgz"].read_bytes()[:-400])
    with pytest.raises(ValueError, match=rf"{cut}: (truncated|not a readable)"):
        pascal.install_context(_context_config(context, "folder", annotations=str(cut), annotations_md5=None), out,
                               progress=False)
    _nothing_left(tmp_path / "out")

    ann = _copy_tree(context["context_dir"], tmp_path / "ann")
    mat = ann / "trainval" / f"{CONTEXT_VAL[1]}.mat"
    scipy.io.savemat(mat, {"LabelMap": np.zeros((40, 57), np.uint16)})
    cfg = PascalContextConfig(images=str(context["voc_dir"]), annotations=str(ann))
    with pytest.raises(ValueError, match=rf"{mat}: label is 40x57, but its image .*{CONTEXT_VAL[1]}.jpg is 40x56"):
        pascal.install_context(cfg, out, progress=False)
    _nothing_left(tmp_path / "out")
    mat.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{ann}: trainval/{CONTEXT_VAL[1]}.mat is missing"):
        pascal.install_context(cfg, out, progress=False)
    _nothing_left(tmp_path / "out")


def test_context_by_url(tmp_path, context):
    cfg = PascalContextConfig(images=context["voc_tar"].as_uri(), images_md5=_md5(context["voc_tar"]),
                              annotations=context["context_tgz"].as_uri(), annotations_md5=_md5(context["context_tgz"]),
                              labels33=context["labels33"].as_uri(), classes=33, limit=1)
    meta = pascal.install_context(cfg, tmp_path / "out" / "raw", progress=False)
    assert meta["source"]["annotations"]["origin"] == "url" and meta["source"]["class_list"]["origin"] == "url"
    assert sorted(p.name for p in (tmp_path / "out" / "raw").iterdir()) == [
        "dataset.json", "images", "labels", "labels.txt", "splits"]


# ----------------------------------------------------------------------------- configs, reader errors


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (PascalContextConfig, {"classes": 60}, r"classes must be 59 or 33, got 60"),
        (PascalContextConfig, {"classes": 59.0}, r"classes must be 59 or 33"),
        (PascalContextConfig, {"background": "skip"}, r"background must be 'class'"),
        (PascalContextConfig, {"limit": -1}, r"limit must be an integer >= 0"),
        (PascalContextConfig, {"images_md5": "abc"}, r"images_md5: md5 must be 32 lower-case hex"),
        (PascalContextConfig, {"annotations": ""}, r"annotations must not be empty"),
        (PascalContextConfig, {"labels33": "  "}, r"labels33 must be a URL, an archive or a folder"),
        (Voc2012Config, {"sbd_sha256": "F" * 64}, r"sbd_sha256: sha256 must be 64 lower-case hex"),
        (Voc2012Config, {"limit": True}, r"limit must be an integer >= 0"),
        (Voc2012Config, {"source": ""}, r"source must not be empty"),
    ],
)
def test_bad_config_names_the_field(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_read_split_checks_its_folder(tmp_path, voc):
    with pytest.raises(FileNotFoundError, match=r"dataset.json: not found"):
        next(pascal.read_split(tmp_path, "train"))
    pascal.install_voc2012(_voc_config(voc, "folder", sbd=False), tmp_path / "raw", progress=False)
    with pytest.raises(ValueError, match=r"unknown voc2012 split 'test'; allowed: train, val"):
        next(pascal.read_split(tmp_path / "raw", "test"))
    png = tmp_path / "raw" / "voc" / f"{VOC_TRAIN[1]}.png"
    write_palette_png(png, np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match=rf"{png}: label is \(3, 3\), image {VOC_TRAIN[1]}.jpg is \(56, 40\)"):
        list(pascal.read_split(tmp_path / "raw", "train"))

"""NYUDv2 + Ladický normals: install (files, folders, URLs, checksums, corrupt inputs), read, shard.

Every source is a small file in the published format, made by tests/fakes_nyud.py: an HDF5 file
laid out like nyu_depth_v2_labeled.mat (MATLAB header, transposed arrays), a v5 splits.mat and
FAIR's normals zip. A file:// URL exercises the download path; nothing touches the network.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pixelnet.data import nyud
from pixelnet.data.fetch import FetchError
from pixelnet.data.nyud import NyudConfig
from pixelnet.data.shards import read_shards, shard_paths, write_shards
from fakes_archives import cut_before_last_member
from fakes_nyud import (
    HEIGHT,
    RAW_SIZE,
    WIDTH,
    fake_image,
    fake_normals,
    fake_raw_normal,
    make_nyud_sources,
    normals_pickle,
    write_normals_zip,
)


def _md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture()
def src(tmp_path) -> dict[str, Path]:
    return make_nyud_sources(tmp_path, n=6)


def _config(src: dict[str, Path], **overrides) -> NyudConfig:
    """Local copies of the fakes, each pinned to its own checksums (the published ones are for the real files)."""
    kw = {
        "labeled": str(src["labeled"]), "labeled_md5": _md5(src["labeled"]), "labeled_sha256": _sha256(src["labeled"]),
        "splits": str(src["splits"]), "splits_md5": _md5(src["splits"]), "splits_sha256": _sha256(src["splits"]),
        "normals": str(src["normals"]), "normals_md5": _md5(src["normals"]), "normals_sha256": _sha256(src["normals"]),
    }
    return NyudConfig(**{**kw, **overrides})


def _nothing_left(parent: Path, allowed: tuple[str, ...] = ()) -> None:
    assert sorted(p.name for p in parent.iterdir()) == sorted(allowed)  # no out_dir, no temp folder


# ----------------------------------------------------------------------------- install


def test_install_from_local_files(tmp_path, src):
    raw = tmp_path / "out" / "raw"
    meta = nyud.install(_config(src), raw, progress=False)
    assert meta["name"] == "nyud" and meta["classes"] == []
    assert meta["counts"] == {"train": 3, "test": 3} and meta["labeled_counts"] == {"train": 3, "test": 3}
    assert meta["raw_frames"] == 0 and meta["limit"] == 0
    assert json.loads((raw / "dataset.json").read_text()) == meta
    sources = meta["sources"]
    assert sources["labeled"] == {"origin": "file", "location": str(src["labeled"]), "sha256": _sha256(src["labeled"]),
                                  "md5": _md5(src["labeled"])}
    assert sources["splits"]["sha256"] == _sha256(src["splits"]) and sources["raw_frames"] is None
    assert sources["normals"]["member"] == "surfacenormal_metadata/all_normals.pklz"
    assert sources["normals"]["sha256"] == _sha256(src["normals"])
    files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file())
    assert files == ["dataset.json"] + [f"images/{s}/{i:04d}.png" for s, ids in (("test", (2, 5, 6)), ("train", (1, 3, 4)))
                                        for i in ids] + [f"normals/{s}/{i:04d}.npy" for s, ids in
                                                         (("test", (2, 5, 6)), ("train", (1, 3, 4))) for i in ids]
    _nothing_left(tmp_path / "out", ("raw",))
    # Pixels marked valid whose vector is NaN are dropped and counted, not silently kept.
    valid = sum(int(fake_normals(i)[1].sum()) for i in range(1, 7))
    assert meta["normals"] == {"valid_pixels": valid, "dropped_pixels": 0}


def test_labeled_images_are_transposed_from_matlab_layout(src):
    with h5py.File(src["labeled"], "r") as f:
        assert f["images"].shape == (6, 3, WIDTH, HEIGHT) and f.userblock_size == 512
    assert src["labeled"].read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with nyud._Labeled(src["labeled"]) as labeled:
        assert labeled.count == 6
        image = labeled.image(5)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.flags.c_contiguous
    np.testing.assert_array_equal(image, fake_image(5))


def test_read_split_orientation_and_normals(tmp_path, src):
    nyud.install(_config(src), tmp_path / "raw", progress=False)
    records = list(nyud.read_split(tmp_path / "raw", "train"))
    assert [r["key"] for r in records] == ["nyud-train-0001", "nyud-train-0003", "nyud-train-0004"]  # index order
    for r, index in zip(records, (1, 3, 4)):
        assert r["meta"] == {"annotators": 1, "dataset": "nyud", "split": "train"}
        assert r["image"].shape == (HEIGHT, WIDTH, 3) and r["image"].dtype == np.uint8
        np.testing.assert_array_equal(r["image"][10, 50], [10, 50, index])  # row 10, column 50: R=row, G=col
        np.testing.assert_array_equal(r["image"], fake_image(index))
        normal, valid = fake_normals(index)
        valid = valid > 0
        assert r["normal"].shape == (HEIGHT, WIDTH, 3) and r["normal"].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(r["normal"][valid], axis=-1), 1.0, atol=1e-6)
        np.testing.assert_allclose(r["normal"][valid], normal[valid], atol=1e-6)
        assert not r["normal"][~valid].any()  # junk (0.3, NaN) under the mask became (0, 0, 0)
        assert np.isfinite(r["normal"]).all()
    test = list(nyud.read_split(tmp_path / "raw", "test"))
    assert [r["key"] for r in test] == ["nyud-test-0002", "nyud-test-0005", "nyud-test-0006"]


def test_install_by_url_and_the_download_is_gone(tmp_path, src):
    cfg = _config(src, labeled=None, labeled_url=src["labeled"].as_uri(), splits=None, splits_url=src["splits"].as_uri(),
                  normals=None, normals_url=src["normals"].as_uri())
    meta = nyud.install(cfg, tmp_path / "out" / "raw", progress=False)
    assert {k: v["origin"] for k, v in meta["sources"].items() if v} == {"labeled": "url", "splits": "url", "normals": "url"}
    assert meta["sources"]["labeled"]["location"] == src["labeled"].as_uri()
    assert meta["sources"]["normals"]["sha256"] == _sha256(src["normals"])
    assert not [p for p in (tmp_path / "out" / "raw").iterdir() if p.name.startswith(".")]
    _nothing_left(tmp_path / "out", ("raw",))


def test_normals_from_extracted_folder_or_bare_pickle(tmp_path, src):
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(src["normals"]) as z:
        z.extractall(folder)
    pklz = folder / "surfacenormal_metadata" / "all_normals.pklz"
    reference = nyud.install(_config(src), tmp_path / "a", progress=False)
    for location, origin in ((folder, "folder"), (pklz, "file")):
        out = tmp_path / origin
        meta = nyud.install(_config(src, normals=str(location)), out, progress=False)
        assert meta["sources"]["normals"]["origin"] == origin and meta["normals"] == reference["normals"]
        for a, b in zip(nyud.read_split(tmp_path / "a", "test"), nyud.read_split(out, "test")):
            np.testing.assert_array_equal(a["normal"], b["normal"])
    # A folder holding the labeled file and splits.mat works too.
    meta = nyud.install(_config(src, labeled=str(src["labeled"].parent), splits=str(src["splits"].parent)),
                        tmp_path / "b", progress=False)
    assert meta["sources"]["labeled"]["origin"] == "folder" and meta["counts"] == {"train": 3, "test": 3}


def test_limit_takes_the_first_indices(tmp_path, src):
    meta = nyud.install(_config(src, limit=1, raw_frames=str(src["raw_frames"])), tmp_path / "raw", progress=False)
    assert meta["labeled_counts"] == {"train": 1, "test": 1} and meta["raw_frames"] == 1
    assert meta["counts"] == {"train": 2, "test": 1}
    assert [r["key"] for r in nyud.read_split(tmp_path / "raw", "train")] == ["nyud-train-0001", "nyud-raw-kitchen_0001-r-0001"]
    assert [r["key"] for r in nyud.read_split(tmp_path / "raw", "test")] == ["nyud-test-0002"]


# ----------------------------------------------------------------------------- checksums and broken inputs


def test_wrong_md5_names_the_file_and_leaves_nothing(tmp_path, src):
    wrong = "0" * 32
    with pytest.raises(FetchError, match=rf"{src['labeled']}: md5 mismatch: expected {wrong}, got {_md5(src['labeled'])}"):
        nyud.install(_config(src, labeled_md5=wrong), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")
    with pytest.raises(FetchError, match=rf"{src['normals'].as_uri()}: sha256 mismatch"):
        nyud.install(_config(src, normals=None, normals_url=src["normals"].as_uri(), normals_sha256="f" * 64),
                     tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


def test_published_checksums_are_the_defaults(tmp_path, src):
    defaults = NyudConfig()
    assert (defaults.labeled_md5, defaults.labeled_sha256, defaults.splits_md5, defaults.splits_sha256,
            defaults.normals_md5) == (
        nyud.LABELED_MD5, nyud.LABELED_SHA256, nyud.SPLITS_MD5, nyud.SPLITS_SHA256, nyud.NORMALS_MD5)
    assert nyud.SPLITS_SHA256 == "6e081404491a8bfba2f066beaa9713ef6046f9007aa5f799f2a350506a580cee"
    # A local copy is checked against the published digests: splits.mat (read first) by its sha256 too...
    cfg = NyudConfig(labeled=str(src["labeled"]), splits=str(src["splits"]), splits_md5=None, normals=str(src["normals"]))
    assert cfg.splits_sha256 == nyud.SPLITS_SHA256
    with pytest.raises(FetchError, match=rf"{src['splits']}: sha256 mismatch: expected {nyud.SPLITS_SHA256}"):
        nyud.install(cfg, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()
    # ...and, with the fake splits.mat let through, the labeled file by its md5.
    cfg = dataclasses.replace(cfg, splits_sha256=None)
    assert cfg.labeled_md5 == nyud.LABELED_MD5
    with pytest.raises(FetchError, match=rf"{src['labeled']}: md5 mismatch: expected {nyud.LABELED_MD5}"):
        nyud.install(cfg, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_truncated_hdf5_is_named(tmp_path, src):
    data = src["labeled"].read_bytes()
    src["labeled"].write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{src['labeled']}: not a readable MATLAB v7.3 \(HDF5\) file"):
        nyud.install(_config(src, labeled_md5=None, labeled_sha256=None), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


def test_hdf5_without_images_is_named(tmp_path, src):
    with h5py.File(src["labeled"], "r+") as f:
        del f["images"]
    with pytest.raises(ValueError, match=rf"{src['labeled']}: no 'images' dataset"):
        nyud.install(_config(src, labeled_md5=None, labeled_sha256=None), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_truncated_or_corrupt_zip_is_named(tmp_path, src):
    data = src["normals"].read_bytes()
    src["normals"].write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{src['normals']}: not a readable zip archive"):
        nyud.install(_config(src, normals_md5=None, normals_sha256=None), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")
    # Whole zip, damaged member: the CRC (or gzip) check names the member.
    middle = len(data) // 3
    src["normals"].write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    with pytest.raises(ValueError, match=rf"{src['normals']}/surfacenormal_metadata/all_normals.pklz: unreadable"):
        nyud.install(_config(src, normals_md5=None, normals_sha256=None), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


def test_missing_members_are_named(tmp_path, src):
    cfg = _config(src, normals_md5=None, normals_sha256=None, splits_md5=None, splits_sha256=None)
    write_normals_zip(src["normals"], normals_pickle([1, 2, 3, 4, 5]), [1], [2])  # image 6 has no normals
    with pytest.raises(FileNotFoundError, match=r"all_normals.pklz: no normals for image 6 \(5 images inside\)"):
        nyud.install(cfg, tmp_path / "raw", progress=False)
    with zipfile.ZipFile(src["normals"], "w") as z:
        z.writestr("surfacenormal_metadata/train_SN40.json", "[]")
    with pytest.raises(FileNotFoundError, match=rf"{src['normals']}: expected one surfacenormal_metadata/all_normals.pklz"):
        nyud.install(cfg, tmp_path / "raw", progress=False)
    scipy.io.savemat(src["splits"], {"trainNdxs": np.array([[1.0]])})
    with pytest.raises(ValueError, match=rf"{src['splits']}: no testNdxs"):
        nyud.install(cfg, tmp_path / "raw", progress=False)
    scipy.io.savemat(src["splits"], {"trainNdxs": np.array([[1.0], [7.0]]), "testNdxs": np.array([[2.0]])})
    with pytest.raises(ValueError, match=r"splits.mat: index 7 is beyond the 6 images of"):
        nyud.install(cfg, tmp_path / "raw", progress=False)
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or folder"):
        nyud.install(_config(src, labeled=str(tmp_path / "nowhere")), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_normals_pickle_of_another_shape_is_named(tmp_path, src):
    data = {"all_normals": np.zeros((6, HEIGHT, WIDTH, 3), np.float32), "all_filenames": [f"{i:06d}" for i in range(1, 7)]}
    write_normals_zip(src["normals"], gzip.compress(pickle.dumps(data, protocol=4)), [1], [2])
    with pytest.raises(ValueError, match=r"all_normals.pklz: no 'all_valid_depth_masks'"):
        nyud.install(_config(src, normals_md5=None, normals_sha256=None), tmp_path / "raw", progress=False)
    data["all_valid_depth_masks"] = np.ones((6, HEIGHT, WIDTH + 1), np.float32)
    write_normals_zip(src["normals"], gzip.compress(pickle.dumps(data, protocol=4)), [1], [2])
    with pytest.raises(ValueError, match=r"all_valid_depth_masks is \(6, 48, 65\), all_normals \(6, 48, 64, 3\)"):
        nyud.install(_config(src, normals_md5=None, normals_sha256=None), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused(tmp_path, src):
    marker = tmp_path / "ran"
    evil = gzip.compress(pickle.dumps({"all_normals": _RunsCode(marker)}))
    write_normals_zip(src["normals"], evil, [1], [2])
    with pytest.raises(ValueError, match=r"all_normals.pklz: not FAIR's normals pickle: refusing to load pathlib"):
        nyud.install(_config(src, normals_md5=None, normals_sha256=None), tmp_path / "raw", progress=False)
    assert not marker.exists() and not (tmp_path / "raw").exists()


@pytest.mark.parametrize("protocol", [2, 5])
def test_pickle_protocols_load(protocol):
    data = nyud._load_pklz(io.BytesIO(normals_pickle([3, 1], protocol)), "x")
    normals = nyud._Normals(data, "x")
    normal, valid = normals.get(3)
    np.testing.assert_array_equal(normal, fake_normals(3)[0])
    assert valid.dtype == bool and valid.sum() == fake_normals(3)[1].sum()


# ----------------------------------------------------------------------------- raw frames


def test_raw_frames_join_the_training_split(tmp_path, src):
    meta = nyud.install(_config(src, raw_frames=str(src["raw_frames"])), tmp_path / "raw", progress=False)
    assert meta["counts"] == {"train": 5, "test": 3} and meta["raw_frames"] == 2
    assert meta["sources"]["raw_frames"]["origin"] == "folder"
    records = list(nyud.read_split(tmp_path / "raw", "train"))
    assert [r["key"] for r in records] == ["nyud-train-0001", "nyud-train-0003", "nyud-train-0004",
                                           "nyud-raw-kitchen_0001-r-0001", "nyud-raw-kitchen_0001-r-0002"]
    png, jpg = records[3:]
    np.testing.assert_array_equal(png["image"], fake_image(101, *RAW_SIZE))  # lossless
    assert "image_jpeg" not in png and jpg["image_jpeg"] == (src["raw_frames"] / "kitchen_0001" / "r-0002.jpg").read_bytes()
    for r, k in ((png, 1), (jpg, 2)):
        assert r["meta"]["split"] == "train" and r["normal"].shape == (*RAW_SIZE, 3)
        want = fake_raw_normal(k)
        valid = np.abs(want).sum(axis=-1) > 0
        np.testing.assert_allclose(r["normal"][valid], want[valid] / np.linalg.norm(want[valid], axis=-1, keepdims=True), atol=1e-6)
        assert not r["normal"][~valid].any()
    assert len(list(nyud.read_split(tmp_path / "raw", "test"))) == 3  # extras never reach test
    # The same pairs as a tar archive give the same records.
    archive = tmp_path / "frames.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src["raw_frames"], arcname=".")
    meta = nyud.install(_config(src, raw_frames=str(archive)), tmp_path / "raw2", progress=False)
    assert meta["sources"]["raw_frames"]["origin"] == "archive" and meta["raw_frames"] == 2
    again = list(nyud.read_split(tmp_path / "raw2", "train"))[3:]
    for a, b in zip(records[3:], again, strict=True):
        assert a["key"] == b["key"]
        np.testing.assert_array_equal(a["normal"], b["normal"])


def test_raw_frame_without_normals_is_named(tmp_path, src):
    (src["raw_frames"] / "kitchen_0001" / "r-0002_normal.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"kitchen_0001/r-0002_normal.npy \(the normals of kitchen_0001/r-0002.jpg\) is missing"):
        nyud.install(_config(src, raw_frames=str(src["raw_frames"])), tmp_path / "raw", progress=False)
    np.save(src["raw_frames"] / "kitchen_0001" / "r-0002_normal.npy", np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match=r"r-0002_normal.npy: must be \(40, 56, 3\) float"):
        nyud.install(_config(src, raw_frames=str(src["raw_frames"])), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_truncated_raw_frames_tar_is_named(tmp_path, src):
    """A tar of raw frames cut short: an error naming it, not a frame whose normals are "missing"."""
    archive = tmp_path / "frames.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src["raw_frames"], arcname=".")
    with pytest.raises(ValueError, match=rf"{cut_before_last_member(archive)}: truncated tar archive"):
        nyud.install(_config(src, raw_frames=str(archive)), tmp_path / "out" / "raw", progress=False)
    _nothing_left(tmp_path / "out")


# ----------------------------------------------------------------------------- read, shard, config


def test_shard_round_trip(tmp_path, src):
    nyud.install(_config(src, raw_frames=str(src["raw_frames"])), tmp_path / "raw", progress=False)
    records = list(nyud.read_split(tmp_path / "raw", "train"))
    manifest = write_shards({"train": records}, tmp_path / "shards", "nyud", [], shard_size=2)
    assert manifest["splits"]["train"]["count"] == 5 and manifest["splits"]["train"]["fields"] == ["image", "normal"]
    back = list(read_shards(shard_paths(tmp_path / "shards", "train")))
    for a, b in zip(records, back, strict=True):
        assert a["key"] == b["key"] and b["meta"]["dataset"] == "nyud"
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["normal"], b["normal"])


def test_read_split_checks_its_folder(tmp_path, src):
    with pytest.raises(ValueError, match=r"unknown NYUDv2 split 'val'"):
        next(nyud.read_split(tmp_path, "val"))
    with pytest.raises(FileNotFoundError, match=r"dataset.json: not found"):
        next(nyud.read_split(tmp_path, "train"))
    nyud.install(_config(src), tmp_path / "raw", progress=False)
    (tmp_path / "raw" / "normals" / "test" / "0005.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"normals/test/0005.npy: not found"):
        list(nyud.read_split(tmp_path / "raw", "test"))
    (tmp_path / "raw" / "images" / "train" / "0003.png").unlink()
    with pytest.raises(ValueError, match=r"images/train: 2 images, but dataset.json says 3"):
        next(nyud.read_split(tmp_path / "raw", "train"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"labeled_md5": "abc"}, r"^labeled_md5: md5 must be 32 lower-case hex"),
        ({"labeled_sha256": "0" * 32}, r"^labeled_sha256: sha256 must be 64"),
        ({"normals_sha256": "X" * 64}, r"^normals_sha256: sha256 must be 64"),
        ({"splits_md5": 5}, r"^splits_md5: md5 must be a hex string or null, got 5"),
        ({"limit": -1}, r"^limit: must be an integer >= 0"),
        ({"limit": True}, r"^limit: must be an integer >= 0"),
        ({"normals_url": "dl.fbaipublicfiles.com/x.zip"}, r"^normals_url: expected an http"),
        ({"labeled": ""}, r"^labeled: expected a non-empty path"),
        ({"raw_frames": 3}, r"^raw_frames: expected a non-empty path"),
    ],
)
def test_bad_config_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        NyudConfig(**overrides)


def test_defaults_name_the_published_sources():
    cfg = NyudConfig()
    assert cfg.labeled_url.endswith("/nyu_depth_v2/nyu_depth_v2_labeled.mat") and cfg.splits_url.endswith("/splits.mat")
    assert cfg.normals_url == "https://dl.fbaipublicfiles.com/fair_self_supervision_benchmark/nyuv2_surfacenormal_metadata.zip"
    assert "ladickyl/nyu_normals_gt.zip" in nyud.__doc__ and nyud.NORMALS_DEAD_URL.endswith("nyu_normals_gt.zip")
    assert cfg.limit == 0 and cfg.raw_frames is None and cfg.normals_sha256 is None

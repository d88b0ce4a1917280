"""BSDS500 and HED-BSDS: fetch (folder, archive, URL, checksums), read, consensus, shard, CLI.

The real-data tests read ../shared/datasets/BSR and skip when it is absent; the fetch tests build a
small archive from a few real files (fabricated ones without ../shared), and the HED tests a tiny
archive in HED-BSDS's layout. Nothing touches the network: a file:// URL exercises the URL path.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from fakes_archives import cut_before_last_member
from PIL import Image
from typer.testing import CliRunner

from pipeline.params import ParamsError, load_params, parse_params
from pixelnet.data import bsds
from pixelnet.data.bsds import OFFICIAL_MD5, BsdsConfig
from pixelnet.data.fetch import FetchError
from pixelnet.data.shards import read_manifest, read_shards, shard_paths, write_shards
from pixelnet.tasks.edges import positives

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
BSR = SHARED / "datasets" / "BSR"
DATA = BSR / "BSDS500" / "data"
needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/datasets/BSR is not here")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_mat(path: Path, boundaries: np.ndarray) -> None:
    """A BSDS ground-truth file: a 1 x A cell of structs with Segmentation and Boundaries."""
    cell = np.empty((1, len(boundaries)), dtype=object)
    for i, b in enumerate(boundaries):
        cell[0, i] = {"Segmentation": np.ones(b.shape, np.uint16), "Boundaries": b.astype(np.uint8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"groundTruth": cell})


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=90)


@pytest.fixture()
def mini_data(tmp_path) -> Path:
    """A BSDS500/data folder with 2 images per split: real ones from ../shared, else fabricated."""
    data = tmp_path / "mini" / "BSR" / "BSDS500" / "data"
    rng = np.random.default_rng(0)
    for s, split in enumerate(bsds.SPLITS):
        if DATA.is_dir():
            for jpg in sorted((DATA / "images" / split).glob("*.jpg"))[:2]:
                for rel in (f"images/{split}/{jpg.name}", f"groundTruth/{split}/{jpg.stem}.mat"):
                    (data / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(DATA / rel, data / rel)
        else:
            for i in range(2):
                stem = f"{s + 1}0000{i}"
                _write_jpeg(data / "images" / split / f"{stem}.jpg", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
                _write_mat(data / "groundTruth" / split / f"{stem}.mat", rng.random((4 + i, 24, 32)) < 0.1)
    return data


def _tgz(data: Path, out: Path) -> Path:
    """An archive laid out like BSR_bsds500.tgz (BSR/BSDS500/data/...), with members we must skip."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(data.parents[1], arcname="BSR")
        extra = b"not an image"
        for name in ("BSR/bench/data/images/1.jpg", "BSR/BSDS500/data/images/train/Thumbs.db"):
            info = tarfile.TarInfo(name)
            info.size = len(extra)
            tar.addfile(info, io.BytesIO(extra))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_copy(raw: Path, data: Path) -> None:
    copied = _files(raw)
    meta = json.loads(copied.pop("dataset.json"))
    assert meta["counts"] == {"train": 2, "val": 2, "test": 2}
    assert meta["classes"] == ["background", "boundary"]
    assert copied == {k: v for k, v in _files(data).items() if k != "SHA256SUMS"}  # byte for byte


# ----------------------------------------------------------------------------- fetch


def test_install_from_folder(tmp_path, mini_data):
    meta = bsds.install(BsdsConfig(source=str(mini_data.parents[2])), tmp_path / "raw", progress=False)
    _check_copy(tmp_path / "raw", mini_data)
    assert meta["source"]["origin"] == "folder"


def test_install_from_archive(tmp_path, mini_data):
    archive = _tgz(mini_data, tmp_path / "BSR_bsds500.tgz")
    cfg = BsdsConfig(source=str(archive), sha256=_sha256(archive), md5=None)
    meta = bsds.install(cfg, tmp_path / "raw", progress=False)
    _check_copy(tmp_path / "raw", mini_data)
    assert meta["source"]["origin"] == "archive" and meta["source"]["sha256"] == _sha256(archive)


def test_install_by_url(tmp_path, mini_data):
    archive = _tgz(mini_data, tmp_path / "BSR_bsds500.tgz")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    cfg = BsdsConfig(source=None, url=archive.as_uri(), sha256=_sha256(archive), md5=md5)
    meta = bsds.install(cfg, tmp_path / "out" / "raw", progress=False)
    _check_copy(tmp_path / "out" / "raw", mini_data)
    assert meta["source"] == {"origin": "url", "location": archive.as_uri(), "sha256": _sha256(archive), "md5": md5,
                              "files_verified": 0}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["raw"]  # the download is gone


def test_checksum_mismatch_names_url_expected_and_actual(tmp_path, mini_data):
    archive = _tgz(mini_data, tmp_path / "BSR_bsds500.tgz")
    wrong = "0" * 64
    cfg = BsdsConfig(source=None, url=archive.as_uri(), sha256=wrong, md5=None)
    with pytest.raises(FetchError, match=rf"{archive.as_uri()}: sha256 mismatch: expected {wrong}, got {_sha256(archive)}"):
        bsds.install(cfg, tmp_path / "out" / "raw", progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written, no temp folder left


def test_local_archive_is_checked_against_the_official_md5(tmp_path, mini_data):
    archive = _tgz(mini_data, tmp_path / "BSR_bsds500.tgz")
    with pytest.raises(FetchError, match=rf"{archive}: md5 mismatch: expected {bsds.OFFICIAL_MD5}"):
        bsds.install(BsdsConfig(source=str(archive)), tmp_path / "raw", progress=False)


def test_corrupt_archive_is_named(tmp_path, mini_data):
    archive = _tgz(mini_data, tmp_path / "BSR_bsds500.tgz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # truncated
    with pytest.raises(ValueError, match=rf"{archive}: (truncated or corrupt|not a readable) tar archive"):
        bsds.install(BsdsConfig(source=str(archive), md5=None), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_truncated_plain_tar_is_named(tmp_path, mini_data):
    """An uncompressed tar cut short: an error naming the archive, not an image "missing" from it."""
    archive = tmp_path / "BSR_bsds500.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(mini_data.parents[1], arcname="BSR")
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match=rf"{cut_before_last_member(archive)}: truncated tar archive"):
        bsds.install(BsdsConfig(source=str(archive), md5=None), tmp_path / "out" / "raw", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_limit_takes_the_first_ids(tmp_path, mini_data):
    meta = bsds.install(BsdsConfig(source=str(mini_data), limit=1), tmp_path / "raw", progress=False)
    assert meta["counts"] == {"train": 1, "val": 1, "test": 1}
    first = min((mini_data / "images" / "val").glob("*.jpg")).name
    assert [p.name for p in (tmp_path / "raw" / "images" / "val").iterdir()] == [first]


def test_missing_ground_truth_and_bad_sums_are_named(tmp_path, mini_data):
    mat = min((mini_data / "groundTruth" / "test").glob("*.mat"))
    (mini_data / "SHA256SUMS").write_text(f"{'1' * 64}  ./groundTruth/test/{mat.name}\n")
    with pytest.raises(FetchError, match=rf"groundTruth/test/{mat.name}: sha256 .* does not match SHA256SUMS"):
        bsds.install(BsdsConfig(source=str(mini_data)), tmp_path / "raw", progress=False)
    mat.unlink()
    with pytest.raises(FileNotFoundError, match=rf"groundTruth/test/{mat.name} is missing"):
        bsds.install(BsdsConfig(source=str(mini_data)), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


# ----------------------------------------------------------------------------- read, consensus


@pytest.fixture(scope="module")
def real_raw(tmp_path_factory) -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/datasets/BSR is not here")
    raw = tmp_path_factory.mktemp("bsds") / "raw"
    bsds.install(BsdsConfig(source=str(BSR)), raw, progress=False)
    return raw


@needs_shared
def test_real_splits(real_raw):
    meta = json.loads((real_raw / "dataset.json").read_text())
    assert meta["counts"] == {"train": 200, "val": 100, "test": 200}
    assert meta["source"]["files_verified"] == 1000  # every file against the folder's SHA256SUMS
    records = list(islice(bsds.read_split(real_raw, "val"), 12))
    annotators = {r["meta"]["annotators"] for r in records}
    assert len(annotators) > 1 and min(annotators) >= 4 and max(annotators) <= 9
    for r in records:
        a, h, w = r["boundaries"].shape
        assert r["image"].shape == (h, w, 3) and {(h, w), (w, h)} == {(321, 481), (481, 321)}
        assert r["meta"] == {"annotators": a, "dataset": "bsds500", "split": "val", "id": r["key"][4:]}
        np.testing.assert_array_equal(r["edge"], r["boundaries"].sum(axis=0))
        assert r["image_jpeg"] == (DATA / "images" / "val" / f"{r['meta']['id']}.jpg").read_bytes()


@needs_shared
def test_consensus_on_real_annotations(real_raw):
    record = next(bsds.read_split(real_raw, "test"))
    votes = record["boundaries"].sum(axis=0)  # (H, W)
    a = record["meta"]["annotators"]
    np.testing.assert_array_equal(positives(record, 3), votes >= 3)  # the default: at least 3 annotators
    np.testing.assert_array_equal(positives(record, 1), votes >= 1)
    np.testing.assert_array_equal(positives(record, 99), votes == a)  # capped at how many there were
    assert positives(record, 3).sum() < positives(record, 1).sum()


def test_consensus_is_capped_by_the_annotator_count():
    edge = np.array([[0, 1, 2]], dtype=np.uint8)
    record = {"edge": edge, "meta": {"annotators": 2}}
    np.testing.assert_array_equal(positives(record, 3), [[False, False, True]])


@needs_shared
def test_shard_round_trip_keeps_boundaries_and_jpeg(tmp_path, real_raw):
    records = list(islice(bsds.read_split(real_raw, "train"), 3))
    write_shards({"test": records}, tmp_path / "shards", "bsds500", list(bsds.CLASSES), shard_size=2)
    back = list(read_shards(shard_paths(tmp_path / "shards", "test")))
    assert [r["key"] for r in back] == [r["key"] for r in records]
    for a, b in zip(records, back):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["edge"], b["edge"])
        np.testing.assert_array_equal(a["boundaries"], b["boundaries"])
        assert b["boundaries"].dtype == bool and b["meta"]["annotators"] == len(b["boundaries"])
    with tarfile.open(shard_paths(tmp_path / "shards", "test")[0]) as tar:
        assert tar.extractfile(f"{records[0]['key']}.image.jpg").read() == records[0]["image_jpeg"]


# ----------------------------------------------------------------------------- HED-BSDS


def _hed_tar(tmp_path: Path, raw: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """HED-BSDS.tar in the published layout, built from a raw folder's train/val images.

    Each image gets the identity augmentation (gt = consensus fraction, quantised to 8 bits as HED's
    PNGs are) and a rotated one; one extra pair belongs to a test image and must be left out.
    """
    root = tmp_path / "hed-src" / "HED-BSDS"
    lines, counts = [], {}
    for split in ("train", "val", "test"):
        for jpg in sorted((raw / "images" / split).glob("*.jpg")):
            boundaries = bsds.read_boundaries(raw / "groundTruth" / split / f"{jpg.stem}.mat")
            counts[jpg.stem] = boundaries.sum(axis=0)
            fraction = counts[jpg.stem] / len(boundaries)
            for aug, grey in (("0.0_1_0", fraction), ("22.5_1_0", np.rot90(np.rot90(fraction)))):
                img, gt = f"train/aug_data/{aug}/{jpg.stem}.jpg", f"train/aug_gt/{aug}/{jpg.stem}.png"
                (root / img).parent.mkdir(parents=True, exist_ok=True)
                (root / gt).parent.mkdir(parents=True, exist_ok=True)
                image = np.asarray(Image.open(jpg).convert("RGB"))
                _write_jpeg(root / img, image if aug.startswith("0.0") else np.rot90(image, 2).copy())
                Image.fromarray(np.rint(grey * 255).astype(np.uint8)).save(root / gt)
                lines.append(f"{img} {gt}")
    (root / "train_pair.lst").write_text("\n".join(lines) + "\n")
    archive = tmp_path / "HED-BSDS.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname="HED-BSDS")
    return archive, counts


def test_hed_fraction_maps_to_the_nearest_annotator_count():
    for a in range(1, 10):
        exact = np.rint(np.arange(a + 1) / a * 255).astype(np.uint8)  # c of a annotators, as HED stores it
        np.testing.assert_array_equal(bsds.hed_edge_count(exact, a), np.arange(a + 1))
    # Resampled pixels between two counts go to the nearer one.
    np.testing.assert_array_equal(bsds.hed_edge_count(np.array([0, 31, 33, 127, 129, 255], np.uint8), 4), [0, 0, 1, 2, 2, 4])


def test_hed_archive_is_the_training_set(tmp_path, mini_data, tiny_params_dict):
    from pipeline import stages

    archive, counts = _hed_tar(tmp_path, mini_data)
    cfg = BsdsConfig(source=str(mini_data), hed_archive=str(archive), hed_sha256=_sha256(archive))
    meta = bsds.install(cfg, tmp_path / "raw", progress=False)
    assert meta["hed"]["pairs_listed"] == 12 and meta["hed"]["pairs"] == 8  # test images' pairs left out
    assert (tmp_path / "raw" / "hed" / "train_pair.lst").read_text().count("\n") == 8

    annotators = bsds.annotator_counts(tmp_path / "raw", ("train", "val"))
    records = {r["key"]: r for r in bsds.read_hed(tmp_path / "raw", annotators)}
    assert len(records) == 8
    for key, r in records.items():
        stem = r["meta"]["id"]
        assert r["meta"]["annotators"] == annotators[stem] and r["meta"]["dataset"] == "bsds500"
        want = counts[stem] if "0p0_1_0" in key else np.rot90(counts[stem], 2)
        np.testing.assert_array_equal(r["edge"], want)  # exact on HED's 8-bit fractions
    assert min(records).startswith("hed-train-aug_data-0p0_1_0-")

    # The shard stage trains on the HED pairs of train_splits and keeps BSDS test for evaluation.
    tiny_params_dict["datasets"] = ["synthetic", "bsds500"]
    tiny_params_dict["data"]["bsds500"] = {"source": str(mini_data), "hed_archive": str(archive), "train_splits": ["train"]}
    params = parse_params(tiny_params_dict)
    manifest = stages.shard("bsds500", params, tmp_path / "raw", tmp_path / "shards")
    assert manifest["splits"]["train"]["count"] == 4 and manifest["splits"]["test"]["count"] == 2
    assert manifest["splits"]["train"]["fields"] == ["edge", "image"]
    assert "boundaries" in manifest["splits"]["test"]["fields"]


def test_hed_checksum_mismatch(tmp_path, mini_data):
    archive, _ = _hed_tar(tmp_path, mini_data)
    cfg = BsdsConfig(source=str(mini_data), hed_archive=archive.as_uri(), hed_sha256="f" * 64)
    with pytest.raises(FetchError, match=rf"{archive.as_uri()}: sha256 mismatch: expected f{{64}}, got {_sha256(archive)}"):
        bsds.install(cfg, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_truncated_hed_archive_is_named(tmp_path, mini_data):
    archive, _ = _hed_tar(tmp_path, mini_data)  # HED-BSDS.tar is published uncompressed
    cfg = BsdsConfig(source=str(mini_data), hed_archive=str(cut_before_last_member(archive)))
    with pytest.raises(ValueError, match=rf"{archive}: truncated tar archive"):
        bsds.install(cfg, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


# ----------------------------------------------------------------------------- params, CLI


def test_repository_params_keep_bsds500_opt_in():
    params = load_params(REPO / "params.yaml")
    assert params.datasets == ("synthetic",)  # default `dvc repro`: no ../shared, no network
    bsds = params.data["bsds500"]
    assert bsds.source is None and bsds.url.endswith("BSR_bsds500.tgz")  # a user with network gets the official archive
    assert bsds.md5 == OFFICIAL_MD5 and bsds.train_splits == ("train", "val")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["datasets"] = ["synthetic", "bsds500"]
    raw["tasks"]["edges"]["dataset"] = "bsds500"  # the documented `dvc exp run -S ...` override
    assert parse_params(raw).tasks["edges"].dataset == "bsds500"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"sorce": "x"}, r"data\.bsds500\.sorce: unknown key"),
        ({"limit": "all"}, r"data\.bsds500\.limit: expected int"),
        ({"limit": -1}, r"data\.bsds500\.limit must be an integer >= 0"),
        ({"train_splits": ["train", "test"]}, r"data\.bsds500\.train_splits: test is the held-out"),
        ({"train_splits": []}, r"data\.bsds500\.train_splits must name"),
        ({"sha256": "abc"}, r"data\.bsds500\.sha256: sha256 must be 64 lower-case hex"),
        ({"hed_archive": 3}, r"data\.bsds500\.hed_archive: expected"),
    ],
)
def test_bad_bsds500_params_name_the_key(tiny_params_dict, section, message):
    tiny_params_dict["data"]["bsds500"] = section
    with pytest.raises(ParamsError, match=message):
        parse_params(tiny_params_dict)


@needs_shared
def test_cli_download_and_shard_a_subset(tmp_path, tiny_params_dict):
    from pipeline.cli import app

    tiny_params_dict["datasets"] = ["synthetic", "bsds500"]
    tiny_params_dict["data"]["bsds500"] = {"source": str(BSR), "limit": 2}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict))
    runner = CliRunner()
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    result = runner.invoke(app, ["download", "bsds500", "--out", str(raw), "--params", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["shard", "bsds500", "--raw", str(raw), "--out", str(shards), "--params", str(path)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(shards)
    assert {s: v["count"] for s, v in manifest["splits"].items()} == {"train": 4, "test": 2}  # train + val, test
    assert manifest["splits"]["test"]["fields"] == ["boundaries", "edge", "image"]
    keys = [r["key"] for r in read_shards(shard_paths(shards, "train"))]
    assert [k.split("-")[0] for k in keys] == ["train", "train", "val", "val"]

    tiny_params_dict["data"]["bsds500"]["source"] = str(tmp_path / "nowhere")
    path.write_text(yaml.safe_dump(tiny_params_dict))
    result = runner.invoke(app, ["download", "bsds500", "--out", str(tmp_path / "raw2"), "--params", str(path)])
    assert result.exit_code == 2 and "data.bsds500.source" in result.output and "nowhere" in result.output


def test_eval_split_val_holds_out_val_and_leaves_test_untouched(tmp_path, tiny_params_dict):
    """Choosing settings on val: train on train, the shards' held-out split is val, and test is not read."""
    if not BSR.is_dir():
        pytest.skip("../shared is absent")
    tiny_params_dict["datasets"] = ["synthetic", "bsds500"]
    tiny_params_dict["data"]["bsds500"] = {"source": str(BSR), "limit": 2, "train_splits": ["train"], "eval_split": "val"}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    from pipeline.cli import app

    runner = CliRunner()
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    assert runner.invoke(app, ["download", "bsds500", "--out", str(raw), "--params", str(params)]).exit_code == 0
    result = runner.invoke(app, ["shard", "bsds500", "--raw", str(raw), "--out", str(shards), "--params", str(params)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(shards)
    assert set(manifest["splits"]) == {"train", "val"} and manifest["splits"]["val"]["count"] == 2
    val_keys = [r["key"] for r in read_shards(shard_paths(shards, "val"))]
    first_val = sorted(p.stem for p in (BSR / "BSDS500" / "data" / "images" / "val").glob("*.jpg"))[:2]
    assert val_keys == [f"val-{i}" for i in first_val]  # the first two val images, nothing from test


@pytest.mark.parametrize(("section", "message"), [
    ({"eval_split": "train"}, "eval_split must be test or val"),
    ({"eval_split": "val", "train_splits": ["train", "val"]}, "eval_split: val is also in train_splits"),
])
def test_eval_split_is_checked(tiny_params_dict, section, message):
    tiny_params_dict["data"]["bsds500"] = section
    with pytest.raises(ParamsError, match=message):
        parse_params(tiny_params_dict)

"""`pixelnet download` and `pixelnet shard` through the CLI on small files in each dataset's real
format (NYUDv2's HDF5 .mat, VOC trees with palette PNGs, PASCAL-Context's .mat label maps, a user's
folder): the shards come out right, and a wrong checksum or a truncated archive fails with a clear
message and leaves no raw folder and no shards behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fakes_nyud import make_nyud_sources
from fakes_pascal import make_context_sources, make_voc2012_sources
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.data.shards import read_manifest, read_shards, shard_paths


def _params(tmp_path: Path, tiny: dict, dataset: str, section: dict) -> Path:
    tiny = {**tiny, "datasets": ["synthetic", dataset], "data": {**tiny["data"], dataset: section}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny))
    return path


def _download_and_shard(tmp_path: Path, params: Path, dataset: str):
    runner = CliRunner()
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    first = runner.invoke(app, ["download", dataset, "--out", str(raw), "--params", str(params)])
    if first.exit_code != 0:
        return first, raw, shards
    return runner.invoke(app, ["shard", dataset, "--raw", str(raw), "--out", str(shards), "--params", str(params)]), raw, shards


def _md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# Each fake file's own md5 stands in for the published one, so verification runs as it would.
def _nyud(tmp_path):
    src = make_nyud_sources(tmp_path / "src", n=6)
    return {"labeled": str(src["labeled"]), "labeled_md5": _md5(src["labeled"]), "labeled_sha256": None,
            "splits": str(src["splits"]), "splits_md5": _md5(src["splits"]), "splits_sha256": None,
            "normals": str(src["normals"]), "normals_md5": _md5(src["normals"])}, src


def _voc(tmp_path):
    src = make_voc2012_sources(tmp_path / "src")
    return {"source": str(src["voc_tar"]), "md5": _md5(src["voc_tar"]),
            "sbd": str(src["sbd_tgz"]), "sbd_md5": _md5(src["sbd_tgz"])}, src


def _context(tmp_path):
    src = make_context_sources(tmp_path / "src")
    return {"images": str(src["voc_tar"]), "images_md5": _md5(src["voc_tar"]),
            "annotations": str(src["context_tgz"]), "annotations_md5": _md5(src["context_tgz"])}, src


def _folder(tmp_path):
    root = tmp_path / "src" / "mine"
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for kind in ("images", "labels"):
            (root / kind / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(root / "images" / split / f"p{i}.png")
            Image.fromarray(rng.integers(0, 3, (24, 32), dtype=np.uint8)).save(root / "labels" / split / f"p{i}.png")
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    return {"source": str(root)}, {"root": root}


CASES = {
    "nyud": (_nyud, "normal", "test"),
    "voc2012": (_voc, "label", "val"),
    "pascal_context": (_context, "label", "val"),
    "folder": (_folder, "label", "test"),
}


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_download_and_shard_through_the_cli(tmp_path, tiny_params_dict, dataset):
    make, field, held_out = CASES[dataset]
    section, _ = make(tmp_path)
    params = _params(tmp_path, tiny_params_dict, dataset, section)
    result, raw, shards = _download_and_shard(tmp_path, params, dataset)
    assert result.exit_code == 0, result.output
    info = json.loads((raw / "dataset.json").read_text())
    manifest = read_manifest(shards)
    assert manifest["dataset"] == dataset
    assert set(manifest["splits"]) == {"train", held_out}
    for split in manifest["splits"]:
        assert manifest["splits"][split]["count"] == info["counts"][split] > 0
        records = list(read_shards(shard_paths(shards, split)))
        assert len(records) == info["counts"][split]
        for r in records:
            assert r["image"].dtype == np.uint8 and r["image"].shape[2] == 3
            assert r[field].shape[:2] == r["image"].shape[:2]
            assert r["meta"]["dataset"] == dataset


def test_nyud_wrong_checksum_names_the_file_and_leaves_nothing(tmp_path, tiny_params_dict):
    section, src = _nyud(tmp_path)
    params = _params(tmp_path, tiny_params_dict, "nyud", {**section, "labeled_md5": "0" * 32})
    result, raw, shards = _download_and_shard(tmp_path, params, "nyud")
    assert result.exit_code == 2
    assert "md5" in result.output and Path(src["labeled"]).name in result.output
    assert not raw.exists() and not shards.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw")]  # no temp folder either


@pytest.mark.parametrize("dataset", ["voc2012", "pascal_context"])
def test_truncated_archive_fails_clearly_and_leaves_nothing(tmp_path, tiny_params_dict, dataset):
    make, _, _ = CASES[dataset]
    section, _ = make(tmp_path)
    key = "source" if dataset == "voc2012" else "images"
    archive = Path(section[key])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cut mid-member
    overrides = {"md5": None} if dataset == "voc2012" else {"images_md5": None}
    params = _params(tmp_path, tiny_params_dict, dataset, {**section, **overrides})
    result, raw, shards = _download_and_shard(tmp_path, params, dataset)
    assert result.exit_code == 2
    assert archive.name in result.output and ("truncated" in result.output or "corrupt" in result.output)
    assert not raw.exists() and not shards.exists()


def test_folder_target_of_the_wrong_size_is_refused_by_name(tmp_path, tiny_params_dict):
    section, src = _folder(tmp_path)
    bad = src["root"] / "labels" / "train" / "p1.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad)
    params = _params(tmp_path, tiny_params_dict, "folder", section)
    result, raw, shards = _download_and_shard(tmp_path, params, "folder")
    assert result.exit_code == 2 and "p1.png" in result.output and "10x10" in result.output
    assert not raw.exists() and not shards.exists()


def test_shard_failure_midway_leaves_no_partial_shards(tmp_path, tiny_params_dict):
    """A raw folder damaged after download: shard stops at the bad file and writes no shards."""
    section, _ = _folder(tmp_path)
    params = _params(tmp_path, tiny_params_dict, "folder", section)
    runner = CliRunner()
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    assert runner.invoke(app, ["download", "folder", "--out", str(raw), "--params", str(params)]).exit_code == 0
    (raw / "images" / "test" / "p1.png").write_bytes(b"not a png")
    result = runner.invoke(app, ["shard", "folder", "--raw", str(raw), "--out", str(shards), "--params", str(params)])
    assert result.exit_code == 2 and "p1.png" in result.output
    assert not shards.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".shards")]

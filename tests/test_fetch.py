"""pixelnet.data.fetch: one opener for a folder, a tar (any compression) or a zip archive, read alike;
an archive cut short is an error naming it; dataset.json written and checked one way."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from pixelnet.data import fetch

FILES = {"a/x.txt": b"x\n", "a/b/y.bin": bytes(range(256)) * 40, "z.txt": b""}


def _source(tmp_path: Path, kind: str) -> Path:
    """FILES as a folder, a .tar, a .tgz or a .zip."""
    folder = tmp_path / "src"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if kind == "folder":
        return folder
    if kind == "zip":
        path = tmp_path / "src.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name in FILES:
                z.write(folder / name, name)
        return path
    path = tmp_path / ("src.tgz" if kind == "tgz" else "src.tar")
    with tarfile.open(path, "w:gz" if kind == "tgz" else "w") as tar:
        tar.add(folder, arcname=".")
    return path


@pytest.mark.parametrize("kind", ["folder", "tar", "tgz", "zip"])
def test_every_kind_reads_alike(tmp_path, kind):
    with fetch.open_archive(_source(tmp_path, kind)) as archive:
        assert archive.names == sorted(FILES)
        assert {name: archive.read(name) for name in archive.names} == FILES
        with archive.open("a/b/y.bin") as stream:
            assert stream.read() == FILES["a/b/y.bin"]
        copied = archive.copy({name: tmp_path / "out" / name for name in FILES}, "test", progress=False)
    assert copied == {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    assert {name: (tmp_path / "out" / name).read_bytes() for name in FILES} == FILES


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip"])
def test_an_archive_cut_short_is_named(tmp_path, kind):
    path = _source(tmp_path, kind)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{path}: (truncated|not a readable)"):
        fetch.open_archive(path)


def test_a_plain_tar_without_its_end_marker_is_truncated(tmp_path):
    """Cut right after the last member's data: every header still parses, so only sizes tell."""
    path = _source(tmp_path, "tar")
    with tarfile.open(path) as tar:
        end = max(m.offset_data + -(-m.size // 512) * 512 for m in tar.getmembers())
    path.write_bytes(path.read_bytes()[:end])
    with pytest.raises(ValueError, match=rf"{path}: truncated tar archive \({end} bytes"):
        fetch.open_archive(path)
    with pytest.raises(ValueError, match=r"https://example.org/src.tar: truncated tar archive"):
        fetch.open_archive(path, "https://example.org/src.tar")  # a download is named by its URL


def test_bring_verifies_files_and_takes_folders_as_they_are(tmp_path):
    path = _source(tmp_path, "tar")
    digests = fetch.digests(path)
    got, provenance = fetch.bring(str(path), tmp_path / "work", "source", {"md5": digests["md5"]}, progress=False)
    assert got == path and provenance == {"origin": "archive", "location": str(path), **digests}
    with pytest.raises(fetch.FetchError, match=rf"{path}: md5 mismatch"):
        fetch.bring(str(path), tmp_path / "work", "source", {"md5": "0" * 32}, progress=False)
    folder = tmp_path / "src"
    assert fetch.bring(str(folder), tmp_path / "work", "source", {"md5": "0" * 32}, progress=False) == (
        folder, {"origin": "folder", "location": str(folder)})
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or folder"):
        fetch.bring(str(tmp_path / "nowhere"), tmp_path / "work", "source", {}, progress=False, what="file or folder")


def test_bring_downloads_into_the_workdir_and_remove_downloads_clears_it(tmp_path):
    path = _source(tmp_path, "tgz")
    archive, provenance = fetch.bring_archive(path.as_uri(), tmp_path / "work", "source", {}, progress=False)
    with archive:
        assert archive.names == sorted(FILES) and archive.where == path.as_uri()
    assert provenance == {"origin": "url", "location": path.as_uri(), "sha256": fetch.digests(path)["sha256"]}
    assert archive.path.parent == tmp_path / "work" / fetch.DOWNLOADS
    fetch.remove_downloads(tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


def test_dataset_json_is_written_and_checked_one_way(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset.json: not found \(run the download stage for mine\)"):
        fetch.read_meta(tmp_path, "mine")
    meta = {"name": "mine", "counts": {"train": 2}}
    fetch.write_meta(tmp_path, meta)
    assert (tmp_path / "dataset.json").read_text() == json.dumps(meta, indent=2) + "\n"
    assert fetch.read_meta(tmp_path, "mine", lambda m: int(m["counts"]["train"])) == meta
    with pytest.raises(ValueError, match=r"dataset.json: malformed \('test'\)"):
        fetch.read_meta(tmp_path, "mine", lambda m: int(m["counts"]["test"]))
    (tmp_path / "dataset.json").write_text("{")
    with pytest.raises(ValueError, match=r"dataset.json: malformed"):
        fetch.read_meta(tmp_path, "mine")

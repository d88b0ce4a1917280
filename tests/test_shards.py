"""One shard format: round trip, manifest, atomic writes, and errors that name the shard."""

import io
import tarfile

import numpy as np
import pytest

from pixelnet.data.shards import ShardError, read_manifest, read_shards, shard_paths, write_shards


def _record(i: int, h: int = 12, w: int = 16) -> dict:
    rng = np.random.default_rng(i)
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    return {
        "key": f"s-{i:03d}",
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "label": rng.integers(0, 3, (h, w), dtype=np.uint8),
        "normal": n / np.linalg.norm(n, axis=-1, keepdims=True),
        "edge": rng.integers(0, 2, (h, w), dtype=np.uint8),
        "meta": {"annotators": 1},
    }


def _with_boundaries(record: dict, annotators: int) -> dict:
    """Every annotator's map (odd sizes, so the packed bits end mid-byte) and their count as `edge`."""
    h, w = record["image"].shape[:2]
    boundaries = np.random.default_rng(annotators).random((annotators, h, w)) < 0.2  # (A, H, W)
    return {**record, "boundaries": boundaries, "edge": boundaries.sum(0, dtype=np.uint8), "meta": {"annotators": annotators}}


def test_round_trip_and_manifest(tmp_path):
    records = [_record(i) for i in range(5)]
    records[1] = _with_boundaries(_record(1, h=13, w=7), annotators=5)
    manifest = write_shards({"train": records, "test": [_record(9)]}, tmp_path / "ds", "toy", ["a", "b", "c"], shard_size=2)
    assert [s["count"] for s in manifest["splits"]["train"]["shards"]] == [2, 2, 1]
    assert manifest["splits"]["train"]["image_sizes"] == {"12x16": 4, "13x7": 1}
    assert manifest["splits"]["train"]["fields"] == ["boundaries", "edge", "image", "label", "normal"]
    assert sum(manifest["splits"]["train"]["class_histogram"]) == 4 * 12 * 16 + 13 * 7
    assert all(len(s["sha256"]) == 64 for s in manifest["splits"]["train"]["shards"])
    assert read_manifest(tmp_path / "ds") == manifest
    back = list(read_shards(shard_paths(tmp_path / "ds", "train")))
    assert [r["key"] for r in back] == [r["key"] for r in records]
    for a, b in zip(records, back):
        for field in ("image", "label", "normal", "edge"):
            np.testing.assert_array_equal(a[field], b[field])
        assert b["meta"]["annotators"] == a["meta"]["annotators"] and b["meta"]["height"] == a["image"].shape[0]
        assert ("boundaries" in b) == ("boundaries" in a)
    assert back[1]["boundaries"].dtype == bool
    np.testing.assert_array_equal(back[1]["boundaries"], records[1]["boundaries"])


def test_the_same_records_give_byte_identical_shards(tmp_path, monkeypatch):
    """DVC hashes shard bytes: a re-run must not change them (no wall-clock mtimes in the tars)."""
    import time

    digests = []
    for run, clock in enumerate((1_000_000_000.0, 1_900_000_000.0)):
        monkeypatch.setattr(time, "time", lambda clock=clock: clock)
        manifest = write_shards({"train": [_record(i) for i in range(3)]}, tmp_path / str(run), "toy", ["a", "b", "c"], shard_size=2)
        digests.append([s["sha256"] for s in manifest["splits"]["train"]["shards"]])
    assert digests[0] == digests[1]


def test_jpeg_bytes_are_stored_as_published(tmp_path):
    import io

    from PIL import Image

    record = _record(0, h=24, w=32)
    buf = io.BytesIO()
    Image.fromarray(record["image"]).save(buf, format="JPEG", quality=80)
    record["image_jpeg"] = buf.getvalue()
    record["image"] = np.asarray(Image.open(io.BytesIO(record["image_jpeg"])).convert("RGB"))
    write_shards({"train": [record]}, tmp_path / "ds", "toy", ["a", "b", "c"])
    with tarfile.open(shard_paths(tmp_path / "ds", "train")[0]) as tar:
        assert tar.extractfile("s-000.image.jpg").read() == record["image_jpeg"]
    (back,) = read_shards(shard_paths(tmp_path / "ds", "train"))
    np.testing.assert_array_equal(back["image"], record["image"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(boundaries=r["boundaries"][:, :5]), r"s-000: boundaries must be \(A, 12, 16\)"),
        (lambda r: r.update(boundaries=r["boundaries"].astype(np.uint8)), "s-000: boundaries must be .* bool"),
        (lambda r: r.update(meta={"annotators": 2}), "s-000: meta says 2 annotators, boundaries hold 3"),
    ],
)
def test_bad_boundaries_are_refused(tmp_path, change, message):
    record = _with_boundaries(_record(0), annotators=3)
    change(record)
    with pytest.raises(ShardError, match=message):
        write_shards({"train": [record]}, tmp_path / "ds", "toy", ["a", "b", "c"])


def test_failed_write_leaves_the_old_shards_alone(tmp_path):
    write_shards({"train": [_record(0)]}, tmp_path / "ds", "toy", ["a", "b", "c"])
    before = read_manifest(tmp_path / "ds")
    bad = _record(1)
    bad["label"] = bad["label"][:5]  # wrong size: must be refused
    with pytest.raises(ShardError, match="s-001: label"):
        write_shards({"train": [_record(2), bad]}, tmp_path / "ds", "toy", ["a", "b", "c"])
    assert read_manifest(tmp_path / "ds") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp folder left behind


def test_corrupt_member_names_shard_and_key(tmp_path):
    write_shards({"train": [_record(0), _record(1)]}, tmp_path / "ds", "toy", ["a", "b", "c"])
    path = shard_paths(tmp_path / "ds", "train")[0]
    # Rewrite the tar with one member's bytes garbled.
    members = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()
            if m.name == "s-001.image.png":
                data = data[:20] + b"\x00garbage" * 10
            members.append((m, data))
    with tarfile.open(path, "w") as tar:
        for m, data in members:
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    with pytest.raises(ShardError, match=r"train-000000\.tar.*s-001"):
        list(read_shards([path]))


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        shard_paths(tmp_path, "train")

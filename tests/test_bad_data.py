"""One corrupt shard does not lose a run: training skips the bad samples, names them by shard and key,
and fails only past train.max_skipped; evaluation stops at once, naming the shard."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline import stages
from pipeline.cli import app
from pipeline.params import load_params
from pixelnet.data.shards import read_manifest


def _copy_shards(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _truncate(shard: Path) -> None:
    data = shard.read_bytes()
    shard.write_bytes(data[: int(len(data) * 0.55)])


def _flip_member(shard: Path, suffix: str = "image.png") -> str:
    """Flip bytes in the middle of one member's data (the tar structure stays intact); returns its key."""
    with tarfile.open(shard) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
    data = bytearray(shard.read_bytes())
    start = member.offset_data + member.size // 2
    for i in range(start, start + 16):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))
    return member.name.split(".")[0]


def _params(tmp_path: Path, tiny: dict, **train) -> Path:
    tiny["train"].update(iterations=12, checkpoint_every=0, log_every=4, **train)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny))
    return path


def _train(tmp_path, params, shards):
    samples = tmp_path / "samples"
    if not samples.exists():
        stages.sample("edges", load_params(params), shards, samples)
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "edges", "--shards", str(shards), "--samples", str(samples),
                                      "--out", str(out), "--log", str(tmp_path / "loss.csv"), "--params", str(params), "--quiet"])
    return result, out


def test_training_skips_a_truncated_shard_and_a_corrupt_member_by_key(tmp_path, tiny_params_dict, tiny_shards):
    shards = _copy_shards(tiny_shards, tmp_path / "shards")
    params = _params(tmp_path, tiny_params_dict, max_skipped=20)
    stages.sample("edges", load_params(params), shards, tmp_path / "samples")  # from the intact shards
    manifest = read_manifest(shards)
    first, second = (shards / s["name"] for s in manifest["splits"]["train"]["shards"][:2])
    lost = manifest["splits"]["train"]["shards"][0]["keys"]
    _truncate(first)
    flipped = _flip_member(second)
    result, out = _train(tmp_path, params, shards)
    assert result.exit_code == 0, result.output
    assert f"{second.name}: {flipped}" in result.output or f"{second}: {flipped}" in result.output
    assert "cannot decode" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("train edges: skipped ")]
    truncated = [line for line in lines if first.name in line]
    assert truncated and all(any(k in line for k in lost) for line in truncated)  # the lost samples, by key
    # A cut inside a member's header reads as an error, a cut between members as an early end.
    assert any("lost" in line and ("truncated" in line or "unreadable from here on" in line) for line in truncated)
    assert len(lines) == len(set(lines))  # 12 steps are 3 epochs: each bad sample is reported once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_samples"] == len(lines) >= 2 and (out / "model.pt").is_file()


def test_training_fails_once_skips_pass_the_threshold(tmp_path, tiny_params_dict, tiny_shards):
    shards = _copy_shards(tiny_shards, tmp_path / "shards")
    params = _params(tmp_path, tiny_params_dict, max_skipped=0)
    stages.sample("edges", load_params(params), shards, tmp_path / "samples")
    second = shards / read_manifest(shards)["splits"]["train"]["shards"][1]["name"]
    flipped = _flip_member(second)
    result, out = _train(tmp_path, params, shards)
    assert result.exit_code == 2 and "train.max_skipped=0" in result.output and flipped in result.output
    assert not (out / "model.pt").exists() and not (tmp_path / "loss.csv").exists()


def test_evaluation_fails_at_once_naming_the_shard(tmp_path, tiny_params_dict, tiny_shards):
    shards = _copy_shards(tiny_shards, tmp_path / "shards")
    params = _params(tmp_path, tiny_params_dict)
    result, model = _train(tmp_path, params, shards)
    assert result.exit_code == 0, result.output
    test_shard = shards / read_manifest(shards)["splits"]["test"]["shards"][0]["name"]
    flipped = _flip_member(test_shard)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", "edges", "--shards", str(shards), "--model", str(model / "model.pt"),
                                      "--out", str(out), "--params", str(params), "--quiet"])
    assert result.exit_code == 2 and test_shard.name in result.output and flipped in result.output
    assert not out.exists()

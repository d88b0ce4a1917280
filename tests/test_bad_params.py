"""Bad params: one line naming the dotted key and what is allowed, exit 2, nothing written or changed."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app


def _set(d: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for p in path:
        d = d.setdefault(p, {})
    d[last] = value


CASES = [
    ("sampling.pixels_per_imag", 100, "sampling.pixels_per_imag", "unknown key"),
    ("train.lr", "fast", "train.lr", "expected float"),
    ("sampling.pixels_per_image", 0, "sampling.pixels_per_image", ">= 1"),
    ("sampling.draws", "lots", "sampling.draws", "'auto'"),
    ("sampling.augment.crop", 16, "sampling.augment.crop", "stride 32"),   # fc7 is tapped
    ("sampling.positive_fraction", 1.5, "sampling.positive_fraction", "[0, 1]"),
    ("model.layers", ["conv1_2", "conv9_9"], "model.layers", "conv9_9"),
    ("tasks.depth", {"dataset": "synthetic"}, "tasks.depth", "unknown task"),
    ("datasets", ["synthetic", "imagenet"], "datasets[1]", "unknown dataset"),
    ("evaluate.precision", "fp16", "evaluate.precision", "'bf16'"),
]


def _tree(path):
    return {p.relative_to(path): hashlib.sha256(p.read_bytes()).hexdigest() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("dotted, value, key, allowed", CASES, ids=[c[0] + "=" + str(c[1]) for c in CASES])
def test_bad_params_name_the_key_and_change_nothing(tmp_path, tiny_params_dict, tiny_shards, dotted, value, key, allowed):
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_params_dict))
    out = tmp_path / "samples"
    assert runner.invoke(app, ["sample", "edges", "--shards", str(tiny_shards), "--out", str(out), "--params", str(good)]).exit_code == 0
    before = _tree(out)
    bad = tmp_path / "bad.yaml"
    _set(tiny_params_dict, dotted, value)
    bad.write_text(yaml.safe_dump(tiny_params_dict))
    for args in (["sample", "edges", "--shards", str(tiny_shards), "--out", str(out)],
                 ["sample", "edges", "--shards", str(tiny_shards), "--out", str(tmp_path / "fresh")]):
        result = runner.invoke(app, [*args, "--params", str(bad)])
        assert result.exit_code == 2, result.output
        line = result.output.strip().splitlines()[-1]
        assert line.startswith("pixelnet sample: error:") and key in line and allowed in line, line
    assert _tree(out) == before and not (tmp_path / "fresh").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".samples") or p.name.startswith(".fresh")]

"""A shipped model's card says only what was measured: the positive share as drawn, the machine the
train stage recorded, the seed spread, the benchmark's agreement as scored, and a speed-quality plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pipeline.card import Evidence, drawn_positive_share, parse_card_flip, parse_card_per_image, render, seed_spread
from pipeline.cli import app
from pipeline.params import load_params
from pixelnet.model.pixelnet import ModelConfig, PixelNet, save_checkpoint
from pixelnet.zoo import ship

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "bsds500-bench"
RECIPE_PARAMS = ROOT / "recipes" / "bsds500-edges" / "params.yaml"
BENCH_EDGES = ROOT / "reports" / "bench" / "evaluate_edges"
MACHINE = {"cpu": "Some CPU 9000", "bf16_native": True, "threads": 2}
runner = CliRunner()
needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason="../shared/fixtures/bsds500-bench is absent")


def _metrics(ods: float) -> dict:
    return {"model": {"ods": ods, "ois": ods + 0.01, "ap": ods + 0.03},
            "baseline": {"ods": 0.55, "ois": 0.58, "ap": 0.51}}


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def recipe(tmp_path: Path) -> dict:
    """The files a recipe's stages write, small: a shipped tiny model and made-up reports."""
    torch.manual_seed(0)
    model = PixelNet(ModelConfig(layers=("conv1_2", "conv2_2"), width=0.125, hidden=(16,), batch_norm=True), 1)
    summary = {"seconds": 600.0, "device": "cpu", "precision": "bf16", "final_loss": 0.25, "machine": MACHINE,
               "throughput": {"images_per_s": 14.0, "data_wait_share": 0.01}}
    save_checkpoint(tmp_path / "ckpt.pt", model, {"step": 5, "task": "edges", "summary": summary})
    weights = tmp_path / "zoo" / "tiny" / "model.pt"
    ship(tmp_path / "ckpt.pt", weights)
    single, multi = tmp_path / "test", tmp_path / "test-multiscale"
    _write(single / "metrics.json", _metrics(0.781))
    _write(single / "per_image.json", {"images": [{"image": f"test-{i}", "f": 0.7 + i / 100, "threshold": 0.3}
                                                  for i in range(5)]})
    _write(multi / "metrics.json", _metrics(0.792))
    plain = _write(tmp_path / "test-plain" / "metrics.json", _metrics(0.776)).parent
    dataset = _write(tmp_path / "dataset.json", {"counts": {"train": 200, "val": 100, "test": 200},
                                                 "source": {"md5": "abc"}})
    seeds = [_write(tmp_path / "seeds" / f"s{i}" / "metrics.json", _metrics(0.70 + i / 1000)).parent for i in range(3)]
    bench = {"bench": {"model": "tiny"}, "machine": {"cpu": "Some CPU 9000"},
             "rows": [{"method": "pixelnet tiny", "setting": "fp32, scale 1", "images_per_s": 2.5},
                      {"method": "pixelnet tiny", "setting": "fp32, scale multi", "images_per_s": 0.8},
                      {"method": "pixelnet tiny", "setting": "fp32, scale 1, flip", "images_per_s": 1.3},
                      {"method": "pixelnet tiny", "setting": "fp32, scale multi, flip", "images_per_s": 0.4},
                      {"method": "OpenCV Canny", "setting": "grey", "images_per_s": 4800.0}]}
    evidence = Evidence(sampling=_write(tmp_path / "sampling.json", {"share_per_stratum": {"0": 0.5641, "1": 0.4359}}),
                        seeds=seeds, bench_edges=BENCH_EDGES, fixture=FIXTURE,
                        bench_predict=_write(tmp_path / "bench.json", bench), earlier=[], plain=plain)
    notes = tmp_path / "EXPERIMENTS.md"
    notes.write_text("# notes\n")
    return {"name": "tiny", "weights": weights, "single": single, "multi": multi, "dataset": dataset,
            "params": load_params(RECIPE_PARAMS), "notes": notes, "command": "uv run dvc repro x", "evidence": evidence}


@needs_fixture
def test_card_quotes_what_was_measured(recipe):
    text = render(**recipe, out=recipe["weights"].parent / "README.md")
    assert "50% asked on consensus edges, **43.6% drawn**" in text      # sampling.json, not the setting
    assert "never drawn" in text                                       # the recipe leaves ambiguous pixels out
    assert "Trained on: Some CPU 9000, 2 torch threads, multiplies bf16 natively" in text  # the train summary's machine
    assert "ODS range 0.0020" in text and "`s0`, `s1`, `s2`" in text  # the seeds' spread
    assert "the official MATLAB benchmark's test case (5 images): |ΔODS|" in text
    assert "pyEdgeEval (10 images)" in text and "equal to the official one" not in text
    picture = recipe["weights"].parent / "speed_quality.png"
    assert "![speed and quality](speed_quality.png)" in text and picture.read_bytes()[:4] == b"\x89PNG"
    assert len(parse_card_per_image(text)) == 3


@needs_fixture
def test_card_with_test_time_flip_says_so_and_adds_the_plain_row(recipe):
    """The recipe averages each image with its mirror: the card's rows say flip, the single scale without
    flip (the published rows' protocol) stands beside them, and tests/test_zoo.py reads the setting back."""
    import dataclasses

    assert recipe["params"].evaluate.flip  # the recipe's setting, chosen on val
    text = render(**recipe, out=recipe["weights"].parent / "README.md")
    assert "| **tiny**, single scale, flip | **.781** |" in text and "| **tiny**, multi-scale, flip | **.792** |" in text
    assert "| tiny, single scale, no flip | .776 |" in text and parse_card_flip(text)
    assert "--model tiny photo.jpg --out thin/ --nms --flip" in text and 'pixelnet.load("tiny", flip=True)' in text
    no_plain = Evidence(**{**recipe["evidence"].__dict__, "plain": None})
    with pytest.raises(ValueError, match="--plain"):
        render(**{**recipe, "evidence": no_plain}, out=recipe["weights"].parent / "README.md")
    params = dataclasses.replace(recipe["params"], evaluate=dataclasses.replace(recipe["params"].evaluate, flip=False))
    text = render(**{**recipe, "params": params, "evidence": no_plain}, out=recipe["weights"].parent / "README.md")
    assert "| **tiny**, single scale | **.781** |" in text and "no flip |" not in text and not parse_card_flip(text)


def test_drawn_share_and_spread_come_from_the_files():
    assert drawn_positive_share({"share_per_stratum": {"0": 0.6, "1": 0.4}}) == 0.4
    with pytest.raises(ValueError, match="share_per_stratum"):
        drawn_positive_share({"rows": {}})
    spread = seed_spread([("a", _metrics(0.70)), ("b", _metrics(0.7004)), ("c", _metrics(0.6998))])
    assert spread["ods"] == pytest.approx(0.0006)


@needs_fixture
def test_card_refuses_one_seed_and_an_earlier_model_of_another_network(recipe):
    out = recipe["weights"].parent / "README.md"
    one_seed = Evidence(**{**recipe["evidence"].__dict__, "seeds": recipe["evidence"].seeds[:1]})
    with pytest.raises(ValueError, match="the spread needs at least 2"):
        render(**{**recipe, "evidence": one_seed}, out=out)
    other = Evidence(**{**recipe["evidence"].__dict__, "earlier": [("bsds500-edges-v1", recipe["single"])]})
    with pytest.raises(ValueError, match="bsds500-edges-v1: not the same network"):
        render(**{**recipe, "evidence": other}, out=out)
    assert not out.exists()


def test_card_cli_names_a_malformed_earlier_option(tmp_path):
    result = runner.invoke(app, ["card", "x", "--single", str(tmp_path), "--multi", str(tmp_path), "--dataset",
                                 str(tmp_path / "d.json"), "--notes", str(tmp_path / "n.md"), "--command", "c",
                                 "--sampling", str(tmp_path / "s.json"), "--seeds", str(tmp_path),
                                 "--earlier", "bsds500-edges-v1"])
    assert result.exit_code != 0 and "--earlier 'bsds500-edges-v1': expected NAME=FOLDER" in result.stderr


@needs_fixture
def test_agreement_with_the_official_test_case_is_scored_not_asserted():
    from pixelnet.bench.agreement import official_fixture

    a = official_fixture(FIXTURE)
    assert a.images == 5 and max(a.ods, a.ois, a.ap, a.per_image_f) < 0.002  # MATLAB's own matcher moves ~.001


def test_agreement_with_pyedgeeval_reads_each_tools_per_image_file(tmp_path):
    from pixelnet.bench.agreement import pyedgeeval

    (tmp_path / "pixelnet").mkdir()
    (tmp_path / "pyedgeeval").mkdir()
    (tmp_path / "pixelnet" / "eval_bdry_img.txt").write_text("1 0.2 0.8 0.7 0.750\n2 0.3 0.6 0.5 0.550\n")
    (tmp_path / "pyedgeeval" / "eval_bdry_img.txt").write_text("test/1 0.2 0.8 0.7 0.752\ntest/2 0.3 0.6 0.5 0.545\n")
    _write(tmp_path / "bench.json", {"nms": False, "thresholds": 99,
                                     "comparison": {"ods_diff": -0.0001, "ois_diff": 0.0004, "ap_diff": -0.004}})
    a = pyedgeeval(tmp_path)
    assert (a.images, a.ods, a.ap) == (2, 0.0001, 0.004) and a.per_image_f == pytest.approx(0.005)
    (tmp_path / "pyedgeeval" / "eval_bdry_img.txt").write_text("test/1 0.2 0.8 0.7 0.752\n")
    with pytest.raises(ValueError, match="pixelnet scored 2 images, pyEdgeEval 1"):
        pyedgeeval(tmp_path)

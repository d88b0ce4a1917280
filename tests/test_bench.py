"""`pixelnet bench evaluate-edges` through Typer: it runs, writes bench.json / bench.md, and its
numbers are sane (and agree with pyEdgeEval's where that is installed). No timings are asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.bench import evaluate_edges

BENCH = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "bsds500-bench"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/fixtures/bsds500-bench is absent")
runner = CliRunner()
TOL = 0.002  # the official matcher (pyEdgeEval's too) is randomised: ~0.001 between runs


def _args(out: Path, *extra: str) -> list[str]:
    return ["bench", "evaluate-edges", "--ground-truth", str(BENCH / "groundTruth"), "--limit", "2",
            "--thresholds", "5", "--workers", "1", "--out", str(out), *extra]


def test_soft_edges_is_a_deterministic_8bit_map() -> None:
    img = np.zeros((32, 40), np.uint8)
    img[:, 20:] = 200  # one vertical step
    a, b = evaluate_edges.soft_edges(img), evaluate_edges.soft_edges(img)
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert a.max() == 255 and a[:, 19:21].min() > 200 and a[:, :10].max() == 0
    assert evaluate_edges.soft_edges(np.full((8, 8), 7, np.uint8)).max() == 0  # flat: no division by zero


@needs_bench
def test_pixelnet_alone(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    res = runner.invoke(app, _args(out, "--reference-limit", "0"))
    assert res.exit_code == 0, res.output
    report = json.loads((out / "bench.json").read_text())
    ours = report["pixelnet"]
    assert ours["images"] == 2 and report["pyedgeeval"] is None and report["comparison"] is None
    assert 0.3 < ours["ods"] <= 1 and 0.3 < ours["ois"] <= 1 and ours["ois"] >= ours["ods"] - 1e-9
    assert 0 < ours["ap"] <= 1 and ours["wall_s"] > 0
    assert report["thresholds"] == 5 and report["workers"] == 1 and report["images"] == 2
    assert report["machine"]["cpu_count"] >= 1 and report["command"] and report["date"]
    pngs = sorted((out / "predictions").glob("*.png"))
    assert [p.stem for p in pngs] == ["2018", "3063"]
    assert np.asarray(Image.open(pngs[0])).dtype == np.uint8
    assert (out / "pixelnet" / "eval_bdry.txt").is_file()
    assert "pixelnet" in (out / "bench.md").read_text()
    assert not list(tmp_path.glob(".bench.tmp-*"))


@needs_bench
def test_agrees_with_pyedgeeval(tmp_path: Path) -> None:
    pytest.importorskip("pyEdgeEval", reason="pyEdgeEval is in the optional `bench` group")
    pytest.importorskip("prettytable")
    out = tmp_path / "bench"
    res = runner.invoke(app, _args(out))
    assert res.exit_code == 0, res.output
    report = json.loads((out / "bench.json").read_text())
    ours, ref, cmp = report["pixelnet"], report["pyedgeeval"], report["comparison"]
    assert ours["images"] == ref["images"] == cmp["images"] == 2
    assert ours["ods"] == pytest.approx(ref["ods"], abs=TOL)
    assert ours["ois"] == pytest.approx(ref["ois"], abs=TOL)
    assert ours["ods_threshold"] == pytest.approx(ref["ods_threshold"], abs=0.05)
    assert cmp["speedup"] > 0 and cmp["ods_diff"] == pytest.approx(ours["ods"] - ref["ods"])
    assert (out / "pyedgeeval" / "eval_bdry.txt").is_file()
    assert "Speed-up" in (out / "bench.md").read_text()


@needs_bench
def test_subset_for_pyedgeeval_keeps_the_full_run(tmp_path: Path) -> None:
    pytest.importorskip("pyEdgeEval", reason="pyEdgeEval is in the optional `bench` group")
    pytest.importorskip("prettytable")
    out = tmp_path / "bench"
    res = runner.invoke(app, _args(out, "--reference-limit", "1", "--thresholds", "3"))
    assert res.exit_code == 0, res.output
    report = json.loads((out / "bench.json").read_text())
    assert report["comparison"]["images"] == 1 and report["pixelnet_all"]["images"] == 2


@needs_bench
def test_missing_pyedgeeval_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        evaluate_edges.importlib.util, "find_spec", lambda name, *a: None if name == "pyEdgeEval" else find_spec(name, *a)
    )
    res = runner.invoke(app, _args(tmp_path / "bench"))
    assert res.exit_code != 0
    assert "uv sync --group bench" in res.output
    assert not (tmp_path / "bench").exists()


@needs_bench
def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    preds.mkdir()
    res = runner.invoke(app, _args(tmp_path / "bench", "--predictions", str(preds), "--reference-limit", "0"))
    assert res.exit_code == 2 and "2018.png" in res.output
    res = runner.invoke(app, _args(tmp_path / "bench", "--workers", "0"))
    assert res.exit_code == 2 and "--workers" in res.output
    res = runner.invoke(app, ["bench", "evaluate-edges", "--ground-truth", str(tmp_path / "nope"), "--reference-limit", "0"])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "bench").exists()

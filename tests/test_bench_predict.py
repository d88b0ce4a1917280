"""`pixelnet bench predict` through Typer: it runs, writes its JSON and Markdown, and its numbers are
sane. No timing is asserted (benchmarks are commands, not timed tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.bench.predict import generated_image

runner = CliRunner()


def test_generated_image_is_a_deterministic_photo_sized_picture() -> None:
    a, b = generated_image(), generated_image()
    assert a.shape == (321, 481, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 20  # shapes and shading, not a flat field


def test_bench_predict_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "predict", "--repeats", "1", "--warmup", "0", "--large", "200,300",
                                 "--no-startup", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert out.with_suffix(".md").is_file()
    rows = {(r["method"], r["setting"]): r for r in report["rows"]}
    for precision in ("fp32", "bf16"):
        for scale in ("1", "0.5", "1.5", "multi"):
            r = rows[("pixelnet bsds500-edges", f"{precision}, scale {scale}")]
            assert 0 < r["seconds"] < 120 and abs(r["images_per_s"] * r["seconds"] - 1) < 1e-9
    assert rows[("pixelnet bsds500-edges", "fp32, scale 1, sparse path")]["seconds"] > 0
    for scale in ("1", "multi"):  # evaluate.flip's setting, timed for the card's speed-quality plot
        assert 0 < rows[("pixelnet bsds500-edges", f"fp32, scale {scale}, flip")]["seconds"] < 240
    assert 0 < rows[("OpenCV Canny", "grey, thresholds 100/200")]["seconds"] < 1
    assert report["image_shape"] == [321, 481, 3]
    assert report["large"]["output_shape"] == [200, 300] and report["large"]["peak_rss_mb"] > 0
    assert report["machine"]["cpu"] and isinstance(report["machine"]["amx"], bool)
    assert report["fastest_scale1"] in {"fp32, scale 1", "bf16, scale 1"}
    assert "| OpenCV Canny |" in out.with_suffix(".md").read_text()


def test_bench_predict_errors_name_the_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "predict", "--large", "12", "--out", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "--large" in result.output
    result = runner.invoke(app, ["bench", "predict", "--image", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "missing.jpg" in result.output
    assert not (tmp_path / "b.json").exists()

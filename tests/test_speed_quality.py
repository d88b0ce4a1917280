"""The card's speed–quality picture: ours from metrics and the bench report, published ODS, no guessed speeds."""


import numpy as np
import pytest

from pipeline.speed_quality import Point, bench_speed, plot, points
from pixelnet.metrics.published import PublishedCurve

REPORT = {"rows": [
    {"method": "pixelnet bsds500-edges", "setting": "fp32, scale 1", "images_per_s": 2.5},
    {"method": "pixelnet bsds500-edges", "setting": "fp32, scale multi", "images_per_s": 0.8},
    {"method": "OpenCV Canny", "setting": "default", "images_per_s": 4000.0},
]}


def _curve(name, f):
    return PublishedCurve(name=name, recall=np.array([0.5]), precision=np.array([0.5]),
                          ods={"recall": 0.5, "precision": 0.5, "f": f}, ois={"recall": 0.5, "precision": 0.5, "f": f}, ap=f)


def test_points_take_our_ods_from_metrics_and_speeds_only_where_measured(tmp_path):
    metrics = {"model": {"ods": 0.7667}}
    pts = points(REPORT, [("ours", metrics, "pixelnet bsds500-edges", "fp32, scale 1")],
                 {"Canny": _curve("Canny", 0.611), "HED": _curve("HED", 0.788)})
    assert pts == [Point("ours", 0.7667, 2.5), Point("Canny (published ODS)", 0.611, 4000.0),
                   Point("HED (published ODS)", 0.788, None)]
    plot(pts, "AMD EPYC, 2 threads", tmp_path / "speed.png")
    assert (tmp_path / "speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_bench_row_is_named():
    with pytest.raises(ValueError, match="fp32, scale 2"):
        bench_speed(REPORT, "pixelnet bsds500-edges", "fp32, scale 2")

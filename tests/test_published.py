"""The published BSDS500 curves ship with the package and are drawn beside ours."""

from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import SHARED
from pixelnet.metrics.edges import plot_pr
from pixelnet.metrics.published import PUBLISHED_BSDS500, load_published


def test_published_curves_load_with_their_figures():
    curves = load_published()
    assert list(curves) == ["Sobel", "Canny", "gPb-UCM", "SE", "OEF", "HED", "RCF"]
    # The README's table of the collectors' figures (ODS / OIS / AP), read back from the files.
    assert round(curves["SE"].ods["f"], 3) == 0.743 and round(curves["HED"].ods["f"], 3) == 0.788
    assert round(curves["gPb-UCM"].ap, 3) == 0.745 and round(curves["RCF"].ois["f"], 3) == 0.830
    for c in curves.values():
        assert len(c.recall) == len(c.precision) >= 40 and (np.diff(c.recall) <= 1e-6).all()  # recall falls with t
        f = 2 * c.recall * c.precision / np.maximum(c.recall + c.precision, 1e-12)
        assert abs(f.max() - c.ods["f"]) < 2e-3  # ODS is the curve's best F


def test_the_shipped_files_are_the_shared_reference_unchanged():
    reference = SHARED / "reference" / "bsds500-published-curves"
    if not reference.is_dir():
        import pytest

        pytest.skip("../shared is absent")
    for path in reference.iterdir():
        assert (PUBLISHED_BSDS500 / path.name).read_bytes() == path.read_bytes(), path.name


def test_pr_plot_draws_them(tmp_path):
    curves = load_published()
    plot_pr({}, tmp_path / "with.png", curves)
    plot_pr({}, tmp_path / "without.png")
    with_, without = (np.asarray(Image.open(tmp_path / n).convert("L")) for n in ("with.png", "without.png"))
    assert (with_ < 128).sum() > (without < 128).sum() + 1000  # the curves and the legend are drawn

"""How closely the project's BSDS boundary benchmark agrees with the references, as measured.

Two references, each read from files rather than asserted:

* the official benchmark's own test case (``../shared/fixtures/bsds500-bench``: five images, its PNG
  soft maps, and MATLAB's ``test_2`` outputs at 5 thresholds, no NMS), scored again here;
* pyEdgeEval (the Python port of the official code) on the test images that
  ``pixelnet bench evaluate-edges`` scored with both tools (``reports/bench/evaluate_edges/``: each
  tool's ``eval_bdry_img.txt`` and ``bench.json``).

Each gives the largest absolute difference of the summary figures and of each image's best F, which
is what a model card quotes instead of "equal to the official one".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIXTURE_TEST = "test_2"        # MATLAB's boundary benchmark on the fixture's png/ maps
FIXTURE_THRESHOLDS = 5         # as that run used (nthresh 5)


@dataclass(frozen=True)
class Agreement:
    """The largest |ours - reference| over the summary figures and over the images' best F."""

    reference: str
    images: int
    ods: float
    ois: float
    ap: float
    per_image_f: float
    note: str = ""

    def line(self) -> str:
        return (f"{self.reference} ({self.images} images): |ΔODS| {self.ods:.4f}, |ΔOIS| {self.ois:.4f}, "
                f"|ΔAP| {self.ap:.4f}, largest |Δ| of an image's best F {self.per_image_f:.4f}"
                + (f" ({self.note})" if self.note else ""))


def official_fixture(fixture: Path) -> Agreement:
    """Score the official test case's PNG maps as MATLAB's test_2 did; compare with its output files."""
    from pixelnet.metrics.edges import BoundaryConfig, evaluate_boundaries
    from pixelnet.metrics.edges_io import read_ground_truth, read_official, read_prediction

    fixture = Path(fixture)
    reference = fixture / FIXTURE_TEST
    if not (reference / "eval_bdry.txt").is_file():
        raise FileNotFoundError(f"{reference}/eval_bdry.txt: missing (the official benchmark's test case)")
    ids = sorted(p.stem for p in (fixture / "png").glob("*.png"))
    preds = [read_prediction(fixture / "png" / f"{i}.png") for i in ids]
    anns = [read_ground_truth(fixture / "groundTruth" / f"{i}.mat") for i in ids]
    res = evaluate_boundaries(preds, anns, BoundaryConfig(thresholds=FIXTURE_THRESHOLDS, nms=False))
    matlab = read_official(reference)
    _, _, _, odf, _, _, oif, ap = matlab["summary"]
    per_image = matlab["images"][:, 4]  # index, T, R, P, F
    ours = np.array([r["f"] for r in res.per_image])
    return Agreement("the official MATLAB benchmark's test case", len(ids), abs(res.ods["f"] - odf),
                     abs(res.ois["f"] - oif), abs(res.ap - ap), float(np.abs(ours - per_image).max()))


def _best_f(path: Path) -> np.ndarray:
    """The F column (last) of an eval_bdry_img.txt, whichever tool wrote it (first column: our index, or
    pyEdgeEval's image id, which `read_official` cannot parse)."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array([float(r[-1]) for r in rows])


def pyedgeeval(bench: Path) -> Agreement:
    """Ours against pyEdgeEval on the images `pixelnet bench evaluate-edges` scored with both."""
    bench = Path(bench)
    report = json.loads((bench / "bench.json").read_text())
    ours, theirs = _best_f(bench / "pixelnet" / "eval_bdry_img.txt"), _best_f(bench / "pyedgeeval" / "eval_bdry_img.txt")
    if ours.shape != theirs.shape:
        raise ValueError(f"{bench}: pixelnet scored {ours.size} images, pyEdgeEval {theirs.size}")
    c = report["comparison"]
    return Agreement("pyEdgeEval", ours.size, abs(c["ods_diff"]), abs(c["ois_diff"]), abs(c["ap_diff"]),
                     float(np.abs(ours - theirs).max()),
                     "its AP is another definition, see reports/bench/evaluate_edges/bench.md; "
                     f"{'NMS' if report.get('nms') else 'no NMS'}, {report['thresholds']} thresholds, thinning")

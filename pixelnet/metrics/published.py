"""Other edge detectors' published BSDS500 results, to draw and quote beside ours.

`published_bsds500/` holds the official benchmark's outputs on the 200 BSDS500 test images for
Sobel, Canny, gPb-UCM, SE, OEF, HED and RCF, as their authors published them (collected in the
public repository MCG-NKU/plot-edge-pr-curves, `edge_eval_bsds/`; its README gives the sources and
the protocol). Two files per method, the official format without the threshold column:
`<method>_bdry.txt` (ODS recall, precision, F; OIS recall, precision, F; AP) and
`<method>_bdry_thr.txt` (recall, precision, F per threshold). They are results, not ground truth:
nothing here is tuned to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PUBLISHED_BSDS500 = Path(__file__).with_name("published_bsds500")
ORDER = ("Sobel", "Canny", "gPb-UCM", "SE", "OEF", "HED", "RCF")  # weakest to strongest


@dataclass(frozen=True)
class PublishedCurve:
    name: str
    recall: np.ndarray     # (T,) per threshold
    precision: np.ndarray  # (T,)
    ods: dict[str, float]  # recall, precision, f
    ois: dict[str, float]
    ap: float


def load_published(folder: Path = PUBLISHED_BSDS500) -> dict[str, PublishedCurve]:
    """Every method in `folder`, weakest first; raises ValueError naming a malformed file."""
    folder = Path(folder)
    names = sorted((p.name[: -len("_bdry.txt")] for p in folder.glob("*_bdry.txt")),
                   key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    out = {}
    for name in names:
        summary_path, curve_path = folder / f"{name}_bdry.txt", folder / f"{name}_bdry_thr.txt"
        summary = np.loadtxt(summary_path, ndmin=1)
        curve = np.loadtxt(curve_path, ndmin=2)
        if summary.shape != (7,) or curve.ndim != 2 or curve.shape[1] != 3:
            raise ValueError(f"{summary_path} / {curve_path}: expected 7 numbers and rows of recall, precision, F")
        out[name] = PublishedCurve(
            name=name, recall=curve[:, 0], precision=curve[:, 1],
            ods={"recall": summary[0], "precision": summary[1], "f": summary[2]},
            ois={"recall": summary[3], "precision": summary[4], "f": summary[5]}, ap=float(summary[6]),
        )
    return out

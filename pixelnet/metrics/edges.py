"""The BSDS500 boundary benchmark: ODS / OIS / AP from soft boundary maps.

A port of the official MATLAB code (`evaluation_bdry_image.m`, `correspondPixels`,
`collect_eval_bdry.m`). Per image and threshold the soft map is binarised (pred >= t),
thinned (`thinning.thin`), and matched one-to-one to each annotator's boundary pixels within
`max_dist * diagonal` pixels (`matching`, which also says where and why we differ from
MATLAB's matcher by a few pixels).

Speed (99 thresholds of a BSDS image in well under a second): each annotator's matching window
is gathered once per image (`matching.neighbour_lists`), each distinct binary map is thinned
(visiting only pixels that can still change) and matched against every annotator in one Numba
call (`matching.threshold_counts`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelnet.metrics.matching import neighbour_lists, offsets, threshold_counts
from pixelnet.metrics.nms import edge_nms
from pixelnet.metrics.thinning import thin

# collect_eval_bdry.m interpolates between neighbouring thresholds with linspace(0, 1).
_INTERP_STEPS = 100


@dataclass(frozen=True)
class BoundaryConfig:
    """Benchmark knobs; the defaults are the official BSDS500 ones."""

    thresholds: int = 99
    max_dist: float = 0.0075  # fraction of the image diagonal
    thin: bool = True  # bwmorph(bmap, 'thin', inf) on each binarised map
    # The edges toolbox's NMS on the soft map first (`nms.edge_nms`), as CNN edge detectors are scored
    # (HED, RCF, the paper); the official benchmark itself has none (ucm2 maps are thin already).
    nms: bool = False

    def __post_init__(self) -> None:
        if self.thresholds < 1:
            raise ValueError(f"thresholds must be >= 1, got {self.thresholds}")
        if not self.max_dist >= 0:
            raise ValueError(f"max_dist must be >= 0, got {self.max_dist}")


def thresholds_for(n: int) -> np.ndarray:
    """The official grid: n thresholds strictly inside (0, 1)."""
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)  # (T,)

def _check_image(pred: np.ndarray, annotations: list[np.ndarray]) -> None:
    if pred.ndim != 2:
        raise ValueError(f"pred must be 2-D (H, W), got shape {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("pred contains non-finite values")
    for a, gt in enumerate(annotations):
        if gt.shape != pred.shape:
            raise ValueError(f"annotation {a} has shape {gt.shape}, pred has {pred.shape}")


def image_counts(
    pred: np.ndarray, annotations: list[np.ndarray], config: BoundaryConfig
) -> np.ndarray:
    """Benchmark counts of one image: (T, 4) int64, columns cntR, sumR, cntP, sumP.

    pred is a soft boundary map (H, W) in [0, 1], thinned by the edges toolbox's NMS first when
    `config.nms`; annotations are boolean (H, W) maps, one per annotator. As
    evaluation_bdry_image.m: cntR sums each annotator's matched pixels, cntP counts predicted
    pixels matched to at least one annotator. Module level, so a process pool can run it.
    """
    pred = np.asarray(pred, dtype=np.float64)
    annotations = [np.asarray(a).astype(bool) for a in annotations]
    _check_image(pred, annotations)
    if config.nms:
        pred = edge_nms(pred)  # (H, W) float64
    thresholds = thresholds_for(config.thresholds)
    radius = config.max_dist * math.hypot(*pred.shape)
    dy, dx, cost = offsets(radius)
    # Per annotator, once: which gt pixels each pixel reaches (the window gathers that
    # `matching._candidate_pairs` would repeat at every threshold).
    ptr = np.empty((len(annotations), pred.size + 1), dtype=np.int64)  # (A, H W + 1)
    ids, costs = [], []
    for a, gt in enumerate(annotations):
        i, c = neighbour_lists(gt, dy, dx, cost, ptr[a])
        ptr[a] += sum(x.size for x in ids)  # into the concatenation below
        ids.append(i)
        costs.append(c)
    ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    costs = np.concatenate(costs) if costs else np.zeros(0, np.int64)
    n_gts = np.array([int(a.sum()) for a in annotations], dtype=np.int64)  # (A,)
    sum_r = int(n_gts.sum())

    counts = np.zeros((thresholds.size, 4), dtype=np.int64)
    prev = -1
    for t, thr in enumerate(thresholds):
        raw = pred >= thr  # (H, W)
        n_raw = int(np.count_nonzero(raw))
        if n_raw == prev:
            # Maps of rising thresholds are nested, so the same size means the same map
            # (a quantised input): same counts.
            counts[t] = counts[t - 1]
            continue
        prev = n_raw
        bmap = thin(raw) if config.thin else raw
        cnt_r, cnt_p, sum_p = threshold_counts(bmap, ptr, ids, costs, n_gts)
        counts[t] = (cnt_r, sum_r, cnt_p, sum_p)
    return counts


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0, as the official `cnt ./ (sum + (sum==0))`."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return num / (den + (den == 0))


def fmeasure(r: np.ndarray | float, p: np.ndarray | float) -> np.ndarray:
    """2PR / (P + R), 0 where P + R = 0."""
    r = np.asarray(r, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    s = p + r
    return 2 * p * r / (s + (s == 0))


def _max_f(
    thresholds: np.ndarray, r: np.ndarray, p: np.ndarray
) -> tuple[float, float, float, float]:
    """Best (threshold, R, P, F) with linear interpolation between neighbouring thresholds.

    Mirrors `maxF` in collect_eval_bdry.m: the first strict maximum in scan order wins.
    """
    d = np.linspace(0.0, 1.0, _INTERP_STEPS)[None, :]  # (1, S)
    t_all = thresholds[1:, None] * d + thresholds[:-1, None] * (1 - d)  # (T-1, S)
    r_all = r[1:, None] * d + r[:-1, None] * (1 - d)
    p_all = p[1:, None] * d + p[:-1, None] * (1 - d)
    t_all = np.concatenate([thresholds[:1], t_all.ravel()])
    r_all = np.concatenate([r[:1], r_all.ravel()])
    p_all = np.concatenate([p[:1], p_all.ravel()])
    f_all = fmeasure(r_all, p_all)
    i = int(np.argmax(f_all))
    return float(t_all[i]), float(r_all[i]), float(p_all[i]), float(f_all[i])


def _average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """Official area: precision interpolated at recall 0:0.01:1 over unique recalls."""
    ru, idx = np.unique(r, return_index=True)  # first occurrence, as MATLAB >= R2013a
    if ru.size < 2:
        return 0.0
    ri = np.linspace(0.0, 1.0, 101)
    p_int = np.interp(ri, ru, p[idx], left=np.nan, right=np.nan)
    return float(np.nan_to_num(p_int, nan=0.0).sum() * 0.01)


def _r50(r: np.ndarray, p: np.ndarray) -> float:
    """Recall at 50% precision, as Dollar's edgesEvalDir (max recall if P never drops to .5)."""
    pu, idx = np.unique(p, return_index=True)
    if pu.size == 1:
        return float(r[idx[0]])
    return float(np.interp(max(pu[0], 0.5), pu, r[idx]))


@dataclass
class BoundaryResult:
    """Dataset-level PR curve and the benchmark's summary figures."""

    thresholds: np.ndarray  # (T,)
    recall: np.ndarray  # (T,) dataset-level per threshold
    precision: np.ndarray  # (T,)
    f: np.ndarray  # (T,)
    ods: dict  # {"threshold", "recall", "precision", "f"}
    ois: dict  # {"recall", "precision", "f"}
    ap: float
    per_image: list[dict]  # {"threshold", "recall", "precision", "f"} per image
    r50: float  # recall at 50% precision


def collect(counts: list[np.ndarray], thresholds: np.ndarray) -> BoundaryResult:
    """Combine per-image (T, 4) counts into ODS / OIS / AP as collect_eval_bdry.m does."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if not counts:
        raise ValueError("no images to collect")
    for i, c in enumerate(counts):
        if c.shape != (thresholds.size, 4):
            raise ValueError(
                f"counts of image {i} have shape {c.shape}, expected ({thresholds.size}, 4)"
            )
    per_image = []
    best_rows = np.zeros(4, dtype=np.int64)  # counts at each image's best threshold, summed
    for c in counts:
        r = _ratio(c[:, 0], c[:, 1])
        p = _ratio(c[:, 2], c[:, 3])
        t_best, r_best, p_best, f_best = _max_f(thresholds, r, p)
        per_image.append({"threshold": t_best, "recall": r_best, "precision": p_best, "f": f_best})
        f = fmeasure(r, p)
        # OIS uses the uninterpolated counts at the last threshold reaching the max F.
        best_rows += c[np.flatnonzero(f == f.max())[-1]]
    total = np.sum(counts, axis=0)  # (T, 4)
    recall = _ratio(total[:, 0], total[:, 1])
    precision = _ratio(total[:, 2], total[:, 3])
    t_best, r_best, p_best, f_best = _max_f(thresholds, recall, precision)
    r_ois = float(_ratio(best_rows[0], best_rows[1]))
    p_ois = float(_ratio(best_rows[2], best_rows[3]))
    return BoundaryResult(
        thresholds=thresholds,
        recall=recall,
        precision=precision,
        f=fmeasure(recall, precision),
        ods={"threshold": t_best, "recall": r_best, "precision": p_best, "f": f_best},
        ois={"recall": r_ois, "precision": p_ois, "f": float(fmeasure(r_ois, p_ois))},
        ap=_average_precision(recall, precision),
        per_image=per_image,
        r50=_r50(recall, precision),
    )


def evaluate_boundaries(
    preds: Iterable[np.ndarray],
    annotations: Iterable[list[np.ndarray]],
    config: BoundaryConfig,
) -> BoundaryResult:
    """Run the benchmark over a split: per-image counts, then `collect`."""
    counts = [image_counts(p, a, config) for p, a in zip(preds, annotations, strict=True)]
    return collect(counts, thresholds_for(config.thresholds))


def plot_pr(results: dict[str, BoundaryResult], path: Path, published: dict | None = None) -> None:
    """PR curves over iso-F contours, one per method, labelled with their ODS F; `published`
    ({name: metrics.published.PublishedCurve}) adds other detectors' published curves, thin and dashed."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    from pixelnet.report import save_figure

    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    grid = np.linspace(0.01, 1, 200)
    for f_iso in np.arange(0.1, 1.0, 0.1):
        p_iso = f_iso * grid / (2 * grid - f_iso)  # precision on the iso-F curve at recall grid
        ok = (p_iso > 0) & (p_iso <= 1)
        ax.plot(grid[ok], p_iso[ok], color="0.85", linewidth=0.8, zorder=0)
    for name, curve in (published or {}).items():
        keep = curve.recall > 0
        label = f"{name} [F={curve.ods['f']:.3f}, published]".replace("F=0.", "F=.")
        (line,) = ax.plot(curve.recall[keep], curve.precision[keep], linewidth=1, linestyle="--", label=label)
        ax.plot(curve.ods["recall"], curve.ods["precision"], ".", color=line.get_color())
    for name, res in results.items():
        label = f"{name} [F={res.ods['f']:.3f}]".replace("F=0.", "F=.")
        keep = res.recall > 0  # the official plots drop the empty-prediction end
        (line,) = ax.plot(res.recall[keep], res.precision[keep], linewidth=2, label=label)
        ax.plot(res.ods["recall"], res.ods["precision"], "o", color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_aspect("equal")
    ax.grid(True, linewidth=0.3)
    if results or published:
        ax.legend(loc="lower left", fontsize="small" if published else None)
    save_figure(fig, path, dpi=100)

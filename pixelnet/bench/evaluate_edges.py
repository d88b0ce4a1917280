"""The BSDS500 boundary benchmark timed against pyEdgeEval, on the same files.

The full protocol (thinning, max_dist 0.0075, no NMS) runs with our benchmark (`evaluate_directory`)
and with pyEdgeEval (the Python port of the official code, ``uv sync --group bench``) on the same
prediction files and the same worker count; `run` writes bench.json and bench.md and returns the
report and its table. Predictions are the given folder of 8-bit PNGs, or soft maps generated from
the images beside the ground truth (`soft_edges`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from pixelnet.atomic import atomic_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
AGREE_TOL = 0.001  # ODS / OIS F: the official matcher itself moves them by about this much
MAX_DIST = 0.0075  # the official protocol, for both tools


@dataclass(frozen=True)
class EdgeBench:
    ground_truth: Path                  # folder of BSDS <id>.mat ground truth
    images: Path | None = None          # images to make soft predictions from (default: beside the ground truth)
    predictions: Path | None = None     # existing 8-bit <id>.png edge maps instead of generated ones
    limit: int = 0                      # first N images by id (0: all)
    reference_limit: int | None = None  # pyEdgeEval on the first N only (None: all; 0: skip it)
    thresholds: int = 99
    workers: int = 2

    def __post_init__(self) -> None:
        if self.thresholds < 1:
            raise ValueError(f"--thresholds must be >= 1, got {self.thresholds}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if self.limit < 0 or (self.reference_limit is not None and self.reference_limit < 0):
            raise ValueError("--limit and --reference-limit must be >= 0")

    @property
    def run_reference(self) -> bool:
        return self.reference_limit != 0


@dataclass(frozen=True)
class Selection:
    """The ground-truth files scored, their ids, how many pyEdgeEval scores, and where images come from."""

    files: list[Path]
    names: list[str]
    n_reference: int
    images: Path | None


def soft_edges(image: np.ndarray) -> np.ndarray:
    """A deterministic stand-in for a detector's output: Sobel magnitude of the blurred grey image,
    scaled to [0, 1] and quantised to 8 bits as a PNG edge map would be. uint8 (H, W)."""
    from scipy import ndimage as ndi

    grey = ndi.gaussian_filter(np.asarray(image, dtype=np.float64) / 255.0, 2.0)  # (H, W)
    mag = np.hypot(ndi.sobel(grey, axis=0), ndi.sobel(grey, axis=1))
    return np.rint(mag / max(float(mag.max()), 1e-12) * 255).astype(np.uint8)


def _find_image(images: Path, name: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        if (images / f"{name}{suffix}").is_file():
            return images / f"{name}{suffix}"
    raise ValueError(f"{images}: no image {name}{{{','.join(IMAGE_SUFFIXES)}}} for its ground truth")


def _default_images(ground_truth: Path) -> Path | None:
    """BSDS keeps data/images/<split> beside data/groundTruth/<split>; the fixtures images/ beside groundTruth/."""
    for cand in (ground_truth.parent.parent / "images" / ground_truth.name, ground_truth.parent / "images"):
        if cand.is_dir():
            return cand
    return None


def _write_predictions(images: Path, names: list[str], folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for name in names:
        with Image.open(_find_image(images, name)) as im:
            grey = np.asarray(im.convert("L"))  # (H, W) uint8
        Image.fromarray(soft_edges(grey)).save(folder / f"{name}.png")


def _stage_ground_truth(files: list[Path], folder: Path) -> None:
    """The chosen .mat files under one folder (links, copies where links are refused), laid out as
    <root>/groundTruth/test for pyEdgeEval; our reader takes the same folder."""
    folder.mkdir(parents=True)
    for f in files:
        try:
            (folder / f.name).symlink_to(f.resolve())
        except OSError:
            shutil.copy2(f, folder / f.name)


def _ours(predictions: Path, ground_truth: Path, out: Path, thresholds: int, workers: int) -> dict:
    from pixelnet.metrics.edges import BoundaryConfig
    from pixelnet.metrics.edges_io import evaluate_directory

    config = BoundaryConfig(thresholds=thresholds, nms=False)  # thin, max_dist 0.0075, no NMS: the official protocol
    start = time.perf_counter()
    res = evaluate_directory(predictions, ground_truth, out, config, workers=workers, progress=False)
    wall = time.perf_counter() - start
    n = len(res.per_image)
    return {"images": n, "wall_s": wall, "s_per_image": wall / n, "ods": res.ods["f"], "ois": res.ois["f"],
            "ap": res.ap, "ods_threshold": res.ods["threshold"], "ods_recall": res.ods["recall"],
            "ods_precision": res.ods["precision"]}


def _pyedgeeval(root: Path, predictions: Path, names: list[str], out: Path, thresholds: int, workers: int) -> dict:
    """pyEdgeEval's BSDS500 evaluator (thinning on, no NMS, max_dist 0.0075, `nproc=workers`), in a
    child interpreter: it binds sys.stdout and its loggers at import time, so it gets its own."""
    job = {"root": str(root), "predictions": str(predictions), "names": names, "out": str(out),
           "thresholds": thresholds, "workers": workers, "result": str(out / "result.json")}
    out.mkdir(parents=True)
    code = ("import sys, json; from pixelnet.bench.evaluate_edges import pyedgeeval_child; "
            "pyedgeeval_child(json.loads(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(job)])
    if done.returncode != 0:
        raise RuntimeError(f"pyEdgeEval failed (exit {done.returncode}); its output is above")
    result = json.loads(Path(job["result"]).read_text())
    Path(job["result"]).unlink()
    return result


def pyedgeeval_child(job: dict) -> None:
    """The child interpreter's side of `_pyedgeeval`: evaluate, time, write the result JSON."""
    from pyEdgeEval.evaluators.bsds import BSDS500Evaluator

    evaluator = BSDS500Evaluator(dataset_root=job["root"], pred_root=job["predictions"], split="test")
    evaluator.set_sample_names([f"test/{n}" for n in job["names"]])
    evaluator.set_eval_params(scale=1.0, apply_thinning=True, apply_nms=False, max_dist=MAX_DIST)
    start = time.perf_counter()  # from here on, as `_ours` times `evaluate_directory`
    m = evaluator.evaluate(thresholds=job["thresholds"], nproc=job["workers"], save_dir=job["out"], no_split_dir=True)
    wall = time.perf_counter() - start
    n = len(job["names"])
    result = {"images": n, "wall_s": wall, "s_per_image": wall / n, "ods": float(m["ODS_f1"]),
              "ois": float(m["OIS_f1"]), "ap": float(m["AP"]), "auc": float(m["AUC"]),
              "ods_threshold": float(m["ODS_threshold"]), "ods_recall": float(m["ODS_recall"]),
              "ods_precision": float(m["ODS_precision"])}
    Path(job["result"]).write_text(json.dumps(result))


def check_pyedgeeval() -> None:
    """pyEdgeEval importable, or a ValueError saying how to install it."""
    hint = "run `uv sync --group bench` (or pass --reference-limit 0 to time pixelnet alone)"
    for module in ("pyEdgeEval", "prettytable"):  # pyEdgeEval imports prettytable without declaring it
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"{module} is not installed: {hint}")


def _warm_jit() -> None:
    """Compile (or load from Numba's cache) our kernels once, so no timing includes compilation."""
    from pixelnet.metrics.edges import BoundaryConfig, image_counts

    pred = np.zeros((16, 16))
    pred[4:12, 8] = 1.0
    image_counts(pred, [pred > 0, np.zeros((16, 16), bool)], BoundaryConfig(thresholds=3))
    image_counts(pred, [np.eye(16, dtype=bool)], BoundaryConfig(thresholds=3))  # transposed problems


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table of each tool's images, wall time, time per image and scores."""
    head = f"| {'tool':<28} | {'images':>6} | {'wall s':>8} | {'s/image':>8} | {'ODS':>6} | {'OIS':>6} | {'AP':>6} |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for name, r in rows:
        lines.append(f"| {name:<28} | {r['images']:>6} | {r['wall_s']:>8.2f} | {r['s_per_image']:>8.3f} | "
                     f"{r['ods']:>6.4f} | {r['ois']:>6.4f} | {r['ap']:>6.4f} |")
    return "\n".join(lines)


def markdown(report: dict, table_text: str) -> str:
    """bench.md: the settings, the table and, with pyEdgeEval, the speed-up and the differences."""
    cmp = report.get("comparison")
    lines = [
        "# BSDS500 boundary benchmark: pixelnet against pyEdgeEval",
        "",
        f"* command: `{report['command']}`",
        f"* date: {report['date']}",
        f"* machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs (os.cpu_count)",
        f"* protocol: {report['thresholds']} thresholds, thinning, no NMS, max_dist {report['max_dist']}, "
        f"{report['workers']} worker process(es) for each tool",
        f"* predictions: `{report['predictions']}`"
        + (" (generated: blurred Sobel magnitude, 8-bit PNG)" if report["predictions_generated"] else ""),
        f"* versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
        "",
        table_text,
        "",
    ]
    if cmp:
        lines += [
            f"Speed-up on the same {cmp['images']} images: **{cmp['speedup']:.1f}x** "
            f"(pyEdgeEval {cmp['pyedgeeval_s_per_image']:.2f} s/image, pixelnet {cmp['pixelnet_s_per_image']:.3f} s/image).",
            "",
            f"Differences (pixelnet - pyEdgeEval): ODS {cmp['ods_diff']:+.4f}, OIS {cmp['ois_diff']:+.4f}, "
            f"AP {cmp['ap_diff']:+.4f}; ODS and OIS within {AGREE_TOL}: {'yes' if cmp['agree'] else 'NO'}.",
            "",
            "AP is not defined the same way: ours is the official `collect_eval_bdry.m` area (precision "
            "interpolated at recall 0:0.01:1), pyEdgeEval's `AP` sums the best precision at recall >= r over "
            f"r = 0:0.01:0.99 divided by 101 (its `AUC`, {report['pyedgeeval']['auc']:.4f}, is another variant). "
            "Wall times include process start-up and writing each tool's result files; Numba kernels are "
            "compiled (or loaded from cache) before timing.",
            "",
        ]
    return "\n".join(lines)


def select(bench: EdgeBench, out: Path) -> Selection:
    """The ground truth to score and where predictions come from, every input checked before any work."""
    ground_truth, predictions = bench.ground_truth, bench.predictions
    if not ground_truth.is_dir():
        raise ValueError(f"--ground-truth {ground_truth}: folder does not exist")
    files = sorted(p for p in ground_truth.iterdir() if p.suffix.lower() == ".mat" and p.is_file())
    if not files:
        raise ValueError(f"--ground-truth {ground_truth}: no .mat files")
    files = files[: bench.limit] if bench.limit else files
    names = [p.stem for p in files]
    n_ref = len(names) if bench.reference_limit is None else min(bench.reference_limit, len(names))
    images = None
    if predictions is not None:
        if not predictions.is_dir():
            raise ValueError(f"--predictions {predictions}: folder does not exist")
        if out.resolve() in (predictions.resolve(), *predictions.resolve().parents):
            raise ValueError(f"--predictions {predictions} lies inside --out {out}, which is replaced")
        missing = [n for n in names if not (predictions / f"{n}.png").is_file()]
        if missing:
            raise ValueError(f"--predictions {predictions}: no {missing[0]}.png ({len(missing)} missing); "
                             "both tools need 8-bit PNG edge maps")
    else:
        images = bench.images or _default_images(ground_truth)
        if images is None or not images.is_dir():
            raise ValueError("give --predictions, or --images (no images folder found beside the ground truth)")
        for n in names:
            _find_image(images, n)  # fail before any work
    return Selection(files, names, n_ref, images)


def _score(bench: EdgeBench, sel: Selection, pred_dir: Path, tmp: Path) -> tuple[dict | None, dict | None, dict | None]:
    """(ours on pyEdgeEval's images, pyEdgeEval, ours on all images), each None where it did not run;
    each tool's result files under tmp/<tool>."""
    ours = ref = ours_all = None
    if bench.run_reference:
        _stage_ground_truth(sel.files[: sel.n_reference], tmp / "data" / "groundTruth" / "test")
        ours = _ours(pred_dir, tmp / "data" / "groundTruth" / "test", tmp / "pixelnet", bench.thresholds, bench.workers)
        ref = _pyedgeeval(tmp / "data", pred_dir, sel.names[: sel.n_reference], tmp / "pyedgeeval", bench.thresholds,
                          bench.workers)
    if sel.n_reference < len(sel.names) or not bench.run_reference:
        _stage_ground_truth(sel.files, tmp / "data_all" / "groundTruth" / "test")
        name = "pixelnet_all" if bench.run_reference else "pixelnet"
        ours_all = _ours(pred_dir, tmp / "data_all" / "groundTruth" / "test", tmp / name, bench.thresholds, bench.workers)
    for scaffold in ("data", "data_all"):  # links to the chosen .mat files, only for the run
        if (tmp / scaffold).exists():
            shutil.rmtree(tmp / scaffold)
    return ours, ref, ours_all


def _rows(bench: EdgeBench, sel: Selection, ours: dict | None, ref: dict | None, ours_all: dict | None) -> list[tuple[str, dict]]:
    rows: list[tuple[str, dict]] = [("pixelnet", ours), ("pyEdgeEval", ref)] if bench.run_reference else []
    if ours_all is not None:
        rows.append((f"pixelnet (all {len(sel.names)} images)" if bench.run_reference else "pixelnet", ours_all))
    return rows


def _comparison(ours: dict, ref: dict, n_ref: int) -> dict:
    return {
        "images": n_ref,
        "speedup": ref["wall_s"] / ours["wall_s"],
        "pixelnet_s_per_image": ours["s_per_image"],
        "pyedgeeval_s_per_image": ref["s_per_image"],
        "ods_diff": ours["ods"] - ref["ods"],
        "ois_diff": ours["ois"] - ref["ois"],
        "ap_diff": ours["ap"] - ref["ap"],
        "agree": abs(ours["ods"] - ref["ods"]) <= AGREE_TOL and abs(ours["ois"] - ref["ois"]) <= AGREE_TOL,
    }


def _report(bench: EdgeBench, sel: Selection, out: Path, command: str, scores: tuple) -> dict:
    ours, ref, ours_all = scores
    versions = {"pixelnet": _version("pixelnet"), "numba": _version("numba"), "numpy": _version("numpy")}
    if bench.run_reference:
        versions["pyEdgeEval"] = _version("pyEdgeEval")
    return {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "versions": versions,
        "ground_truth": str(bench.ground_truth),
        "predictions": str(bench.predictions if bench.predictions is not None else out / "predictions"),
        "predictions_generated": bench.predictions is None,
        "images": len(sel.names),
        "thresholds": bench.thresholds,
        "workers": bench.workers,
        "max_dist": MAX_DIST,
        "thin": True,
        "nms": False,
        "pixelnet": ours or ours_all,
        "pixelnet_all": ours_all if bench.run_reference else None,
        "pyedgeeval": ref,
        "comparison": _comparison(ours, ref, sel.n_reference) if ours and ref else None,
    }


def run(bench: EdgeBench, out: Path, command: str) -> tuple[dict, str]:
    """Score the selected images with pixelnet (and pyEdgeEval unless reference_limit is 0); replace `out`
    with bench.json, bench.md, each tool's result files and any generated predictions. `command` is
    the command line recorded in the report. Returns the report and its table."""
    if bench.run_reference:
        check_pyedgeeval()
    sel = select(bench, out)
    _warm_jit()
    with atomic_dir(out) as tmp:
        pred_dir = bench.predictions if bench.predictions is not None else tmp / "predictions"
        if bench.predictions is None:
            _write_predictions(sel.images, sel.names, pred_dir)
        scores = _score(bench, sel, pred_dir, tmp)
        table_text = table(_rows(bench, sel, *scores))
        report = _report(bench, sel, out, command, scores)
        (tmp / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        (tmp / "bench.md").write_text(markdown(report, table_text))
    return report, table_text

"""The speed–quality picture of a model card: BSDS500 test ODS against images per second on one CPU.

Our models are placed by what was measured: their ODS from the evaluate stages' metrics.json, their
speed from `pixelnet bench predict`'s report on the machine it names (one 481×321 image, the same
process, the same threads). A published detector is drawn by its published ODS; where its speed was
measured here too (OpenCV Canny) it is a point, elsewhere a dashed line across the plot (the title
says these speeds were not measured here), so no speed is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from pixelnet.metrics.published import PublishedCurve
from pixelnet.report import save_figure

# Published detectors whose speed `bench predict` measures, by their name in the bench report.
MEASURED_PUBLISHED = {"canny": "OpenCV Canny"}


@dataclass(frozen=True)
class Point:
    label: str
    ods: float
    images_per_s: float | None  # None: not measured on this machine


def bench_speed(report: dict, method: str, setting: str | None = None) -> float:
    """images/s of the bench report's row for `method` (and `setting`); ValueError naming what is missing."""
    for row in report["rows"]:
        if row["method"] == method and (setting is None or row.get("setting") == setting):
            return float(row["images_per_s"])
    raise ValueError(f"bench report has no row for {method!r}" + (f" at {setting!r}" if setting else ""))


def points(report: dict, ours: list[tuple[str, dict, str, str]], published: dict[str, PublishedCurve]) -> list[Point]:
    """`ours`: (label, an evaluate stage's metrics.json as read, bench method, bench setting) per model and setting."""
    out = []
    for label, metrics, method, setting in ours:
        ods = float(metrics["model"]["ods"])
        out.append(Point(label, ods, bench_speed(report, method, setting)))
    for name, curve in published.items():
        method = MEASURED_PUBLISHED.get(name.lower())
        out.append(Point(f"{name} (published ODS)", float(curve.ods["f"]), bench_speed(report, method) if method else None))
    return out


def plot(pts: list[Point], machine: str, path: Path) -> None:
    """ODS (y) against images/s (log x); unmeasured speeds as dashed lines at their ODS."""
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot()
    measured = [p for p in pts if p.images_per_s is not None]
    xs = [p.images_per_s for p in measured]
    lo, hi = min(xs) / 2, max(xs) * 2
    lines = sorted((p for p in pts if p.images_per_s is None), key=lambda p: p.ods)
    left = False  # labels at the right end (away from our slow models' dots); a close pair takes both ends
    for i, p in enumerate(lines):
        ax.axhline(p.ods, color="0.6", linestyle="--", linewidth=0.8)
        left = i > 0 and not left and p.ods - lines[i - 1].ods < 0.01
        x, align = (lo * 1.05, "left") if left else (hi / 1.05, "right")
        ax.text(x, p.ods + 0.002, p.label, fontsize=7, color="0.35", ha=align)
    ods = [p.ods for p in pts]
    gap = (max(ods) - min(ods) + 0.04) * 0.04  # label spacing in ODS units: about one line of text
    placed: list[float] = []
    for p in sorted(measured, key=lambda p: p.ods):  # labels stacked by ODS, a line apart, joined to their dot
        ours = "published" not in p.label
        ax.scatter([p.images_per_s], [p.ods], s=40 if ours else 25, color="C3" if ours else "C0", zorder=3)
        y = max(p.ods, placed[-1] + gap) if placed else p.ods
        placed.append(y)
        right = p.images_per_s > (lo * hi) ** 0.5  # labels of the right half run leftwards, inside the plot
        x = p.images_per_s / 1.4 if right else p.images_per_s * 1.4
        ax.annotate(f"{p.label} ({p.ods:.3f}, {p.images_per_s:.2g}/s)", (p.images_per_s, p.ods), xytext=(x, y),
                    fontsize=8, ha="right" if right else "left", va="center",
                    arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.6})
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(ods) - 0.02, max(ods + placed) + 0.02)
    ax.set_xlabel(f"images/s, one 481×321 image ({machine})")
    ax.set_ylabel("ODS, BSDS500 test (200 images)")
    ax.set_title("Speed and quality: ours measured here; published detectors by their published ODS\n"
                 "(dashed: a published ODS whose detector's speed was not measured here)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, path)

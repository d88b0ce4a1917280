"""The report's plots, from the committed arm files and the curves `collect` copied beside them:
each plot spec of the grid (a metric against a budget key), loss curves per task, PR curves for the
tasks whose evaluation writes one (`Task.pr_curve`: edges)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelnet.atomic import atomic_file
from pixelnet.tasks import TASKS

from pipeline.ablations.experiments import arm_file
from pipeline.ablations.grid import AXES, Table


def table_plots(table: Table, docs: dict[str, dict], arms: Path, out_dir: Path) -> list[tuple[str, str]]:
    """PNGs for one table: each plot spec (metric against a budget key), loss curves per task and
    PR curves (edges), from the arm files and the curves `collect` copied beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    made: list[tuple[str, str]] = []

    def save(fig, name: str, alt: str) -> None:
        with atomic_file(out_dir / name) as tmp:
            fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        made.append((name, alt))

    ran = [a for a in table.arms if a.key in docs]
    for spec in table.plots:
        fig, axes = plt.subplots(1, len(spec.columns), figsize=(4 * len(spec.columns), 3.2), squeeze=False)
        drawn = False
        for ax, cid in zip(axes[0], spec.columns):
            col = table.column(cid)
            series: dict[Any, list[tuple[float, float]]] = {}
            for arm in ran:
                if cid in arm.columns:
                    b = docs[arm.key]["budget"]
                    y = docs[arm.key]["metrics"]["model"][col.metric] * col.scale
                    series.setdefault(b[spec.series] if spec.series else None, []).append((b[spec.x], y))
            for key in sorted(series, key=lambda k: (k is None, k)):
                pts = sorted(series[key])
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-",
                        label=None if key is None else f"{AXES[spec.series][0]} = {key}")
                drawn = True
            ax.set(title=col.label, xlabel=AXES[spec.x][1])
            if spec.logx:
                ax.set_xscale("log")
            xs = sorted({p[0] for pts in series.values() for p in pts})
            if xs:
                ax.set_xticks(xs, [f"{x:,}" for x in xs])
                ax.minorticks_off()
            if spec.series and series:
                ax.legend(fontsize=8)
        fig.suptitle(f"{table.name}: {spec.title}", fontsize=10)
        fig.tight_layout()
        if drawn:
            save(fig, f"{table.id}-{spec.id}.png", f"{table.name}, {spec.title}")
        else:
            plt.close(fig)
    for task in TASKS:
        logs = [(a, arm_file(arms, a).with_name(f"{a.name}.loss.csv")) for a in ran if a.task == task]
        logs = [(a, p) for a, p in logs if p.is_file()]
        if logs:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for arm, path in logs:
                data = np.genfromtxt(path, delimiter=",", names=True)
                ax.plot(np.atleast_1d(data["step"]), np.atleast_1d(data["loss"]), label=arm.name, linewidth=1)
            ax.set(title=f"{table.name}: training loss ({task})", xlabel="step", ylabel="loss")
            ax.legend(fontsize=8)
            fig.tight_layout()
            save(fig, f"{table.id}-loss-{task}.png", f"{table.name}, training loss, {task}")
    curves = [(a, arm_file(arms, a).with_name(f"{a.name}.pr.txt")) for a in ran if TASKS[a.task].pr_curve]
    curves = [(a, p) for a, p in curves if p.is_file()]
    if curves:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for arm, path in curves:
            thr = np.atleast_2d(np.loadtxt(path))  # threshold, recall, precision, F (the official format)
            ods = docs[arm.key]["metrics"]["model"].get("ods")
            ax.plot(thr[:, 1], thr[:, 2], label=f"{arm.name}" + (f" (ODS {ods:.3f})" if ods is not None else ""))
        ax.set(title=f"{table.name}: PR curves", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        save(fig, f"{table.id}-pr.png", f"{table.name}, precision against recall")
    return made

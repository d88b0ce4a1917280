"""reports/ablations/README.md and its plots, from the committed per-arm files only (never from
DVC): each table in the paper's layout with the paper's numbers beside ours, every arm's overrides
and budget, and a computed verdict on whether our direction agrees with the paper's."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from pixelnet.atomic import atomic_file, atomic_write_text

from pipeline.ablations.grid import AblationError, Arm, BUDGET_KEYS, Claim, Column, Grid, TASKS, Table, _AXIS
from pipeline.ablations.experiments import _read_json, arm_file, queue_argv

def load_arm_files(grid: Grid, arms: Path) -> tuple[dict[str, dict], list[str]]:
    """The committed arm files by arm key, each checked against the grid (same overrides, every
    metric its columns need); files the grid does not name are returned as warnings."""
    found: dict[str, dict] = {}
    for table in grid.tables:
        for arm in table.all_arms:
            path = arm_file(arms, arm)
            if not path.is_file():
                continue
            doc = _read_json(path)
            if doc.get("overrides") != list(arm.overrides):
                raise AblationError(f"{path}: its overrides differ from {grid.path} arm {arm.key}; re-run the arm "
                                    f"(pixelnet ablations queue --tables {table.id}) and collect, or restore the grid")
            model = (doc.get("metrics") or {}).get("model") or {}
            for cid in arm.columns:
                metric = table.column(cid).metric
                if not isinstance(model.get(metric), (int, float)):
                    raise AblationError(f"{path}: metrics.model.{metric} is missing (column {cid} of {table.id})")
            if not isinstance(doc.get("budget"), dict) or set(BUDGET_KEYS) - set(doc["budget"]):
                raise AblationError(f"{path}: budget must hold {', '.join(BUDGET_KEYS)}")
            found[arm.key] = doc
    named = {arm_file(arms, a).resolve() for t in grid.tables for a in t.all_arms}
    extra = sorted(str(p) for p in Path(arms).glob("*/*.json") if p.resolve() not in named) if Path(arms).is_dir() else []
    return found, [f"{p}: not an arm of {grid.path}; ignored" for p in extra]


def _values(table: Table, docs: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Ours, as displayed: row -> column -> value (scaled, rounded)."""
    out: dict[str, dict[str, float]] = {}
    for arm in table.arms:
        doc = docs.get(arm.key)
        if doc is None:
            continue
        for cid in arm.columns:
            col = table.column(cid)
            out.setdefault(arm.row, {})[cid] = col.rounded(doc["metrics"]["model"][col.metric] * col.scale)
    return out


def judge(claim: Claim, table: Table, values: dict[str, dict[str, float]]) -> list[tuple[Column, float, str]]:
    """Per column with both rows present: (column, first row − second row, agrees | tie | disagrees)."""
    a, b = claim.rows
    out = []
    for col in table.columns:
        va, vb = values.get(a, {}).get(col.id), values.get(b, {}).get(col.id)
        if va is None or vb is None:
            continue
        diff = col.rounded(va - vb)
        if claim.kind == "beats":
            gain = diff if col.better == "higher" else -diff
            verdict = "agrees" if gain > col.tol + 1e-9 else "disagrees" if gain < -col.tol - 1e-9 else "tie"
        else:
            verdict = "agrees" if abs(diff) <= col.tol + 1e-9 else "disagrees"
        out.append((col, diff, verdict))
    return out


def verdict(results: list[tuple[Column, float, str]]) -> str:
    if not results:
        return "not run yet"
    n = Counter(v for _, _, v in results)
    word = ("agrees" if not n["disagrees"] and n["agrees"] else "disagrees" if n["disagrees"] and not n["agrees"]
            else "tie" if not n["disagrees"] else "mixed")
    parts = [f"{n[k]} {k}" for k in ("agrees", "tie", "disagrees") if n[k]]
    return f"{word} ({', '.join(parts)} of {len(results)} columns)"


def _md(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def _cell(col: Column, diff: float, word: str) -> str:
    return f"{format(diff, '+' + col.fmt)} ({word})"


COMMANDS = """```bash
uv run pixelnet ablations queue --bsds500 ../shared/datasets/BSR   # one DVC experiment per unfinished arm
uv run dvc queue start -j 1                                        # one worker; `uv run dvc queue status` to follow
uv run pixelnet ablations collect                                  # finished arms -> reports/ablations/arms/
uv run pixelnet ablations render                                   # this page, from those files only
```"""


def _table_section(table: Table, docs: dict[str, dict], figures: list[tuple[str, str]], notes: Path | None) -> list[str]:
    values = _values(table, docs)
    ran = [a for a in table.arms if a.key in docs]
    out = [f"## Table {table.paper_table}: {table.title}", "", f"**The paper's claim.** {table.claim}", "",
           f"**Our setting.** {table.setting}", ""]
    if not ran:
        out += [f"_Not run yet: `uv run pixelnet ablations queue --tables {table.id}`, then `uv run dvc queue start "
                f"-j 1`, `uv run pixelnet ablations collect` and `uv run pixelnet ablations render`._", ""]
    head = ["Method", "from"] + [c.label for c in table.columns]
    out += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(table.columns)]
    for row in table.rows:
        ours = values.get(row.id, {})
        out.append("| " + " | ".join([_md(row.label), "paper"] + [c.show(row.paper.get(c.id)) for c in table.columns]) + " |")
        out.append("| " + " | ".join([_md(row.ours), "ours"] + [c.show(ours.get(c.id)) for c in table.columns]) + " |")
    out.append("")
    if table.claims:
        out += ["**Direction** (ours judged like the paper's; two values closer than the column's tolerance are a tie; "
                "tolerances: " + ", ".join(f"{c.label} {format(c.tol, c.fmt)}" for c in table.columns) + ").", ""]
        for claim in table.claims:
            a, b = (next(r.label for r in table.rows if r.id == rid) for rid in claim.rows)
            mine, theirs = judge(claim, table, values), judge(claim, table, {r.id: r.paper for r in table.rows})
            paper_word = verdict(theirs) if all(r.paper for r in table.rows if r.id in claim.rows) else "has no such row"
            out.append(f"* {claim.text} ({claim.kind}: {a} vs {b}): paper {paper_word}; ours {verdict(mine)}.")
            word = verdict(mine).split()[0]
            if word in ("disagrees", "mixed") and claim.reason:
                part = "" if word == "disagrees" else " in part"
                out.append(f"  Ours disagrees with the paper's direction{part}. Likely reason (stated before the runs): "
                           f"{claim.reason}")
            paper_by = {c.id: (d, w) for c, d, w in theirs}
            for col, diff, word in mine:
                p = paper_by.get(col.id)
                out.append(f"  * {col.label}: ours {_cell(col, diff, word)}; paper "
                           f"{_cell(col, p[0], p[1]) if p else '—'}")
        out.append("")
    out += _spread_lines(table, docs)
    out += _budget_lines(table, docs)
    out += ["**Arms.**", "", "| arm | row | task | steps | N × M = pixels a step | crop | experiment | rev |",
            "|---|---|---|---:|---|---:|---|---|"]
    for arm in table.all_arms:
        doc = docs.get(arm.key)
        b = doc["budget"] if doc else None
        cells = [arm.name, _md(next(r.label for r in table.rows if r.id == arm.row)), arm.task,
                 f"{b['iterations']:,}" if b else "—",
                 f"{b['pixels_per_image']:,} × {b['images_per_batch']} = {b['pixels_per_batch']:,}" if b else "—",
                 str(b["crop"]) if b else "—", f"`{arm.experiment}`", doc["rev"][:7] if doc else "not run"]
        out.append("| " + " | ".join(cells) + " |")
    extra = tuple(f"data.{s}.source=<{s.upper()}>" for s in table.requires)
    out += ["", "Each arm's exact command (`queue` runs it for the arms without a finished result):", "", "```bash"]
    out += [shlex.join(queue_argv(arm, extra)) for arm in table.all_arms] + ["```", ""]
    for source in table.requires:
        used = sorted({d["sources"].get(source, "") for d in docs.values() if d["table"] == table.id} - {""})
        out += [f"`<{source.upper()}>` is the absolute path given to `queue --{source}` (queued experiments run in a "
                f"temporary copy of the repository)" + (f"; the collected arms used {', '.join(used)}." if used else "."), ""]
    for name, alt in figures:
        out += [f"![{alt}]({name})", ""]
    note = notes / f"{table.id}.md" if notes else None
    if note and note.is_file():
        out += ["**Notes.**", "", note.read_text().strip(), ""]
    return out


def _spread_lines(table: Table, docs: dict[str, dict]) -> list[str]:
    """The repeated arms under each seed with their mean, and per column the largest range (max − min)
    beside the tolerance the verdicts use: what a single run's number is worth."""
    if not table.repeats:
        return []
    seeds = sorted({a.seed for a in table.repeats})
    out = [f"**Seed spread** (an arm run again with `train.seed` = `sampling.seed` = {', '.join(map(str, seeds))}: "
           "new initial weights, windows and pixels; seed 0 is the arm itself, run with params.yaml's seeds. "
           "The verdicts above use seed 0 only).", "",
           "| arm | seeds | " + " | ".join(c.label for c in table.columns) + " |", "|---|---|" + "---:|" * len(table.columns)]
    ranges: dict[str, list[float]] = {}
    for arm in table.arms:
        runs = [(0, arm)] + [(r.seed, r) for r in table.repeats if r.of == arm.name]
        if len(runs) == 1:
            continue
        pending = [str(seed) for seed, a in runs if a.key not in docs]
        runs = [(seed, a) for seed, a in runs if a.key in docs]
        cells = []
        for col in table.columns:
            if col.id not in arm.columns or not runs:
                cells.append("—")
                continue
            raw = [docs[a.key]["metrics"]["model"][col.metric] * col.scale for _, a in runs]
            vals = [col.rounded(v) for v in raw]
            spread = col.rounded(max(vals) - min(vals))
            if len(vals) > 1:
                ranges.setdefault(col.id, []).append(spread)
            mean = col.rounded(sum(raw) / len(raw))
            cells.append(" / ".join(col.show(v) for v in vals)
                         + (f" (mean {col.show(mean)}, range {col.show(spread)})" if len(vals) > 1 else ""))
        ran = " / ".join(str(seed) for seed, _ in runs) + (f" ({', '.join(pending)} not run)" if pending else "")
        out.append("| " + " | ".join([arm.name, ran.strip()] + cells) + " |")
    out.append("")
    if ranges:
        parts = []
        for col in table.columns:
            if col.id in ranges:
                worst = max(ranges[col.id])
                word = "within" if worst <= col.tol + 1e-9 else "**beyond**"
                parts.append(f"{col.label} {col.show(worst)} ({word} its tolerance {format(col.tol, col.fmt)})")
        out += ["Largest range per column: " + "; ".join(parts) + ". A difference between two single runs smaller "
                "than the range is not a measured effect.", ""]
    return out


def _budget_lines(table: Table, docs: dict[str, dict]) -> list[str]:
    """Per group of arms filling the same columns: the budget keys the table fixes, equal or not."""
    groups: dict[tuple[str, ...], list[Arm]] = {}
    for arm in table.all_arms:
        if arm.key in docs:
            groups.setdefault(arm.columns, []).append(arm)
    if not groups or not table.equal_budget:
        return []
    out = [f"**Budget** (equal across the arms that fill the same columns: {', '.join(table.equal_budget)}).", ""]
    for cols, arms in groups.items():
        labels = ", ".join(table.column(c).label for c in cols)
        parts, unequal = [], []
        for key in table.equal_budget:
            seen = {a.name: docs[a.key]["budget"][key] for a in arms}
            if len({json.dumps(v) for v in seen.values()}) == 1:
                parts.append(f"{key} {json.dumps(next(iter(seen.values())))}")
            else:
                unequal.append(f"{key}: " + ", ".join(f"{n} {json.dumps(v)}" for n, v in seen.items()))
        state = "equal" if not unequal else "**unequal**: " + "; ".join(unequal)
        out.append(f"* {labels} ({len(arms)} arms): {', '.join(parts)}; {state}.")
    return out + [""]


def _plots(table: Table, docs: dict[str, dict], arms: Path, out_dir: Path) -> list[tuple[str, str]]:
    """PNGs for one table: each plot spec (metric against a budget key), loss curves per task and
    PR curves for edges, from the arm files and the curves `collect` copied beside them."""
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
                        label=None if key is None else f"{_AXIS[spec.series][0]} = {key}")
                drawn = True
            ax.set(title=col.label, xlabel=_AXIS[spec.x][1])
            if spec.logx:
                ax.set_xscale("log")
            xs = sorted({p[0] for pts in series.values() for p in pts})
            if xs:
                ax.set_xticks(xs, [f"{x:,}" for x in xs])
                ax.minorticks_off()
            if spec.series and series:
                ax.legend(fontsize=8)
        fig.suptitle(f"Table {table.paper_table}: {spec.title}", fontsize=10)
        fig.tight_layout()
        if drawn:
            save(fig, f"{table.id}-{spec.id}.png", f"Table {table.paper_table}, {spec.title}")
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
            ax.set(title=f"Table {table.paper_table}: training loss ({task})", xlabel="step", ylabel="loss")
            ax.legend(fontsize=8)
            fig.tight_layout()
            save(fig, f"{table.id}-loss-{task}.png", f"Table {table.paper_table}, training loss, {task}")
    curves = [(a, arm_file(arms, a).with_name(f"{a.name}.pr.txt")) for a in ran if a.task == "edges"]
    curves = [(a, p) for a, p in curves if p.is_file()]
    if curves:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for arm, path in curves:
            thr = np.atleast_2d(np.loadtxt(path))  # threshold, recall, precision, F (the official format)
            ods = docs[arm.key]["metrics"]["model"].get("ods")
            ax.plot(thr[:, 1], thr[:, 2], label=f"{arm.name}" + (f" (ODS {ods:.3f})" if ods is not None else ""))
        ax.set(title=f"Table {table.paper_table}: PR curves", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        save(fig, f"{table.id}-pr.png", f"Table {table.paper_table}, precision against recall")
    return made


def _dvc_compare(grid: Grid) -> str:
    """How to compare arms in DVC itself while their experiments are in this repository's refs."""
    a, b = next(((x, y) for t in grid.tables for x in t.arms for y in t.arms if x.task == y.task and x != y))
    return ("While the experiments are local (`dvc exp pull` brings them from a remote), DVC compares arms too: "
            "`uv run dvc exp show --only-changed` lists every arm's params and metrics, and "
            f"`uv run dvc plots diff {a.experiment} {b.experiment} --targets reports/{a.task}/train_loss.csv` "
            "draws two arms' loss curves together.")


def render_report(grid: Grid, arms: Path, out_dir: Path, notes: Path | None = None) -> tuple[list[Path], list[str]]:
    """reports/ablations/README.md (and plots) from the grid and the committed arm files only;
    the same inputs give the same bytes."""
    docs, warnings = load_arm_files(grid, arms)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = ", ".join(str(t.paper_table) for t in grid.tables[:-1])
    numbers = f"{numbers} and {grid.tables[-1].paper_table}" if numbers else str(grid.tables[-1].paper_table)
    lines = [f"# Ablations: the paper's Tables {numbers}, ours beside the paper's", "",
             "Generated by `uv run pixelnet ablations render` from the grid (`recipes/ablations/grid.yaml`) and the "
             "per-arm files under `reports/ablations/arms/`, each written by `pixelnet ablations collect` from `dvc exp "
             "show --json`; do not edit by hand. Each of our numbers below is in those files, the paper's are in the grid. "
             "The arms run with "
             "`dvc exp run --queue`; the whole grid, again:", "", COMMANDS, "",
             "Killed mid-run? `uv run dvc queue stop --kill`, then the first two commands again: finished arms are "
             "skipped, the killed one is queued again, and the queued ones wait where they were.", "",
             _dvc_compare(grid), "",
             "| Table | the paper's claim | arms collected | our direction |", "|---|---|---:|---|"]
    figures: dict[str, list[tuple[str, str]]] = {}
    for table in grid.tables:
        values = _values(table, docs)
        direction = "; ".join(f"{c.text}: {verdict(judge(c, table, values)).split(' (')[0]}" for c in table.claims)
        n = sum(a.key in docs for a in table.arms)
        lines.append(f"| {table.paper_table} | {table.claim} | {n} of {len(table.arms)} | {direction or '—'} |")
        figures[table.id] = _plots(table, docs, arms, out_dir)
    lines.append("")
    for table in grid.tables:
        lines += _table_section(table, docs, figures[table.id], notes)
    report = out_dir / "README.md"
    atomic_write_text(report, "\n".join(lines).rstrip("\n") + "\n")
    made = {name for figs in figures.values() for name, _ in figs}
    for old in sorted(out_dir.glob("*.png")):  # pictures of an earlier render that this one no longer draws
        if old.name not in made and any(old.name.startswith(f"{t.id}-") for t in grid.tables):
            old.unlink()
    return [report, *(out_dir / name for name in sorted(made))], warnings

"""reports/ablations/README.md and its plots, from the committed per-arm files only (never from
DVC): each table in the paper's layout with the paper's numbers beside ours (the mean over each
arm's seeds), every arm's overrides, budget, evaluation settings and check against its task's
trivial baseline, and a computed verdict on whether our direction agrees with the paper's, read
against the seed noise measured in the same table (the rules: pipeline/ablations/verdicts.py)."""

from __future__ import annotations

import json
from pathlib import Path

from pixelnet.atomic import atomic_write_text

from pipeline.ablations.experiments import arm_file, read_json
from pipeline.ablations.grid import AblationError, BUDGET_KEYS, Column, Grid, Table, evaluation_text
from pipeline.ablations.listing import (PAPER_EVALUATION, arms_lines, budget_lines, evaluation_lines, md,
                                        superseded_lines)
from pipeline.ablations.plots import table_plots
from pipeline.ablations.verdicts import (NO_VERDICT, ColumnVerdict, TableResult, baseline_rule, failed_text, judge,
                                         results, verdict)


def load_arm_files(grid: Grid, arms: Path) -> tuple[dict[str, dict], list[str]]:
    """The committed arm files by arm key, each checked against the grid (every metric its columns
    need); a file whose overrides differ from its arm's (collected under an earlier grid) is left out
    (`superseded` lists it), and files the grid does not name are returned as warnings."""
    found: dict[str, dict] = {}
    for table in grid.tables:
        for arm in table.all_arms:
            path = arm_file(arms, arm)
            if not path.is_file():
                continue
            doc = read_json(path)
            if doc.get("overrides") != list(arm.overrides):
                continue
            model = (doc.get("metrics") or {}).get("model") or {}
            for cid in arm.columns:
                metric = table.column(cid).metric
                if not isinstance(model.get(metric), (int, float)):
                    raise AblationError(f"{path}: metrics.model.{metric} is missing (column {cid} of {table.id})")
            if not isinstance(doc.get("budget"), dict) or set(BUDGET_KEYS) - set(doc["budget"]):
                raise AblationError(f"{path}: budget must hold {', '.join(BUDGET_KEYS)}")
            ev = doc.get("evaluation")
            if ev is not None and not (isinstance(ev, dict) and isinstance(ev.get("scales"), list)
                                       and isinstance(ev.get("flip"), bool)):
                raise AblationError(f"{path}: evaluation must hold scales (a list) and flip (true or false)")
            if doc.get("sampling") is not None and not isinstance(doc["sampling"], dict):
                raise AblationError(f"{path}: sampling must be the arm's sampling.json (an object)")
            found[arm.key] = doc
    named = {arm_file(arms, a).resolve() for t in grid.tables for a in t.all_arms}
    extra = sorted(str(p) for p in Path(arms).glob("*/*.json") if p.resolve() not in named) if Path(arms).is_dir() else []
    return found, [f"{p}: not an arm of {grid.path}; ignored" for p in extra]


def superseded(table: Table, arms: Path) -> list[tuple[str, list[str] | None]]:
    """The table's arm files left out because the grid changed since they were collected: (arm name,
    the file's overrides) where they differ from the grid's, (file name, None) for a file of the
    table's folder that the grid no longer names."""
    out: list[tuple[str, list[str] | None]] = []
    for arm in table.all_arms:
        path = arm_file(arms, arm)
        if path.is_file() and (had := read_json(path).get("overrides")) != list(arm.overrides):
            out.append((arm.name, had if isinstance(had, list) else []))
    named = {arm_file(arms, a).name for a in table.all_arms}
    folder = Path(arms) / table.id
    out += [(p.stem, None) for p in sorted(folder.glob("*.json")) if p.name not in named] if folder.is_dir() else []
    return out


def _tol(col: Column, value: float) -> str:
    return format(value, col.fmt)


def _cell(r: ColumnVerdict, ours: bool) -> str:
    diff = format(r.diff, "+" + r.col.fmt)
    if r.word == NO_VERDICT:
        return f"{diff} ({NO_VERDICT}: {failed_text(r.failed)})"
    return f"{diff} ({r.word}, tolerance {_tol(r.col, r.tol)})" if ours else f"{diff} ({r.word})"


# ----------------------------------------------------------------------------- the numbers table

def _from(table: Table, row: str, res: TableResult) -> str:
    """`ours`, or how many seeds the row's means are over."""
    counts = [len(res.arms[a.name].runs) for a in table.arms if a.row == row and a.name in res.arms]
    if not counts or max(counts) == 1:
        return "ours"
    if len(set(counts)) == 1:
        return f"ours, mean of {counts[0]} seeds"
    return f"ours, mean of {' / '.join(map(str, counts))} seeds"


def _drawn(table: Table, row: str, res: TableResult, docs: dict[str, dict]) -> list[str]:
    """The share asked (sampling.positive_fraction, or uniform) and the share drawn, per seed."""
    arms = [res.arms[a.name] for a in table.arms if a.row == row and a.name in res.arms]
    if not arms:
        return ["—", "—"]
    b = docs[arms[0].runs[0].key]["budget"]
    asked = "uniform" if b["strategy"] == "uniform" else f"{b['positive_fraction']:.0%}"
    shares = []
    for run in (r for a in arms for r in a.runs):
        share = ((docs[run.key].get("sampling") or {}).get("share_per_stratum") or {}).get(table.drawn.stratum)
        mark = "†" if docs[run.key].get("sampling_from") else ""
        shares.append("not recorded" if share is None else f"{100 * share:.1f}%{mark}")
    return [asked, "not recorded" if set(shares) == {"not recorded"} else " / ".join(shares)]


def _numbers_lines(table: Table, res: TableResult, docs: dict[str, dict]) -> list[str]:
    values, failed = res.values(), res.failed()
    head = ["Method", "from"] + [c.label for c in table.columns]
    if table.drawn:
        head += [f"{table.drawn.label} asked", f"{table.drawn.label} drawn"]
    out = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in table.rows:
        ours = values.get(row.id, {})
        lost = failed.get(row.id, {})
        paper = [md(row.label), "paper"] + [c.show(row.paper.get(c.id)) for c in table.columns]
        mine = [md(row.ours), _from(table, row.id, res)] + [
            c.show(ours.get(c.id)) + (" (failed)" if c.id in lost else "") for c in table.columns]
        if table.drawn:
            paper += ["—", "—"]
            mine += _drawn(table, row.id, res, docs)
        out += (["| " + " | ".join(paper) + " |"] if table.paper_table is not None else []) + ["| " + " | ".join(mine) + " |"]
    out.append("")
    if table.drawn and res.arms:
        runs = [r for a in res.arms.values() for r in a.runs]
        missing = [r.name for r in runs if not docs[r.key].get("sampling")]
        redrawn = [r.name for r in runs if docs[r.key].get("sampling") and docs[r.key].get("sampling_from")]
        out += [f"_{table.drawn.label.capitalize()} asked_ is `sampling.positive_fraction` (uniform: no share asked); "
                f"_drawn_ is the share of stratum {table.drawn.stratum} among all pixels of the run's sampling plan, "
                "from its `reports/<task>/sampling.json` as `collect` kept it, seeds in order."
                + (f" Marked †: {', '.join(redrawn)}, collected before `collect` kept that file; their plans were "
                   "recomputed at their params (`pixelnet ablations collect --backfill-sampling`: the plan is a "
                   "function of the params and the shards; `--check-sampling` compares the plans it recomputes "
                   "with those other runs recorded)." if redrawn else "")
                + (f" Not recorded for {', '.join(missing)}: collected before `collect` kept that file; "
                   "`pixelnet ablations collect --backfill-sampling` recomputes it." if missing else ""), ""]
    bad = [(r, c) for a in res.arms.values() for r, c in zip(a.runs, a.checks) if c.state == "failed"]
    if bad:
        out += ["**Failed runs** (no better than their task's trivial baseline: shown above, marked, and left out "
                "of every verdict):", ""]
        out += [f"* {r.name} ({f'seed {r.seed} of arm {r.of}' if r.of else 'seed 0'}): {c.text}." for r, c in bad] + [""]
    return out


# ----------------------------------------------------------------------------- verdicts

def _direction_lines(table: Table, res: TableResult) -> list[str]:
    if not table.claims:
        return []
    values, tol, failed = res.values(), res.tolerances(), res.failed()
    parts = []
    for col in table.columns:
        if col.id in res.noise and res.noise[col.id] > col.tol + 1e-9:
            parts.append(f"{col.label} {_tol(col, tol[col.id])} (preset {_tol(col, col.tol)}, widened to the seed range)")
        else:
            parts.append(f"{col.label} {_tol(col, tol[col.id])}" + (f" (preset; seed range {_tol(col, res.noise[col.id])})"
                                                                   if col.id in res.noise else " (preset)"))
    single = [r.arm.name for r in res.arms.values() if len(r.runs) == 1]
    multi = [f"{r.arm.name} ({' / '.join(map(str, r.seeds))})" for r in res.arms.values() if len(r.runs) > 1]
    seeds = (f"Means over seeds: {', '.join(multi)}. Single-seed arms, compared on their one run against the same "
             f"tolerances: {', '.join(single) or 'none'}." if multi else
             "Every arm here is a single run (seed 0): no seed range was measured in this table." if single else "")
    out = ["**Direction** (ours judged like the paper's, on each arm's mean over its seeds; a difference no larger "
           "than the column's tolerance is within noise, which for a \"matches\" claim agrees; the paper's numbers "
           "are judged with the preset tolerances, where a difference inside one is a tie). Tolerances, each at least "
           "the largest seed range measured for its column in this table: " + "; ".join(parts) + "." + (" " + seeds if seeds else ""), ""]
    for claim in table.claims:
        a, b = (next(r.label for r in table.rows if r.id == rid) for rid in claim.rows)
        mine = judge(claim, table, values, tol, failed)
        theirs = judge(claim, table, {r.id: r.paper for r in table.rows}, inside="tie")
        paper_word = verdict(theirs) if all(r.paper for r in table.rows if r.id in claim.rows) else "has no such row"
        ours = table.paper_table is not None  # a check of ours has no paper to set beside it
        out.append(f"* {claim.text} ({claim.kind}: {a} vs {b}): " + (f"paper {paper_word}; " if ours else "")
                   + f"ours {verdict(mine)}.")
        word = verdict(mine).split(" (")[0]
        if word in ("disagrees", "mixed") and claim.reason:
            part = "" if word == "disagrees" else " in part"
            against = "the paper's direction" if ours else "the claim"
            out.append(f"  Ours disagrees with {against}{part}. Likely reason (stated before the runs): {claim.reason}")
        paper_by = {r.col.id: r for r in theirs}
        for r in mine:
            p = paper_by.get(r.col.id)
            out.append(f"  * {r.col.label}: ours {_cell(r, True)}" + (f"; paper {_cell(p, False) if p else '—'}" if ours else ""))
    return out + [""]


def _spread_lines(table: Table, res: TableResult) -> list[str]:
    """The repeated arms under each seed with their mean, and per column the largest range (max − min)
    beside the preset tolerance: what a single run's number is worth, and what the verdicts used."""
    if not table.repeats:
        return []
    seeds = sorted({a.seed for a in table.repeats})
    out = [f"**Seed spread** (an arm run again with `train.seed` = `sampling.seed` = {', '.join(map(str, seeds))}: "
           "new initial weights, windows and pixels; seed 0 is the arm itself, run with params.yaml's seeds. "
           "The table above shows, and the verdicts compare, the means).", "",
           "| arm | seeds | " + " | ".join(c.label for c in table.columns) + " |", "|---|---|" + "---:|" * len(table.columns)]
    for arm in table.arms:
        planned = [0] + [r.seed for r in table.repeats if r.of == arm.name]
        if len(planned) == 1:
            continue
        r = res.arms.get(arm.name)
        got = r.seeds if r else ()
        pending = [str(s) for s in planned if s not in got]
        cells = []
        for col in table.columns:
            if col.id not in arm.columns or r is None:
                cells.append("—")
                continue
            vals = r.seed_values[col.id]
            cells.append(" / ".join(col.show(v) for v in vals) + (
                f" (mean {col.show(r.values[col.id])}, range {col.show(r.ranges[col.id])})" if len(vals) > 1 else ""))
        ran = " / ".join(map(str, got)) + (f" ({', '.join(pending)} not run)" if pending else "")
        name = arm.name + (" (failed: its range is not counted)" if r and r.failed else "")
        out.append("| " + " | ".join([name, ran.strip()] + cells) + " |")
    out.append("")
    if res.noise:
        parts = []
        for col in table.columns:
            if col.id in res.noise:
                worst = res.noise[col.id]
                word = ("within its preset tolerance" if worst <= col.tol + 1e-9
                        else "**beyond** its preset tolerance")
                parts.append(f"{col.label} {col.show(worst)} ({word} {_tol(col, col.tol)})")
        out += ["Largest range per column: " + "; ".join(parts) + ". The verdicts use the larger of the two: a "
                "difference smaller than the range is not a measured effect.", ""]
    return out


def _table_section(table: Table, docs: dict[str, dict], res: TableResult, figures: list[tuple[str, str]],
                   notes: Path | None, stale: list[tuple[str, list[str] | None]]) -> list[str]:
    claim = "The paper's claim" if table.paper_table is not None else "The claim checked (not in the paper)"
    out = [f"## {table.name}: {table.title}", "", f"**{claim}.** {table.claim}", "",
           f"**Our setting.** {table.setting}", ""]
    if not res.arms:
        out += [f"_Not run yet: `uv run pixelnet ablations queue --tables {table.id}`, then `uv run dvc queue start "
                f"-j 1`, `uv run pixelnet ablations collect` and `uv run pixelnet ablations render`._", ""]
    out += _numbers_lines(table, res, docs)
    out += superseded_lines(table, stale)
    out += evaluation_lines(table, docs)
    out += _direction_lines(table, res)
    out += _spread_lines(table, res)
    out += budget_lines(table, docs)
    out += arms_lines(table, docs)
    for name, alt in figures:
        out += [f"![{alt}]({name})", ""]
    note = notes / f"{table.id}.md" if notes else None
    if note and note.is_file():
        head = "**Notes.**" if not stale else "**Notes** (this table has superseded arm files: these may read those runs)."
        out += [head, "", note.read_text().strip(), ""]
    return out


# ----------------------------------------------------------------------------- the page

COMMANDS = """```bash
uv run pixelnet ablations queue --bsds500 ../shared/datasets/BSR   # one DVC experiment per unfinished arm
uv run dvc queue start -j 1                                        # one worker; `uv run dvc queue status` to follow
uv run pixelnet ablations collect                                  # finished arms -> reports/ablations/arms/
uv run pixelnet ablations render                                   # this page, from those files only
```"""


def _rules(grid: Grid) -> str:
    tasks = dict.fromkeys(arm.task for table in grid.tables for arm in table.arms)  # in the grid's order
    rules = {task: baseline_rule(task) for task in tasks}
    checks = "; ".join(f"{task}: {c.label} {'not above' if c.better == 'higher' else 'not below'} {c.baseline}'s"
                       for task, c in rules.items() if c is not None)
    return ("**How the verdicts are read.** A run has *failed* when it scores no better than its task's trivial baseline, "
            f"which the evaluate stage scores on the same test split ({checks}): its numbers stay in its table, "
            "marked, and never enter a verdict; an arm with a failed seed has failed. Ours are the mean over each "
            "arm's seeds. Each column's tolerance is the larger of the grid's preset and the largest seed range "
            "measured for that column in the same table; a difference inside it is *within noise*.")


def _dvc_compare(grid: Grid) -> str:
    """How to compare arms in DVC itself while their experiments are in this repository's refs."""
    a, b = next(((x, y) for t in grid.tables for x in t.arms for y in t.arms if x.loss_file == y.loss_file and x != y))
    return ("While the experiments are local (`dvc exp pull` brings them from a remote), DVC compares arms too: "
            "`uv run dvc exp show --only-changed` lists every arm's params and metrics, and "
            f"`uv run dvc plots diff {a.experiment} {b.experiment} --targets {a.loss_file}` "
            "draws two arms' loss curves together.")


def _summary_eval(table: Table, docs: dict[str, dict]) -> str:
    seen = {json.dumps({k: d["evaluation"][k] for k in ("scales", "flip")}) if d.get("evaluation") else ""
            for a in table.all_arms if (d := docs.get(a.key))}
    if not seen:
        return "—"
    if len(seen) > 1:
        return "partly not recorded" if "" in seen else "unequal between arms"
    key = next(iter(seen))
    if not key:
        return "not recorded"
    ev = json.loads(key)
    return evaluation_text(ev) + (" (as the paper)" if ev == PAPER_EVALUATION else " (the paper: 1.0, no flip)")


def render_report(grid: Grid, arms: Path, out_dir: Path, notes: Path | None = None) -> tuple[list[Path], list[str]]:
    """reports/ablations/README.md (and plots) from the grid and the committed arm files only;
    the same inputs give the same bytes."""
    docs, warnings = load_arm_files(grid, arms)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paper = [str(t.paper_table) for t in grid.tables if t.paper_table is not None]
    numbers = f"{', '.join(paper[:-1])} and {paper[-1]}" if len(paper) > 1 else "".join(paper)
    lines = [f"# Ablations: the paper's Tables {numbers}, ours beside the paper's", "",
             "Generated by `uv run pixelnet ablations render` from the grid (`recipes/ablations/grid.yaml`) and the "
             "per-arm files under `reports/ablations/arms/`, each written by `pixelnet ablations collect` from `dvc exp "
             "show --json`; do not edit by hand. Each of our numbers below is in those files, the paper's are in the grid. "
             "The arms run with "
             "`dvc exp run --queue`; the whole grid, again:", "", COMMANDS, "",
             "Killed mid-run? `uv run dvc queue stop --kill`, then the first two commands again: finished arms are "
             "skipped, the killed one is queued again, and the queued ones wait where they were.", "",
             _dvc_compare(grid), "", _rules(grid), "",
             "| Table | the paper's claim | arms collected | failed (no better than baseline) | evaluation | our direction |",
             "|---|---|---:|---|---|---|"]
    figures: dict[str, list[tuple[str, str]]] = {}
    stale: dict[str, list[tuple[str, list[str] | None]]] = {}
    res = {t.id: results(t, docs) for t in grid.tables}
    for table in grid.tables:
        r = res[table.id]
        tol, values, failed = r.tolerances(), r.values(), r.failed()
        direction = "; ".join(f"{c.text}: {verdict(judge(c, table, values, tol, failed))}" for c in table.claims)
        n = sum(a.key in docs for a in table.arms)
        stale[table.id] = superseded(table, arms)
        old = sum(name in {a.name for a in table.arms} for name, _ in stale[table.id])
        lost = ", ".join(a.arm.name for a in r.arms.values() if a.failed) or "none"
        lines.append(f"| {table.paper_table if table.paper_table is not None else 'check'} | {table.claim} | "
                     f"{n} of {len(table.arms)}{f' ({old} superseded)' if old else ''} | {lost} | "
                     f"{_summary_eval(table, docs)} | {direction or '—'} |")
        figures[table.id] = table_plots(table, docs, arms, out_dir)
    lines.append("")
    for table in grid.tables:
        lines += _table_section(table, docs, res[table.id], figures[table.id], notes, stale[table.id])
    report = out_dir / "README.md"
    atomic_write_text(report, "\n".join(lines).rstrip("\n") + "\n")
    made = {name for figs in figures.values() for name, _ in figs}
    for old in sorted(out_dir.glob("*.png")):  # pictures of an earlier render that this one no longer draws
        if old.name not in made and any(old.name.startswith(f"{t.id}-") for t in grid.tables):
            old.unlink()
    return [report, *(out_dir / name for name in sorted(made))], warnings

"""What the report concludes from the committed arm files, and by which rules.

* A run has **failed** when it scores no better than its task's trivial baseline (below it, or equal
  to it: a run that answers exactly what the constant predictor answers learned nothing): the
  `baseline` block of its own metrics.json, which the evaluate stage computes on the same test split
  (the task's `baseline_check` says which metric decides). Such a run did not learn what a constant predictor knows,
  so its numbers say nothing about the setting it tests. An arm has failed when any of its seeds
  has; it stays in its table, marked, and never enters a verdict.
* An arm's value in a column is the **mean over its seeds** (seed 0 and the collected repeats),
  rounded as displayed, so a verdict never contradicts the printed numbers.
* A column's **tolerance** is the larger of the grid's preset `tol` and the largest seed range
  (max − min) measured for that column in the same table, over arms that did not fail: a
  difference no larger than what re-running one arm moves it by is **within noise**.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pixelnet.tasks import TASKS
from pixelnet.tasks.base import BaselineCheck

from pipeline.ablations.grid import Arm, Claim, Column, Table


def baseline_rule(task: str) -> BaselineCheck | None:
    """The metric a run of `task` must not lose on to its trivial baseline: the task's own rule."""
    return TASKS[task].baseline_check if task in TASKS else None


NO_VERDICT = "no verdict"


@dataclass(frozen=True)
class Check:
    state: str        # passed | failed | unchecked
    text: str         # what was compared, for the report


def baseline_check(task: str, metrics: dict) -> Check:
    """One run's metrics (`model` and `baseline` blocks) against its task's trivial baseline."""
    rule = baseline_rule(task)
    model, base = (metrics or {}).get("model") or {}, (metrics or {}).get("baseline") or {}
    if rule is None or not all(isinstance(m.get(rule.metric), (int, float)) for m in (model, base)):
        return Check("unchecked", "no baseline recorded")
    ours, theirs = float(model[rule.metric]), float(base[rule.metric])
    worse = ours <= theirs if rule.better == "higher" else ours >= theirs
    if worse:
        side = "equal to" if ours == theirs else "below" if rule.better == "higher" else "above"
        return Check("failed", f"{rule.label} {ours:{rule.fmt}} {side} {rule.baseline}'s {theirs:{rule.fmt}}")
    return Check("passed", f"{rule.label} {ours:{rule.fmt}} against {rule.baseline}'s {theirs:{rule.fmt}}")


@dataclass(frozen=True)
class ArmResult:
    arm: Arm
    runs: tuple[Arm, ...]           # seed 0 and its repeats that have an arm file, in seed order
    checks: tuple[Check, ...]       # one per run
    values: dict[str, float]        # column id -> mean over the runs, scaled and rounded as displayed
    seed_values: dict[str, tuple[float, ...]]  # column id -> each run's value, rounded as displayed
    ranges: dict[str, float]        # column id -> max − min over the runs (two runs or more only)

    @property
    def failed(self) -> bool:
        return any(c.state == "failed" for c in self.checks)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed or 0 for r in self.runs)


@dataclass(frozen=True)
class TableResult:
    table: Table
    arms: dict[str, ArmResult]      # by arm name: the table's arms with at least one run collected
    noise: dict[str, float]         # column id -> largest seed range among the arms that did not fail

    def tol(self, col: Column) -> float:
        """The column's tolerance: its preset, widened to the measured seed range."""
        return max(col.tol, self.noise.get(col.id, 0.0))

    def tolerances(self) -> dict[str, float]:
        return {c.id: self.tol(c) for c in self.table.columns}

    def values(self) -> dict[str, dict[str, float]]:
        """row -> column -> our value (failed arms included: the table shows them, marked)."""
        out: dict[str, dict[str, float]] = {}
        for res in self.arms.values():
            out.setdefault(res.arm.row, {}).update(res.values)
        return out

    def failed(self) -> dict[str, dict[str, str]]:
        """row -> column -> the failed arm that fills it."""
        out: dict[str, dict[str, str]] = {}
        for res in self.arms.values():
            if res.failed:
                out.setdefault(res.arm.row, {}).update({cid: res.arm.name for cid in res.arm.columns})
        return out


def results(table: Table, docs: dict[str, dict]) -> TableResult:
    """Every arm of the table over its seeds, and the noise measured per column."""
    arms: dict[str, ArmResult] = {}
    for arm in table.arms:
        runs = tuple(r for r in (arm, *sorted((r for r in table.repeats if r.of == arm.name), key=lambda r: r.seed))
                     if r.key in docs)
        if not runs:
            continue
        values, seed_values, ranges = {}, {}, {}
        for cid in arm.columns:
            col = table.column(cid)
            raw = [docs[r.key]["metrics"]["model"][col.metric] * col.scale for r in runs]
            shown = tuple(col.rounded(v) for v in raw)
            values[cid] = col.rounded(sum(raw) / len(raw))
            seed_values[cid] = shown
            if len(shown) > 1:
                ranges[cid] = col.rounded(max(shown) - min(shown))
        checks = tuple(baseline_check(arm.task, docs[r.key]["metrics"]) for r in runs)
        arms[arm.name] = ArmResult(arm, runs, checks, values, seed_values, ranges)
    noise: dict[str, float] = {}
    for res in arms.values():
        if not res.failed:
            for cid, spread in res.ranges.items():
                noise[cid] = max(noise.get(cid, 0.0), spread)
    return TableResult(table, arms, noise)


@dataclass(frozen=True)
class ColumnVerdict:
    col: Column
    diff: float                     # first row − second row, as displayed
    word: str                       # agrees | within noise | tie (the paper's) | disagrees | no verdict
    tol: float                      # the tolerance it was judged with
    failed: tuple[str, ...] = ()    # the failed arms behind "no verdict"


def judge(claim: Claim, table: Table, values: dict[str, dict[str, float]], tol: dict[str, float] | None = None,
          failed: dict[str, dict[str, str]] | None = None, inside: str = "within noise") -> list[ColumnVerdict]:
    """Per column with both rows present: first row − second row, judged against the column's
    tolerance (`tol`, default the preset). "beats": better by more than the tolerance agrees, worse
    by more disagrees, anything between is `inside`; "matches": within the tolerance agrees. A
    column that a failed arm fills on either side gets no verdict."""
    a, b = claim.rows
    failed = failed or {}
    out = []
    for col in table.columns:
        va, vb = values.get(a, {}).get(col.id), values.get(b, {}).get(col.id)
        if va is None or vb is None:
            continue
        t = col.tol if tol is None else tol[col.id]
        diff = col.rounded(va - vb)
        lost = tuple(n for n in (failed.get(a, {}).get(col.id), failed.get(b, {}).get(col.id)) if n)
        if lost:
            out.append(ColumnVerdict(col, diff, NO_VERDICT, t, lost))
            continue
        if claim.kind == "beats":
            gain = diff if col.better == "higher" else -diff
            word = "agrees" if gain > t + 1e-9 else "disagrees" if gain < -t - 1e-9 else inside
        else:
            word = "agrees" if abs(diff) <= t + 1e-9 else "disagrees"
        out.append(ColumnVerdict(col, diff, word, t))
    return out


def failed_text(names: list[str] | tuple[str, ...]) -> str:
    names = sorted(set(names))
    return f"arm{'s' if len(names) > 1 else ''} {', '.join(names)} failed (no better than baseline)"


def verdict(results: list[ColumnVerdict]) -> str:
    """One claim over its columns: agrees | disagrees | within noise (or tie) | mixed, with the counts;
    columns lost to a failed arm are counted apart and named."""
    if not results:
        return "not run yet"
    judged = [r for r in results if r.word != NO_VERDICT]
    lost = failed_text([n for r in results for n in r.failed])
    if not judged:
        return f"{NO_VERDICT}: {lost}"
    n = Counter(r.word for r in judged)
    inside = "tie" if n["tie"] else "within noise"
    word = ("agrees" if n["agrees"] and not n["disagrees"] else "disagrees" if n["disagrees"] and not n["agrees"]
            else inside if not n["disagrees"] else "mixed")
    parts = [f"{n[k]} {k}" for k in ("agrees", "within noise", "tie", "disagrees") if n[k]]
    text = f"{word} ({', '.join(parts)} of {len(judged)} column{'s' if len(judged) > 1 else ''}"
    if len(judged) < len(results):
        text += f"; {NO_VERDICT} on {len(results) - len(judged)}: {lost}"
    return text + ")"

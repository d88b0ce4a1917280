"""What each arm of a table ran with, for the report: its evaluation settings (and whether they are
the paper's), the budget the table holds equal, the list of arms with their commands, and the arm
files a change of the grid has superseded."""

from __future__ import annotations

import json
import shlex

from pipeline.ablations.experiments import queue_argv
from pipeline.ablations.grid import Arm, Table, evaluation_text
from pipeline.ablations.verdicts import baseline_check

# The paper's analyses test one scale, no flip averaging: "We use a single-scale 224 × 224 image as
# input" (Section 4) and "All previous experiments process test images at a single scale" (Analysis-4).
PAPER_EVALUATION = {"scales": [1.0], "flip": False}
EVAL_KEYS = ("evaluate.scales", "evaluate.flip")


def md(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


# ----------------------------------------------------------------------------- evaluation settings

def _eval_long(ev: dict) -> str:
    n, scales = len(ev["scales"]), evaluation_text({**ev, "flip": False}).removesuffix(", no flip")
    where = f"a single scale ({scales})" if n == 1 else f"{n} scales ({scales})"
    return f"at {where}" + (" with horizontal flips averaged in" if ev["flip"] else ", no flip")


def _pinned(arm: Arm, key: str) -> bool:
    return any(o.lstrip("+").split("=", 1)[0] == key for o in arm.overrides)


def evaluation_lines(table: Table, docs: dict[str, dict]) -> list[str]:
    """What the arms were scored with, where that came from, and whether it is the paper's."""
    ran = [a for a in table.all_arms if a.key in docs]
    if not ran:
        return []
    groups: dict[str, list[Arm]] = {}
    for arm in ran:
        ev = docs[arm.key].get("evaluation")
        groups.setdefault(json.dumps({k: ev[k] for k in ("scales", "flip")}) if ev else "", []).append(arm)
    recorded = [json.loads(k) for k in groups if k]
    pinned = [k for k in EVAL_KEYS if all(_pinned(a, k) for a in ran)]
    source = ("pinned in the table's overrides" if len(pinned) == len(EVAL_KEYS) else
              f"`{pinned[0]}` pinned in the table's overrides, `{next(k for k in EVAL_KEYS if k not in pinned)}` "
              f"params.yaml's" if pinned else
              "params.yaml's `evaluate.scales` and `evaluate.flip`: the table does not pin them")
    if len(recorded) == 1:
        ev = recorded[0]
        text = f"Every arm{' with settings recorded' if '' in groups else ''} was scored {_eval_long(ev)} ({source})"
        if ev == PAPER_EVALUATION:
            text += ", as the paper's ablations were."
        else:
            text += (". **Not the paper's evaluation**: the paper's ablations test a single scale, without flips "
                     "(Section 4, Analysis-4), so our arms are compared like for like with each other, not with "
                     "the paper's rows.")
    elif recorded:
        text = "**Unequal between arms**: " + "; ".join(
            f"{', '.join(a.name for a in arms)} {_eval_long(json.loads(k))}" for k, arms in groups.items() if k) + "."
    else:
        text = "Not recorded in the arm files."
    if "" in groups:
        text += (f" Not recorded for {', '.join(a.name for a in groups[''])} (collected before `collect` kept it; "
                 "`uv run pixelnet ablations collect --backfill-evaluation` reads it back).")
    if any((docs[a.key].get("evaluation") or {}).get("from") for a in ran):
        text += (" For arms collected before `collect` recorded it, the settings were read back from params.yaml at "
                 "the arm's baseline commit with the arm's overrides applied, the arm's budget read back the same "
                 "way matching its file (`collect --backfill-evaluation`).")
    return [f"**Evaluation.** {text}", ""]


# ----------------------------------------------------------------------------- budgets and arms

def budget_lines(table: Table, docs: dict[str, dict]) -> list[str]:
    """Per group of arms filling the same columns: the budget keys the table fixes, equal or not, and
    whether equal pixels a step is equal compute."""
    groups: dict[tuple[str, ...], list[Arm]] = {}
    for arm in table.all_arms:
        if arm.key in docs:
            groups.setdefault(arm.columns, []).append(arm)
    if not groups or not table.equal_budget:
        return []
    out = [f"**Budget** (equal across the arms that fill the same columns: {', '.join(table.equal_budget)}).", ""]
    windows: set[int] = set()  # M values of groups at equal pixels a step
    for cols, arms in groups.items():
        labels = ", ".join(table.column(c).label for c in cols)
        parts, unequal, departs = [], [], []
        for key in table.equal_budget:
            seen = {a.name: docs[a.key]["budget"][key] for a in arms if key not in dict(a.exempt)}
            departs += [f"{a.name} {key} {json.dumps(docs[a.key]['budget'][key])} on purpose ({dict(a.exempt)[key]})"
                        for a in arms if key in dict(a.exempt)]
            if len({json.dumps(v) for v in seen.values()}) == 1:
                parts.append(f"{key} {json.dumps(next(iter(seen.values())))}")
            elif seen:
                unequal.append(f"{key}: " + ", ".join(f"{n} {json.dumps(v)}" for n, v in seen.items()))
        state = "equal" if not unequal else "**unequal**: " + "; ".join(unequal)
        out.append(f"* {labels} ({len(arms)} arms): {', '.join(parts)}; {state}" + (
            f", except {'; '.join(departs)}." if departs else "."))
        ms = {docs[a.key]["budget"]["images_per_batch"] for a in arms}
        if "pixels_per_batch" in table.equal_budget and not unequal and len(ms) > 1:
            windows |= ms
    out.append("")
    if windows:
        ms = sorted(windows)
        out += [f"Equal pixels a step is not equal compute: the trunk runs on every window of a step (M = "
                f"{', '.join(map(str, ms))}), so an M = {ms[-1]} step runs it {ms[-1] / ms[0]:g}× as often as an "
                f"M = {ms[0]} step; only the head sees the same number of pixels.", ""]
    return out


def _check_cell(arm: Arm, doc: dict) -> str:
    c = baseline_check(arm.task, doc["metrics"])
    return {"failed": f"**failed**: {c.text}", "passed": f"passed: {c.text}"}.get(c.state, c.text)


def arms_lines(table: Table, docs: dict[str, dict]) -> list[str]:
    out = ["**Arms.**", "", "| arm | row | task | steps | N × M = pixels a step | crop | evaluation | against the "
           "trivial baseline | experiment | rev |", "|---|---|---|---:|---|---:|---|---|---|---|"]
    for arm in table.all_arms:
        doc = docs.get(arm.key)
        b = doc["budget"] if doc else None
        cells = [arm.name, md(next(r.label for r in table.rows if r.id == arm.row)), arm.task,
                 f"{b['iterations']:,}" if b else "—",
                 f"{b['pixels_per_image']:,} × {b['images_per_batch']} = {b['pixels_per_batch']:,}" if b else "—",
                 str(b["crop"]) if b else "—", evaluation_text(doc.get("evaluation")) if doc else "—",
                 _check_cell(arm, doc) if doc else "—", f"`{arm.experiment}`", doc["rev"][:7] if doc else "not run"]
        out.append("| " + " | ".join(cells) + " |")
    extra = tuple(f"data.{s}.source=<{s.upper()}>" for s in table.requires)
    out += ["", "Each arm's exact command (`queue` runs it for the arms without a finished result):", "", "```bash"]
    out += [shlex.join(queue_argv(arm, extra)) for arm in table.all_arms] + ["```", ""]
    for source in table.requires:
        used = sorted({d["sources"].get(source, "") for d in docs.values() if d["table"] == table.id} - {""})
        out += [f"`<{source.upper()}>` is the absolute path given to `queue --{source}` (queued experiments run in a "
                f"temporary copy of the repository)" + (f"; the collected arms used {', '.join(used)}." if used else "."), ""]
    return out


def superseded_lines(table: Table, stale: list[tuple[str, list[str] | None]]) -> list[str]:
    """The arm files left out since the grid changed, grouped by what changed."""
    if not stale:
        return []
    want = {a.name: a.overrides for a in table.all_arms}
    groups: dict[str, list[str]] = {}
    for name, had in stale:
        if had is None:
            why = "no longer an arm of the grid"
        else:
            parts = []
            if adds := [o for o in want[name] if o not in had]:
                parts.append("the grid now sets " + ", ".join(f"`{o}`" for o in adds))
            if drops := [o for o in had if o not in want[name]]:
                parts.append("its run had " + ", ".join(f"`{o}`" for o in drops))
            why = "; ".join(parts) or "the same overrides in another order"
        groups.setdefault(why, []).append(name)
    return (["**Superseded arm files** (collected under an earlier grid: left out of the numbers, the verdicts and "
             "the plots; `pixelnet ablations queue` runs these arms again, and `collect` replaces the files of those "
             "still in the grid):", ""] + [f"* {', '.join(names)}: {why}." for why, names in groups.items()] + [""])

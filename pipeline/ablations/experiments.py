"""DVC's side of the grid: reading `dvc exp show --json`, each arm's state (collected, finished,
queued, running, dead after a killed queue, failed, missing), the `dvc exp run --queue` commands
for the unfinished arms, and collecting finished arms into committed per-arm JSON files (with the
evaluation settings and the sampling summary each arm ran with)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pixelnet.atomic import atomic_write_text
from pixelnet.tasks import TASKS

from pipeline.ablations.grid import (AblationError, Arm, Grid, Table, apply_overrides, budget_of, evaluation_of,
                                     evaluation_text, lookup, override_mismatch)
from pipeline.ablations.verdicts import baseline_check

@dataclass(frozen=True)
class ExpRecord:
    name: str
    rev: str
    baseline: str
    state: str                   # success | queued | running | failed (DVC's executor state)
    pid: int | None
    timestamp: str | None
    params: dict | None          # params.yaml as the experiment has it
    metrics: dict[str, dict]     # metrics file -> its data


def read_experiments(entries: Any, source: str) -> dict[str, list[ExpRecord]]:
    """`dvc exp show --json` (DVC 3: baselines, each with `experiments`: ranges of revs whose first is
    the experiment's tip) -> records by experiment name."""
    if not isinstance(entries, list):
        raise AblationError(f"{source}: expected `dvc exp show --json` output (a list of baselines)")
    out: dict[str, list[ExpRecord]] = {}
    for entry in entries:
        for rng in (entry or {}).get("experiments") or []:
            revs = rng.get("revs") or []
            tip = revs[0] if revs else {}
            name = tip.get("name") or rng.get("name")
            if not name:
                continue
            executor = rng.get("executor") or {}
            data = tip.get("data") or {}
            params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
            metrics = {path: m["data"] for path, m in (data.get("metrics") or {}).items()
                       if isinstance(m, dict) and isinstance(m.get("data"), dict)}
            pid = (executor.get("local") or {}).get("pid")
            out.setdefault(name, []).append(ExpRecord(
                name, str(tip.get("rev")), str(entry.get("rev")), executor.get("state") or "success",
                pid if isinstance(pid, int) else None, data.get("timestamp"), params, metrics))
    return out


def load_experiments(exp_json: Path | None) -> dict[str, list[ExpRecord]]:
    """From a saved file, or from `dvc exp show --json -A` (every commit: an arm queued before main
    moved on is still found)."""
    if exp_json is not None:
        try:
            return read_experiments(json.loads(Path(exp_json).read_text()), str(exp_json))
        except (OSError, ValueError) as err:
            if isinstance(err, AblationError):
                raise
            raise AblationError(f"--exp-json {exp_json}: {err}") from None
    done = run_command(["dvc", "exp", "show", "--json", "-A"])
    try:
        return read_experiments(json.loads(done.stdout), "dvc exp show --json -A")
    except ValueError as err:
        if isinstance(err, AblationError):
            raise
        raise AblationError(f"dvc exp show --json -A: not JSON ({err})") from None


def run_command(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """Run dvc / git with list arguments (no shell); `dvc` is this environment's."""
    cmd = list(argv)
    if cmd[0] == "dvc":
        found = shutil.which("dvc")
        cmd = ([found] if found else [sys.executable, "-m", "dvc"]) + cmd[1:]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise AblationError(f"`{shlex.join(argv)}` failed ({done.returncode}): {' / '.join(tail)}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def arm_file(arms: Path, arm: Arm) -> Path:
    return Path(arms) / arm.table / f"{arm.name}.json"


def _finished(records: list[ExpRecord], arm: Arm) -> list[ExpRecord]:
    done = [r for r in records if r.state == "success" and "model" in r.metrics.get(arm.metrics_file, {})]
    return sorted(done, key=lambda r: (r.timestamp or "", r.rev))


def arm_state(arm: Arm, experiments: dict[str, list[ExpRecord]], arms: Path) -> tuple[str, ExpRecord | None]:
    """collected (a committed arm file with the grid's overrides), finished, mismatch (finished with
    other params: a stale experiment of the same name), no-metrics, running, dead (running, but its
    process is gone: the queue was killed), queued, failed or missing."""
    saved = arm_file(arms, arm)
    if saved.is_file() and read_json(saved).get("overrides") == list(arm.overrides):
        return "collected", None
    records = experiments.get(arm.experiment, [])
    done = _finished(records, arm)
    if done:
        return ("mismatch" if override_mismatch(arm, done[-1].params) else "finished"), done[-1]
    if any(r.state == "success" for r in records):
        return "no-metrics", next(r for r in records if r.state == "success")
    for r in records:
        if r.state == "running":
            return ("running" if r.pid is None or _pid_alive(r.pid) else "dead"), r
    for state in ("queued", "failed"):
        for r in records:
            if r.state == state:
                return state, r
    return "missing", None


def read_json(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise AblationError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(doc, dict):
        raise AblationError(f"{path}: expected a JSON object")
    return doc


# ----------------------------------------------------------------------------- queue and collect

def queue_argv(arm: Arm, extra: tuple[str, ...] = ()) -> list[str]:
    sets = [x for o in (*arm.overrides, *extra) for x in ("-S", o)]
    return ["dvc", "exp", "run", "--queue", "-n", arm.experiment, *sets, arm.target]


def _budget_line(b: dict, ev: dict) -> str:
    return (f"{b['iterations']:,} steps, N {b['pixels_per_image']:,} × M {b['images_per_batch']} = "
            f"{b['pixels_per_batch']:,} pixels a step, crop {b['crop']}; scored at {evaluation_text(ev)}")


def plan_queue(grid: Grid, tables: tuple[Table, ...], experiments: dict[str, list[ExpRecord]], arms: Path,
               params_file: Path, bsds500: Path | None) -> tuple[list[str], list[list[list[str]]]]:
    """Report lines and, per arm to (re)queue, the commands in order. Every override is applied to
    params.yaml and validated before anything is queued, so a typo in the grid queues nothing."""
    if not Path(params_file).is_file():
        raise AblationError(f"{params_file}: params file not found")
    try:
        base_params = yaml.safe_load(Path(params_file).read_text())
    except yaml.YAMLError as err:
        raise AblationError(f"{params_file}: not valid YAML ({err})") from None
    lines: list[str] = []
    plans: list[list[list[str]]] = []
    for table in tables:
        for arm in table.all_arms:
            state, rec = arm_state(arm, experiments, arms)
            where = f"{arm.key} ({arm.experiment})"
            if state in ("collected", "finished", "running", "queued"):
                note = {"collected": f"arm file {arm_file(arms, arm)}",
                        "finished": f"rev {rec.rev[:7]}, not collected yet" if rec else "",
                        "running": "running now", "queued": "already in the DVC queue"}[state]
                lines.append(f"{arm.key:28s} {state:9s} skipped ({note})")
                continue
            if state in ("mismatch", "no-metrics"):
                why = override_mismatch(arm, rec.params) if state == "mismatch" else f"no {arm.metrics_file}"
                lines.append(f"{arm.key:28s} {state:9s} NOT queued: experiment {arm.experiment} (rev {rec.rev[:7]}) "
                             f"exists with {why}; remove it with `dvc exp remove {arm.experiment}` and queue again")
                continue
            extra: tuple[str, ...] = ()
            if "bsds500" in table.requires:
                if bsds500 is None:
                    raise AblationError(f"{where} trains on BSDS500: pass --bsds500 PATH (the BSR folder or archive, "
                                        f"e.g. --bsds500 ../shared/datasets/BSR); queued experiments run in a "
                                        f"temporary copy of the repository, so the path is passed absolute")
                extra = (f"data.bsds500.source={bsds500}",)
            params = apply_overrides(base_params, arm.overrides + extra, f"{grid.path}: {where}")
            budget = budget_of(params, arm.task, where)
            steps = []
            if state == "dead":
                steps.append(["dvc", "queue", "kill", arm.experiment])  # marks the orphaned task failed
            if state in ("dead", "failed"):
                steps.append(["dvc", "queue", "remove", arm.experiment])
            steps.append(queue_argv(arm, extra))
            lines.append(f"{arm.key:28s} {state:9s} → queue: {_budget_line(budget, evaluation_of(params, where))}")
            lines.extend(f"    {shlex.join(step)}" for step in steps)
            plans.append(steps)
    return lines, plans


def dirty_files() -> list[str]:
    done = run_command(["git", "status", "--porcelain", "--untracked-files=no"])
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def collect_arms(tables: tuple[Table, ...], experiments: dict[str, list[ExpRecord]],
                 arms: Path, curves: bool) -> list[str]:
    """Write one JSON per finished arm. Every arm is checked before any file is written: an
    experiment whose params lack an override of its arm stops the command, naming arm and key."""
    docs: list[tuple[Table, Arm, ExpRecord, dict]] = []
    lines: list[str] = []
    for table in tables:
        for arm in table.all_arms:
            records = experiments.get(arm.experiment, [])
            done = _finished(records, arm)
            if not done:
                states = sorted({r.state for r in records}) or ["not queued"]
                kept = "; its committed file is kept" if arm_file(arms, arm).is_file() else ""
                lines.append(f"{arm.key:28s} pending ({', '.join(states)}){kept}")
                continue
            rec = done[-1]
            where = f"{arm.key} (experiment {arm.experiment}, rev {rec.rev[:7]})"
            why = override_mismatch(arm, rec.params)
            if why:
                raise AblationError(f"{where}: {why}; if the grid changed since it ran, remove it "
                                    f"(`dvc exp remove {arm.experiment}`) and queue the arm again")
            sources = {}
            for name in table.requires:
                found, path = lookup(rec.params, f"data.{name}.source")
                if not found or not path:
                    raise AblationError(f"{where}: data.{name}.source is not set; queue it with --{name} PATH")
                sources[name] = path
            doc = {"table": table.id, "arm": arm.name, "row": arm.row, "task": arm.task, "target": arm.target,
                   "experiment": arm.experiment, "rev": rec.rev, "baseline_rev": rec.baseline,
                   "timestamp": rec.timestamp, "overrides": list(arm.overrides), "sources": sources,
                   "budget": budget_of(rec.params, arm.task, where), "evaluation": evaluation_of(rec.params, where),
                   "metrics_file": arm.metrics_file, "metrics": rec.metrics[arm.metrics_file]}
            if arm.sampling_file in rec.metrics:  # the plan as drawn: e.g. the share of positives per stratum
                doc["sampling"] = rec.metrics[arm.sampling_file]
            docs.append((table, arm, rec, doc))
    for table, arm, rec, doc in docs:
        path = arm_file(arms, arm)
        atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        model = doc["metrics"].get("model", {})
        got = ", ".join(f"{m} {model.get(m)!r}" for m in sorted({table.column(c).metric for c in arm.columns}))
        check = baseline_check(arm.task, doc["metrics"])
        flag = f"; FAILED: {check.text}" if check.state == "failed" else ""
        lines.append(f"{arm.key:28s} collected rev {rec.rev[:7]} → {path} ({got}{flag})")
        if curves:
            lines.extend(_copy_curves(arm, rec.rev, path.parent))
    return lines


def _copy_curves(arm: Arm, rev: str, folder: Path) -> list[str]:
    """The arm's loss log (and its PR curve, for a task whose evaluation writes one: edges) from the
    experiment's commit, for plots."""
    wanted = [(arm.loss_file, f"{arm.name}.loss.csv")]
    pr_curve = TASKS[arm.task].pr_curve
    if pr_curve:
        wanted.append((f"{arm.report_dir}/{pr_curve}", f"{arm.name}.pr.txt"))
    notes = []
    for src, dst in wanted:
        done = run_command(["git", "show", f"{rev}:{src}"], check=False)
        if done.returncode != 0:
            notes.append(f"    no {src} in {rev[:7]}: no curve for {arm.key}")
            continue
        atomic_write_text(folder / dst, done.stdout)
    return notes

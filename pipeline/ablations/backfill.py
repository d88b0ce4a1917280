"""Filling in what older arm files lack, without their experiments: the evaluation settings (read from
params.yaml at the arm's baseline commit with its overrides) and the sampling plan's summary
(recomputed: the plan is a deterministic function of the params and the shards, so running the sample
stage again at the arm's params gives the plan its training drew from). Every arm is checked before
any file is written; `check_sampling` recomputes arms that kept their own summary and compares."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import yaml

from pixelnet.atomic import atomic_write_text

from pipeline.ablations import experiments
from pipeline.ablations.grid import AblationError, Arm, Table, apply_overrides, budget_of, evaluation_of

PLAN_KEYS = ("share_per_stratum", "rows", "draws", "images")  # what --check-sampling compares
SAMPLING_FROM = "recomputed: `pixelnet ablations collect --backfill-sampling` at params.yaml {rev} with the overrides"


class _BaseParams:
    """params.yaml at each baseline commit, read once (`git show`)."""

    def __init__(self) -> None:
        self._by_rev: dict[str, dict] = {}

    def arm_params(self, path: Path, doc: dict, arm: Arm) -> tuple[dict, str]:
        """The params.yaml DVC wrote for the arm's experiment: the baseline's with the arm's overrides
        and data sources, checked against the budget the arm file recorded."""
        rev = doc.get("baseline_rev")
        if not isinstance(rev, str) or not rev:
            raise AblationError(f"{path}: no baseline_rev to read params.yaml from")
        if rev not in self._by_rev:
            text = experiments.run_command(["git", "show", f"{rev}:params.yaml"]).stdout
            try:
                self._by_rev[rev] = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise AblationError(f"params.yaml at {rev[:7]}: not valid YAML ({err})") from None
        where = f"{path} (params.yaml at {rev[:7]} with its overrides)"
        sources = tuple(f"data.{k}.source={v}" for k, v in sorted((doc.get("sources") or {}).items()))
        params = apply_overrides(self._by_rev[rev], tuple(doc["overrides"]) + sources, where)
        budget = budget_of(params, arm.task, where)
        if json.dumps(budget, sort_keys=True) != json.dumps(doc.get("budget"), sort_keys=True):
            differ = sorted(k for k in budget if json.dumps(budget[k]) != json.dumps((doc.get("budget") or {}).get(k)))
            raise AblationError(f"{where}: the budget read back differs from the file's in {', '.join(differ)}: "
                                f"these are not the params the arm ran with; nothing written")
        return params, rev


def _arm_docs(tables: tuple[Table, ...], arms: Path):
    for table in tables:
        for arm in table.all_arms:
            path = experiments.arm_file(arms, arm)
            if path.is_file():
                yield arm, path, experiments.read_json(path)


def backfill_evaluation(tables: tuple[Table, ...], arms: Path) -> list[str]:
    """Arm files collected before `collect` recorded the evaluation settings get them from params.yaml
    at the arm's baseline commit (`git show`) with the arm's overrides and data sources applied: the
    params.yaml DVC wrote for the experiment. The budget read back the same way must equal the file's;
    every arm is checked before any file is written. Reads no experiment."""
    base = _BaseParams()
    todo: list[tuple[Arm, Path, dict]] = []
    lines: list[str] = []
    for arm, path, doc in _arm_docs(tables, arms):
        if "evaluation" in doc:
            lines.append(f"{arm.key:28s} has its evaluation settings; kept")
            continue
        params, rev = base.arm_params(path, doc, arm)
        doc["evaluation"] = {**evaluation_of(params, str(path)), "from": f"params.yaml at {rev[:7]} with the overrides"}
        todo.append((arm, path, doc))
    for arm, path, doc in todo:
        atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        ev = doc["evaluation"]
        lines.append(f"{arm.key:28s} evaluation scales {ev['scales']}, flip {ev['flip']} ({ev['from']}) → {path}")
    return lines


def recompute_sampling(task: str, params: dict, work: Path) -> dict:
    """The sample stage's summary at these params: the task's dataset downloaded (from its source) and
    sharded into `work`, once per distinct data section, then the plan drawn in a scratch folder."""
    from pipeline import stages
    from pipeline.params import parse_params

    parsed = parse_params(params)
    dataset = parsed.tasks[task].dataset
    data_key = hashlib.sha256(json.dumps([dataset, params["data"][dataset], parsed.shard_size],
                                         sort_keys=True, default=str).encode()).hexdigest()[:12]
    shards = work / f"shards-{dataset}-{data_key}"
    if not (shards / "manifest.json").is_file():
        raw = work / f"raw-{dataset}-{data_key}"
        stages.download(dataset, parsed, raw)
        stages.shard(dataset, parsed, raw, shards)
    return stages.sample(task, parsed, shards, work / "plan", progress=False)


def backfill_sampling(tables: tuple[Table, ...], arms: Path, work: Path, check: bool = False) -> list[str]:
    """Arm files without the sampling summary (collected before `collect` kept it) get it recomputed at
    their params, marked `sampling_from`. With `check`, arms that kept the summary their run wrote (not a
    recomputed one) are recomputed instead and compared: the plan's share per stratum, rows, draws and
    images must be equal. Nothing is written then."""
    base = _BaseParams()
    todo: list[tuple[Arm, Path, dict, dict, str]] = []
    lines: list[str] = []
    for arm, path, doc in _arm_docs(tables, arms):
        if check and ("sampling" not in doc or "sampling_from" in doc):  # check only what a run recorded
            continue
        if not check and "sampling" in doc:
            lines.append(f"{arm.key:28s} has its sampling summary; kept")
            continue
        params, rev = base.arm_params(path, doc, arm)  # every arm's params checked before any plan is drawn
        todo.append((arm, path, doc, params, rev))
    mismatched = []
    for arm, path, doc, params, rev in todo:
        try:
            summary = recompute_sampling(arm.task, params, work)
        except (ValueError, OSError) as err:
            raise AblationError(f"{path}: recomputing its sampling plan failed: {err}") from None
        if check:
            same = all(json.dumps(summary.get(k), sort_keys=True) == json.dumps(doc["sampling"].get(k), sort_keys=True)
                       for k in PLAN_KEYS)
            lines.append(f"{arm.key:28s} recomputed plan {'equals' if same else 'DIFFERS from'} the one it trained on "
                         f"(share per stratum {summary.get('share_per_stratum')})")
            if not same:
                mismatched.append(arm.key)
            continue
        doc["sampling"] = summary
        doc["sampling_from"] = SAMPLING_FROM.format(rev=rev[:7])
        atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        lines.append(f"{arm.key:28s} sampling recomputed (share per stratum {summary.get('share_per_stratum')}) "
                     f"→ {path}")
    if mismatched:
        raise AblationError(f"recomputed plans differ from the recorded ones for {', '.join(mismatched)}:\n"
                            + "\n".join(lines))
    return lines

"""Arms that start from another task's model (the paper's Table 5): which model, and the stages that run them.

An arm sets `+tasks.<task>.model.init=data/models/<source>/model.pt`: its task's training starts from
the root pipeline's <source> model. That file must be a dependency of the stage that trains the arm,
for three reasons a `-S` override alone does not meet: a queued experiment runs in a temporary copy of
the repository where DVC checks out only the outputs upstream of the arm's target; DVC orders stages
by their dependencies only; and the experiment's dvc.lock then records which model it started from.
The root dvc.yaml's train stage cannot list a path that only some runs use, so these arms run
`recipes/ablations/dvc.yaml`'s `train-init` / `evaluate-init` stages (one foreach key per pair,
`<task>-from-<source>`), which list `data/models/<source>` among their deps; DVC brings the source up
to date first (the root's train@<source>, with the experiment's params) and `dvc repro` of the root
pipeline never runs them. `init_source` reads the override and checks that pipeline declares the pair.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline.ablations.overrides import AblationError, parse_override
from pixelnet.tasks import TASKS

INIT_PIPELINE = "recipes/ablations/dvc.yaml"   # relative to the repository root, as DVC targets are
INIT_REPORTS = "reports/init"                  # its evaluate stage's folder per pair: metrics, loss curve
_REPO = Path(__file__).resolve().parents[2]
_TASK_INIT = re.compile(r"tasks\.([^.]+)\.model\.init")
_SOURCE = re.compile(r"data/models/([^/]+)/model\.pt")


def pair_key(task: str, source: str) -> str:
    """The foreach key of the init pipeline's stages for `task` trained from `source`'s model."""
    return f"{task}-from-{source}"


def init_source(task: str, overrides: tuple[str, ...], where: str, pipeline: Path | None = None) -> str | None:
    """The task whose root model the arm's training starts from (None: a fresh or ImageNet start).
    Refuses a shared `model.init` path (it would start every task's training from it, the source's
    own too), another task's init, a path that is not a root model, and a pair the init pipeline does
    not declare with the source model as a dependency."""
    source = None
    for text in overrides:
        key, value = parse_override(text, where)
        if key == "model.init" and value not in ("scratch", "imagenet"):
            raise AblationError(f"{where}: {text}: a checkpoint in the shared model.init would start every task's "
                                f"training from it, the source model's own too; set +tasks.{task}.model.init=PATH")
        found = _TASK_INIT.fullmatch(key)
        if not found or value in ("scratch", "imagenet"):
            continue
        if found[1] != task:
            raise AblationError(f"{where}: {text}: the arm trains {task}, not {found[1]}")
        path = _SOURCE.fullmatch(str(value))
        if not path or path[1] not in TASKS or path[1] == task:
            raise AblationError(f"{where}: {text}: an arm starts from another task's root model, "
                                f"data/models/<task>/model.pt (a dependency of {INIT_PIPELINE}'s stages)")
        source = path[1]
    if source is not None:
        _check_declared(task, source, where, pipeline or _REPO / INIT_PIPELINE)
    return source


def _check_declared(task: str, source: str, where: str, pipeline: Path) -> None:
    """The init pipeline trains `task` from `source` in a stage that depends on the source model, and
    scores that stage's model."""
    try:
        stages = yaml.safe_load(Path(pipeline).read_text())["stages"]
        train, evaluate = stages["train-init"], stages["evaluate-init"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise AblationError(f"{where}: {pipeline} has no train-init and evaluate-init stages ({err})") from None
    key = pair_key(task, source)
    for stage in (train, evaluate):
        item = (stage.get("foreach") or {}).get(key)
        if not isinstance(item, dict) or (item.get("task"), item.get("source")) != (task, source):
            raise AblationError(f"{where}: {pipeline} does not define {key} (task {task}, source {source}) "
                                f"in its train-init and evaluate-init stages")
    if "data/models/${item.source}" not in (train.get("do") or {}).get("deps", []):
        raise AblationError(f"{where}: {pipeline}: train-init does not list data/models/${{item.source}} among its deps")
    if f"data/init/${{key}}" not in " ".join(str(d) for d in (evaluate.get("do") or {}).get("deps", [])):
        raise AblationError(f"{where}: {pipeline}: evaluate-init does not score train-init's model data/init/${{key}}")

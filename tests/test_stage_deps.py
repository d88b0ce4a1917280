"""Every stage of the root dvc.yaml and of each recipe's lists the code it runs among its deps, from
one list (pipeline/deps.py): the train stage's code deps are exactly TRAIN_CODE (what its code id
hashes) plus its stage code, and every stage names the stage-layer modules its command runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.deps import STAGE_CODE, TRAIN_CODE

REPO = Path(__file__).resolve().parents[1]
PIPELINES = [REPO / "dvc.yaml", *sorted((REPO / "recipes").glob("*/dvc.yaml"))]


def _stages(path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(stage name, the `pixelnet` command it runs, its deps as written) for each stage of a dvc.yaml."""
    for name, stage in yaml.safe_load(path.read_text())["stages"].items():
        body = stage.get("do", stage)  # a foreach stage keeps its body under `do`
        words = body["cmd"].split()
        assert words[0] == "pixelnet", f"{path}: stage {name} runs {words[0]}, not a pixelnet command"
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
        yield name, words[1], deps


def _code(deps: list[str]) -> set[str]:
    return {d for d in deps if d.startswith(("pixelnet/", "pipeline/"))}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_stage_lists_the_stage_code_it_runs(path: Path) -> None:
    for name, command, deps in _stages(path):
        assert command in STAGE_CODE, f"{path}: stage {name} runs `pixelnet {command}`, unknown to pipeline/deps.py"
        missing = [c for c in STAGE_CODE[command] if c not in deps]
        assert not missing, f"{path}: stage {name} (pixelnet {command}) does not list {', '.join(missing)} in its deps"


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: str(p.relative_to(REPO)))
def test_train_deps_are_the_train_code(path: Path) -> None:
    trains = [(name, deps) for name, command, deps in _stages(path) if command == "train"]
    assert trains, f"{path}: no train stage"
    want = set(TRAIN_CODE) | set(STAGE_CODE["train"])
    for name, deps in trains:
        got = _code(deps)
        assert got == want, (f"{path}: stage {name}'s code deps differ from pipeline/deps.py: "
                             f"missing {sorted(want - got)}, extra {sorted(got - want)}")


def test_every_listed_path_exists() -> None:
    listed = set(TRAIN_CODE).union(*STAGE_CODE.values())
    for path in PIPELINES:
        listed |= {d for _, _, deps in _stages(path) for d in _code(deps)}
    missing = sorted(p for p in listed if not (REPO / p).exists())
    assert not missing, f"named as stage deps but absent: {missing}"

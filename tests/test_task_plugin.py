"""A task is the one plug-in point: no code outside pixelnet/tasks/ switches on a task's name, and a
new task (tests/toy_task.py) runs through every stage and `pixelnet predict` once registered."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from conftest import REPO
from pipeline.ablations.verdicts import baseline_check
from pipeline.cli import app
from pipeline.params import ParamsError, parse_params
from pixelnet.data.shards import read_shards, shard_paths
from pixelnet.tasks import TASKS
from toy_task import ToyTask

runner = CliRunner()
NAMES = ("edges", "normals", "segmentation")  # the shipped tasks; a comparison with any is a switch on the task


def _task_name_comparisons(path: Path, root: Path = REPO) -> list[str]:
    """file:line of every comparison (==, !=, in, not in, match/case) with a task name as a string literal."""
    def named(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in NAMES
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(named(e) for e in node.elts)

    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            hit = any(named(side) for side in (node.left, *node.comparators))
        elif isinstance(node, ast.match_case):
            hit = any(named(getattr(p, "value", None)) for p in ast.walk(node.pattern) if isinstance(p, ast.MatchValue))
        else:
            continue
        if hit:
            line = node.pattern.lineno if isinstance(node, ast.match_case) else node.lineno
            found.append(f"{path.relative_to(root)}:{line}")
    return found


def test_no_code_outside_the_tasks_switches_on_a_task_name():
    tasks_dir = REPO / "pixelnet" / "tasks"
    files = [p for root in ("pixelnet", "pipeline") for p in sorted((REPO / root).rglob("*.py"))
             if tasks_dir not in p.parents]
    found = [hit for p in files for hit in _task_name_comparisons(p)]
    assert not found, "task-name switches outside pixelnet/tasks/ (make them Task methods or attributes): " + ", ".join(found)


def test_the_checker_sees_each_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('a = t == "edges"\nb = "normals" != t\nc = t in ("segmentation", "x")\n'
                      'match t:\n    case "edges":\n        pass\nd = t == "edgy"\n')
    assert _task_name_comparisons(sample, tmp_path) == ["sample.py:1", "sample.py:2", "sample.py:3", "sample.py:5"]


@pytest.fixture()
def toy(monkeypatch):
    monkeypatch.setitem(TASKS, "toy", ToyTask)  # the one line a new task adds to pixelnet/tasks/__init__.py
    return ToyTask


def _ok(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_a_new_task_runs_through_sample_train_evaluate_and_predict(toy, tmp_path, tiny_params_dict, tiny_shards):
    tiny_params_dict["tasks"] = {"toy": {"dataset": "synthetic", "threshold": 1}}
    tiny_params_dict["sampling"]["strategy"] = {"toy": "stratified"}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    p = ["--params", params]
    samples, models, reports = tmp_path / "samples", tmp_path / "models", tmp_path / "reports"
    _ok(["sample", "toy", "--shards", tiny_shards, "--out", samples, "--quiet", *p])
    assert json.loads((samples / "summary.json").read_text())["task"] == "toy"
    _ok(["train", "toy", "--shards", tiny_shards, "--samples", samples, "--out", models, "--log",
         reports / "train_loss.csv", "--quiet", *p])
    _ok(["evaluate", "toy", "--shards", tiny_shards, "--model", models / "model.pt", "--out", reports, "--quiet", *p])
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) == {"model", "baseline"} and 0 <= metrics["model"]["accuracy"] <= 1
    report = json.loads((reports / "toy.json").read_text())  # the task's own report
    assert report["split"] == "test" and report["baseline"] == "all_background"
    assert report["accuracy"] == {k: v["accuracy"] for k, v in metrics.items()}
    assert (reports / "predictions.png").stat().st_size > 0
    assert baseline_check("toy", metrics).state in ("passed", "failed")  # the ablation report's rule is the task's

    record = next(iter(read_shards(shard_paths(tiny_shards, "test"))))
    Image.fromarray(record["image"]).save(tmp_path / "scene.png")
    _ok(["predict", "--model", models / "model.pt", tmp_path / "scene.png", "--out", tmp_path / "pred", "--quiet"])
    written = np.asarray(Image.open(tmp_path / "pred" / "scene_objects.png"))
    assert written.shape == record["image"].shape[:2] and set(np.unique(written)) <= {0, 255}
    for extra, message in ((["--format", "npy"], "written as png only"), (["--nms"], "NMS thins edge maps only")):
        result = runner.invoke(app, ["predict", "--model", str(models / "model.pt"), str(tmp_path / "scene.png"),
                                     "--out", str(tmp_path / "refused"), *extra])
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "refused").exists()


def test_a_new_task_brings_its_own_params_keys(toy, tiny_params_dict):
    tiny_params_dict["tasks"]["toy"] = {"dataset": "synthetic", "threshold": 2}
    assert parse_params(tiny_params_dict).tasks["toy"].settings.threshold == 2
    for section, message in (({"threshold": 0}, "tasks.toy.threshold: must be in 1..254"),
                             ({"consensus": 3}, "tasks.toy.consensus: unknown key"),
                             ({"threshold": "two"}, "tasks.toy.threshold: expected int")):
        tiny_params_dict["tasks"]["toy"] = {"dataset": "synthetic", **section}
        with pytest.raises(ParamsError, match=message):
            parse_params(tiny_params_dict)
    tiny_params_dict["tasks"]["normals"]["consensus"] = 3  # another task's key is unknown here
    tiny_params_dict["tasks"]["toy"] = {"dataset": "synthetic"}
    with pytest.raises(ParamsError, match="tasks.normals.consensus: unknown key"):
        parse_params(tiny_params_dict)

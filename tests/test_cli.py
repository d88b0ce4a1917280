"""Every stage once through Typer's runner on a tiny dataset, plus help and error behaviour."""

import json

import yaml
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
COMMANDS = ["download", "shard", "sample", "train", "evaluate"]


def _ok(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_every_stage_end_to_end(tmp_path, tiny_params_file):
    p = ["--params", tiny_params_file]
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    _ok(["download", "synthetic", "--out", raw, *p])
    assert (raw / "dataset.json").is_file()
    _ok(["shard", "synthetic", "--raw", raw, "--out", shards, *p])
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["splits"]["train"]["count"] == 8 and manifest["splits"]["test"]["count"] == 3
    for task in ("edges", "normals", "segmentation"):
        samples, models, reports = tmp_path / "samples" / task, tmp_path / "models" / task, tmp_path / "reports" / task
        _ok(["sample", task, "--shards", shards, "--out", samples, *p])
        summary = json.loads((samples / "summary.json").read_text())
        assert summary["images"] == 8 and summary["pixels_per_image"] == 64
        _ok(["train", task, "--shards", shards, "--samples", samples, "--out", models, "--log", reports / "train_loss.csv", "--quiet", *p])
        assert (models / "model.pt").is_file() and (models / "last.pt").is_file()
        assert len((reports / "train_loss.csv").read_text().splitlines()) == 1 + 3
        _ok(["evaluate", task, "--shards", shards, "--model", models / "model.pt", "--out", reports, "--quiet", *p])
        metrics = json.loads((reports / "metrics.json").read_text())
        assert set(metrics) == {"model", "baseline"}
        assert (reports / "predictions.png").stat().st_size > 0
    edges = json.loads((tmp_path / "reports" / "edges" / "metrics.json").read_text())
    assert set(edges["model"]) == {"ods", "ois", "ap"}
    normals = json.loads((tmp_path / "reports" / "normals" / "metrics.json").read_text())
    assert set(normals["baseline"]) == {"mean", "median", "rmse", "within_11_25", "within_22_5", "within_30"}
    seg = json.loads((tmp_path / "reports" / "segmentation" / "metrics.json").read_text())
    assert 0 <= seg["baseline"]["miou"] <= 1 and set(seg["model"]) == {"miou", "pixel_accuracy", "mean_class_accuracy"}


def test_help_explains_every_command_and_option():
    top = _ok(["--help"]).output
    for command in COMMANDS:
        assert command in top
        text = _ok([command, "--help"]).output
        assert "--params" in text and len(text.split()) > 30


def test_unknown_params_key_fails_cleanly(tmp_path, tiny_params_dict):
    tiny_params_dict["sampling"]["pixel_per_image"] = 10
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict))
    out = tmp_path / "raw"
    result = runner.invoke(app, ["download", "synthetic", "--out", str(out), "--params", str(path)])
    assert result.exit_code == 2
    assert "sampling.pixel_per_image" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_sample_with_more_pixels_than_a_window_holds_pads_and_says_so(tmp_path, tiny_params_dict, tiny_shards):
    """N above every window's pixels is not fatal: each draw takes all it has, the rest is padding."""
    tiny_params_dict["sampling"]["pixels_per_image"] = 32 * 32 + 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict))
    out = tmp_path / "samples"
    result = runner.invoke(app, ["sample", "segmentation", "--shards", str(tiny_shards), "--out", str(out), "--params", str(path),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert rows["padded"] >= rows["planned"] // (32 * 32 + 1) and rows["images_with_padding"] == 8
    assert rows["inside_window"] == rows["real"] > 0
    assert (out / "plan.npz").is_file() and (out / "summary.json").is_file()


def _help_panels(text: str) -> dict[str, list[str]]:
    """The top-level help's panels (rich boxes) -> the commands listed in each, in order."""
    panels: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("╭─ "):
            title = line[3:].split(" ─")[0].strip()
            panels[title] = []
        elif title and line.startswith("│ ") and line[2] != " ":  # a command's first line, not a wrapped one
            panels[title].append(line[2:].split()[0])
    return panels


def test_version_is_the_package_version():
    import importlib.metadata
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("pixelnet") == declared
    assert _ok(["--version"]).output == f"pixelnet {declared}\n"


def test_banner_says_which_commands_are_stages_and_which_are_tools():
    """The commands dvc.yaml files run are listed as stages, and nothing else is."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    run_by_dvc = set()
    for dvc_yaml in [root / "dvc.yaml", *sorted((root / "recipes").glob("*/dvc.yaml"))]:
        run_by_dvc |= set(re.findall(r"cmd:\s*pixelnet ([\w-]+)", dvc_yaml.read_text()))
    assert {"download", "shard", "sample", "train", "evaluate"} <= run_by_dvc

    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "Each command is one DVC stage" not in result.output
    panels = _help_panels(result.output)
    stages = {c for title, commands in panels.items() if "stage" in title.lower() for c in commands}
    tools = {c for title, commands in panels.items() if "stage" not in title.lower() and title != "Options" for c in commands}
    assert stages == run_by_dvc, panels
    assert {"predict", "export", "evaluate-edges", "evaluate-normals", "evaluate-segmentation", "bench", "ablations"} <= tools
    registered = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    assert registered | {"bench", "ablations"} == stages | tools and not stages & tools
    assert "--version" in panels["Options"]

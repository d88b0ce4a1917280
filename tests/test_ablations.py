"""`pixelnet ablations`: the real grid, queue's plan, collect's arm files and the rendered report.

No experiment runs here. `dvc exp show --json` is a committed fixture in DVC 3's shape
(tests/fixtures/ablations/exp_show.json; its numbers are made up), the arm files beside it are what
`collect` writes from it, and expected/README.md is what `render` writes from those. After an
intended change of either format, regenerate them and read the diff:

    F=tests/fixtures/ablations
    uv run pixelnet ablations collect --grid $F/grid.yaml --arms $F/arms --exp-json $F/exp_show.json --no-curves
    uv run pixelnet ablations render --grid $F/grid.yaml --arms $F/arms --out /tmp/abl && cp /tmp/abl/README.md $F/expected/
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline import ablations
from pipeline.ablations import cli as cli_module
from pipeline.ablations import grid as grid_module
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "ablations"
GRID, ARMS, EXP = FIX / "grid.yaml", FIX / "arms", FIX / "exp_show.json"
runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["ablations", *args])


def _exp_entries() -> list:
    return json.loads(EXP.read_text())


def _experiment(entries: list, name: str) -> dict:
    for entry in entries:
        for rng in entry.get("experiments") or []:
            if rng["revs"][0]["name"] == name:
                return rng
    raise KeyError(name)


# ----------------------------------------------------------------------------- the real grid

def test_real_grid_applies_to_params_yaml_with_equal_budgets() -> None:
    """Every arm of recipes/ablations/grid.yaml applies to params.yaml and validates; within a table,
    arms that fill the same columns have the same value of every key the table fixes, except the keys
    an arm is exempt from on purpose (Table 4's arms at equal compute see as many windows as M = 5)."""
    grid = ablations.load_grid(REPO / "recipes" / "ablations" / "grid.yaml")
    assert [t.id for t in grid.tables] == ["t1", "t2", "norm", "t4", "t5", "t11", "t15"]
    names = [a.experiment for t in grid.tables for a in t.all_arms]
    assert len(names) == len(set(names)) and len(names) > 29  # 29 arms and their seed repeats
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    budgets = {}
    for table in grid.tables:
        extra = tuple(f"data.{s}.source=/abs/BSR" for s in table.requires)
        groups: dict[tuple, list[tuple]] = {}
        for arm in table.all_arms:  # a seed repeat has its arm's budget
            b = ablations.budget_of(ablations.apply_overrides(params, arm.overrides + extra, arm.key), arm.task, arm.key)
            budgets[arm.key] = b
            groups.setdefault(arm.columns, []).append((arm, b))
        for cols, group in groups.items():
            for key in table.equal_budget:
                held = [b for arm, b in group if key not in dict(arm.exempt)]
                assert len({json.dumps(b[key]) for b in held}) == 1, (table.id, cols, key)
    assert budgets["t1/p4-seg"]["pixels_per_image"] == round(0.04 * 64 * 64)       # 4% of the 64² window
    assert budgets["t1/all-seg"]["pixels_per_image"] == 64 * 64
    assert {budgets[f"t4/m{m}-normals"]["pixels_per_batch"] for m in (1, 5, 16)} == {4000}
    for m1, m5 in [("m1-seg2250", "m5-seg450"), ("m1-seg4500", "m5-seg900"), ("m1-normals9000", "m5-normals")]:
        a, b = budgets[f"t4/{m1}"], budgets[f"t4/{m5}"]  # equal compute: as many windows, lr step as late
        assert a["iterations"] * a["images_per_batch"] == b["iterations"] * b["images_per_batch"], m1
        assert [s * b["images_per_batch"] for s in b["lr_steps"]] == a["lr_steps"], m1
        assert a["pixels_per_batch"] == b["pixels_per_batch"] and dict(_arm(grid, f"t4/{m1}").exempt).keys() == {"iterations"}
    assert budgets["t2/linear-bn-seg"]["head"] == "linear" and budgets["t2/linear-bn-seg"]["head_batch_norm"] is True
    assert {budgets[f"t15/{a}"]["dataset"] for a in ("uniform", "p25", "p50", "p75", "p60")} == {"bsds500"}
    assert budgets["t15/uniform"]["strategy"] == "uniform" and budgets["t15/p25"]["positive_fraction"] == 0.25
    paper = {t.id: {r.id: r.paper for r in t.rows} for t in grid.tables}
    assert paper["t15"]["uniform"] == {"ods": 0.767, "ois": 0.786, "ap": 0.800}
    assert paper["t15"]["p75"] == {"ods": 0.790, "ois": 0.805, "ap": 0.818}
    assert paper["t11"]["m1-10000"] == {"ac": 33.3, "iu": 25.2}
    assert paper["t2"]["linear"]["iou"] == 3.6 and paper["t4"]["m5"]["iou2"] == 47.9
    assert paper["t5"]["random"]["iou"] == 48.7 and paper["t5"]["geometry"] == {"iou": 52.4}
    assert paper["t5"]["imagenet"]["w30"] == 77.8 and all(not r for r in paper["norm"].values())


def _arm(grid, key: str):
    return next(a for t in grid.tables for a in t.all_arms if a.key == key)


def test_real_grid_runs_what_issue_21_asks() -> None:
    """Every arm of Tables 1, 2, 4 and 11 (and the norm check) has at least two seeds; the norm check
    sets batch norm against the trunks that do not depend on the batch (group norm with 4 groups and
    with one, and none) at M = 5 and 16; Tables 4 and 11 give every arm the one the check chose (no
    normalisation) from their base; the tables run from now on are scored as the paper's ablations
    (one scale, no flip); Table 5's init arms start from the other task's root model through the init
    pipeline."""
    grid = ablations.load_grid(REPO / "recipes" / "ablations" / "grid.yaml")
    tables = {t.id: t for t in grid.tables}
    for tid in ("t1", "t2", "norm", "t4", "t11"):
        seeds = {a.name: 1 + sum(r.of == a.name for r in tables[tid].repeats) for a in tables[tid].arms}
        assert min(seeds.values()) >= 2, (tid, seeds)
    params = yaml.safe_load((REPO / "params.yaml").read_text())

    def trunk(p: dict) -> str:
        m = p["model"]
        return "none" if not m["batch_norm"] else m["norm"] if m["norm"] == "batch" else f"group{m['norm_groups']}"

    norm = {a.name: ablations.apply_overrides(params, a.overrides, a.key) for a in tables["norm"].arms}
    assert {(trunk(p), p["sampling"]["images_per_batch"]) for p in norm.values()} == {
        (t, m) for t in ("batch", "group4", "group1", "none") for m in (5, 16)}
    for tid in ("t4", "t11"):
        for arm in tables[tid].all_arms:
            assert trunk(ablations.apply_overrides(params, arm.overrides, arm.key)) == "none", arm.key
    for tid in ("norm", "t4", "t5", "t11", "t15"):
        for arm in tables[tid].all_arms:
            ev = ablations.evaluation_of(ablations.apply_overrides(params, arm.overrides, arm.key), arm.key)
            assert ev == {"scales": [1.0], "flip": False}, arm.key
    geometry, semantic = _arm(grid, "t5/geometry-seg"), _arm(grid, "t5/semantic-normals-s1")
    assert (geometry.source, semantic.source) == ("normals", "segmentation")
    assert geometry.target == "recipes/ablations/dvc.yaml:evaluate-init@segmentation-from-normals"
    assert semantic.metrics_file == "reports/init/normals-from-segmentation/metrics.json"
    assert semantic.sampling_file == "reports/normals/sampling.json"  # the root pipeline's sample stage
    assert _arm(grid, "t5/random-seg").target == "evaluate@segmentation"


# ----------------------------------------------------------------------------- render

def test_render_reproduces_the_committed_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = _invoke("render", "--grid", str(GRID), "--arms", str(ARMS), "--out", str(out), "--notes", str(tmp_path / "none"))
    assert res.exit_code == 0, res.output
    assert (out / "README.md").read_bytes() == (FIX / "expected" / "README.md").read_bytes()
    for name in ("t1-loss-segmentation.png", "t11-vs-n.png", "t15-pr.png"):  # the curves beside the arm files
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not list(out.glob("t2-*.png"))  # nothing ran: no picture


def test_the_committed_report_is_rendered_from_the_committed_arm_files(tmp_path: Path) -> None:
    """reports/ablations/README.md is what `render` writes from the committed arm files and notes, byte for byte."""
    report = REPO / "reports" / "ablations"
    ablations.render_report(ablations.load_grid(REPO / "recipes" / "ablations" / "grid.yaml"), report / "arms",
                            tmp_path, report / "notes")
    assert (tmp_path / "README.md").read_text() == (report / "README.md").read_text(), (
        "reports/ablations/README.md is stale: run `uv run pixelnet ablations render`")


def test_report_numbers_equal_the_arm_files(tmp_path: Path) -> None:
    """Each of our cells, and each arm's rev and budget, read back from the page equal the arm files."""
    ablations.render_report(ablations.load_grid(GRID), ARMS, tmp_path)
    page = (tmp_path / "README.md").read_text()
    grid = ablations.load_grid(GRID)
    checked = 0
    for table in grid.tables:
        section = page.split(f"## Table {table.paper_table}:", 1)[1].split("\n## ", 1)[0]
        numbers, listing = section.split("**Arms.**")

        def rows(text: str) -> dict[str, list[str]]:
            lines = [[c.strip() for c in line.strip(" |").split(" | ")] for line in text.splitlines() if line.startswith("| ")]
            return {cells[0]: cells for cells in lines}

        ours_rows = {k: v for k, v in rows(numbers).items() if v[1] == "ours"}
        cells = rows(listing)
        for arm in table.arms:
            path = ARMS / table.id / f"{arm.name}.json"
            if not path.is_file():
                assert cells[arm.name][-1] == "not run"
                continue
            doc = json.loads(path.read_text())
            row = next(r for r in table.rows if r.id == arm.row)
            ours = ours_rows[row.ours]
            for cid in arm.columns:
                col = table.column(cid)
                i = 2 + [c.id for c in table.columns].index(cid)
                assert ours[i] == format(doc["metrics"]["model"][col.metric] * col.scale, col.fmt), (arm.key, cid)
                checked += 1
            b = doc["budget"]
            assert cells[arm.name][3] == f"{b['iterations']:,}"
            assert cells[arm.name][4] == f"{b['pixels_per_image']:,} × {b['images_per_batch']} = {b['pixels_per_batch']:,}"
            assert cells[arm.name][-1] == doc["rev"][:7]
            assert shlex.join(ablations.queue_argv(arm, tuple(f"data.{s}.source=<{s.upper()}>" for s in table.requires))) in section
    assert checked == 2 + 2 * 2 + 3 * 2 + 2 * 3  # t1 (seg 1 col, normals 2), t11 (2 cols), t15 (3 cols)


def test_render_sets_aside_an_arm_file_the_grid_no_longer_describes(tmp_path: Path) -> None:
    """An arm file collected under an earlier grid (its overrides differ from the arm's) is left out of
    the numbers, the verdicts and the plots, and listed under its table with what changed; so is a
    file the grid no longer names. `queue` treats the arm as not collected."""
    arms = _copy_arms(tmp_path)
    doc = json.loads((arms / "t11" / "n100-m5.json").read_text())
    doc["overrides"][-1] = "sampling.images_per_batch=4"
    (arms / "t11" / "n100-m5.json").write_text(json.dumps(doc))
    (arms / "t11" / "n100-m4.json").write_text(json.dumps(doc))
    res = _invoke("render", "--grid", str(GRID), "--arms", str(arms), "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert "n100-m4.json: not an arm of" in res.output
    page = (tmp_path / "out" / "README.md").read_text()
    t11 = _section(page, 11)
    assert "| 100 × 5 | ours | — | — |" in t11
    assert "**Superseded arm files** (collected under an earlier grid" in t11
    assert "* n100-m5: the grid now sets `sampling.images_per_batch=5`; its run had `sampling.images_per_batch=4`." in t11
    assert "* n100-m4: no longer an arm of the grid." in t11
    assert "| n100-m5 | 500 × 5 | segmentation | — |" in t11 and "5 images beat 1" in t11
    assert "| 11 | " in page and "| 2 of 3 (1 superseded) |" in _summary(page)[11]
    grid = ablations.load_grid(GRID)  # with no experiment left, queue runs the superseded arm again
    assert ablations.experiments.arm_state(_arm(grid, "t11/n100-m5"), {}, arms)[0] == "missing"
    assert ablations.experiments.arm_state(_arm(grid, "t11/n400-m5"), {}, arms)[0] == "collected"


# ----------------------------------------------------------------------------- collect

def test_collect_writes_the_committed_arm_files(tmp_path: Path) -> None:
    res = _invoke("collect", "--grid", str(GRID), "--arms", str(tmp_path), "--exp-json", str(EXP), "--no-curves")
    assert res.exit_code == 0, res.output
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert written == sorted(p.relative_to(ARMS) for p in ARMS.rglob("*.json"))
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (ARMS / rel).read_bytes(), rel
    # Two finished experiments share the name abl-t11-n100-m5 (an older baseline's): the newest wins.
    assert json.loads((tmp_path / "t11" / "n100-m5.json").read_text())["metrics"]["model"]["miou"] == 0.57112
    assert json.loads((tmp_path / "t15" / "p50.json").read_text())["sources"] == {"bsds500": "/data/BSR"}
    assert json.loads((tmp_path / "t1" / "all-seg.json").read_text())["evaluation"] == {"scales": [0.8, 1.0, 1.25],
                                                                                         "flip": True}
    assert json.loads((tmp_path / "t15" / "p50.json").read_text())["evaluation"] == {"scales": [1.0], "flip": True}
    assert "t2/linear-seg" in res.output and "pending (queued)" in res.output


def test_collect_rejects_an_experiment_without_the_arms_override(tmp_path: Path) -> None:
    entries = _exp_entries()
    params = _experiment(entries, "abl-t1-p4-seg")["revs"][0]["data"]["params"]["params.yaml"]["data"]
    params["sampling"]["pixels_per_image"] = 400  # the experiment did not run what the grid says
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(entries))
    arms = tmp_path / "arms"
    res = _invoke("collect", "--grid", str(GRID), "--arms", str(arms), "--exp-json", str(exp), "--no-curves")
    assert res.exit_code == 2
    assert "t1/p4-seg" in res.output and "sampling.pixels_per_image" in res.output and "164" in res.output
    assert not arms.exists()  # every arm is checked before any file is written


# ----------------------------------------------------------------------------- queue

def _queue(*args: str, arms: Path = ARMS):
    return _invoke("queue", "--grid", str(GRID), "--arms", str(arms), "--exp-json", str(EXP),
                   "--params", str(REPO / "params.yaml"), *args)


def _argv(key: str) -> str:
    arm = next(a for t in ablations.load_grid(GRID).tables for a in t.arms if a.key == key)
    return shlex.join(ablations.queue_argv(arm))


def test_queue_dry_run_skips_finished_arms_and_lists_the_rest() -> None:
    res = _queue("--dry-run", "--tables", "t1,t2,t11")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    state = {line.split()[0]: line.split()[1] for line in lines if "/" in line.split()[0]}
    assert state == {"t1/all-seg": "collected", "t1/p4-seg": "collected", "t1/all-normals": "collected",
                     "t1/p4-normals": "collected", "t2/linear-seg": "queued", "t2/linear-bn-seg": "failed",
                     "t2/mlp-seg": "dead", "t2/mlp-normals": "missing", "t11/n100-m5": "collected",
                     "t11/n400-m5": "collected", "t11/n400-m1": "collected"}
    for key in ("t2/linear-bn-seg", "t2/mlp-seg", "t2/mlp-normals"):
        assert f"    {_argv(key)}" in lines
    for key in ("t1/all-seg", "t2/linear-seg", "t11/n400-m1"):
        assert _argv(key) not in res.output
    assert "    dvc queue remove abl-t2-linear-bn-seg" in lines
    kill = lines.index("    dvc queue kill abl-t2-mlp-seg")  # orphaned by a killed queue: marked failed, removed, queued
    assert lines[kill + 1: kill + 3] == ["    dvc queue remove abl-t2-mlp-seg", f"    {_argv('t2/mlp-seg')}"]
    assert "3 arm(s) to queue (dry run: nothing queued)" in res.output
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    scored = grid_module.evaluation_text(ablations.evaluation_of(params, "params.yaml"))  # each arm's evaluation too
    assert f"900 steps, N 400 × M 16 = 6,400 pixels a step, crop 64; scored at {scored}" in res.output


def test_queue_without_arm_files_skips_finished_experiments(tmp_path: Path) -> None:
    res = _queue("--dry-run", "--tables", "t1", arms=tmp_path)
    assert res.exit_code == 0, res.output
    assert res.output.count("finished  skipped (rev") == 4 and "0 arm(s) to queue" in res.output


def test_queue_after_a_kill_requeues_only_unfinished_arms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Must-show 3, at the level this code owns: after `dvc queue stop --kill` the killed arm shows as
    running with no process; queue marks it failed, removes it and queues it again, leaves queued arms
    where they are and runs nothing for finished ones. A live running arm is left alone."""
    calls: list[list[str]] = []
    monkeypatch.setattr(ablations.experiments, "run_command", lambda argv, check=True: calls.append(list(argv)))
    monkeypatch.setattr(ablations.experiments, "dirty_files", lambda: [])
    res = _queue("--tables", "t1,t2,t11")
    assert res.exit_code == 0, res.output
    assert [shlex.join(c) for c in calls] == [
        "dvc queue remove abl-t2-linear-bn-seg", _argv("t2/linear-bn-seg"),
        "dvc queue kill abl-t2-mlp-seg", "dvc queue remove abl-t2-mlp-seg", _argv("t2/mlp-seg"),
        _argv("t2/mlp-normals")]

    entries = _exp_entries()
    _experiment(entries, "abl-t2-mlp-seg")["executor"]["local"]["pid"] = os.getpid()  # still running
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(entries))
    calls.clear()
    res = _invoke("queue", "--grid", str(GRID), "--arms", str(ARMS), "--exp-json", str(exp),
                  "--params", str(REPO / "params.yaml"), "--tables", "t2")
    assert res.exit_code == 0, res.output
    assert "abl-t2-mlp-seg" not in " ".join(" ".join(c) for c in calls)
    assert [shlex.join(c) for c in calls] == ["dvc queue remove abl-t2-linear-bn-seg", _argv("t2/linear-bn-seg"),
                                              _argv("t2/mlp-normals")]


def test_queue_reads_the_experiments_again_before_killing_an_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    """An arm whose process ended between `dvc exp show` and the process check looks orphaned; the
    second read sees it as it is (here: still running with a live process), and nothing is killed."""
    calls: list[list[str]] = []
    monkeypatch.setattr(ablations.experiments, "run_command", lambda argv, check=True: calls.append(list(argv)))
    monkeypatch.setattr(ablations.experiments, "dirty_files", lambda: [])
    first, again = _exp_entries(), _exp_entries()
    _experiment(again, "abl-t2-mlp-seg")["executor"]["local"]["pid"] = os.getpid()
    reads = [ablations.read_experiments(first, "first"), ablations.read_experiments(again, "again")]
    monkeypatch.setattr(cli_module, "load_experiments", lambda exp_json: reads.pop(0))
    res = _queue("--tables", "t2")
    assert res.exit_code == 0, res.output
    assert not reads  # read twice
    assert "abl-t2-mlp-seg" not in " ".join(" ".join(c) for c in calls)
    assert "t2/mlp-seg" in res.output and "running now" in res.output


def test_queue_refuses_a_dirty_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ablations.experiments, "run_command", lambda argv, check=True: pytest.fail(f"ran {argv}"))
    monkeypatch.setattr(ablations.experiments, "dirty_files", lambda: ["params.yaml"])
    res = _queue("--tables", "t2")
    assert res.exit_code == 2 and "params.yaml" in res.output and "--allow-dirty" in res.output


def test_a_bsds_arm_needs_the_bsds500_path(tmp_path: Path) -> None:
    res = _queue("--dry-run", "--tables", "t15")
    assert res.exit_code == 2
    assert "t15/p25" in res.output and "--bsds500 PATH" in res.output
    bsr = tmp_path / "BSR"
    bsr.mkdir()
    res = _queue("--dry-run", "--tables", "t15", "--bsds500", str(bsr))
    assert res.exit_code == 0, res.output
    arm = next(a for t in ablations.load_grid(GRID).tables for a in t.arms if a.key == "t15/p25")
    assert shlex.join(ablations.queue_argv(arm, (f"data.bsds500.source={bsr.resolve()}",))) in res.output
    assert "t15/uniform" in res.output and "1 arm(s) to queue" in res.output
    assert _invoke("queue", "--grid", str(GRID), "--dry-run", "--bsds500", str(tmp_path / "nope")).exit_code == 2


def _grid_with_repeats(tmp_path: Path, repeats: dict) -> Path:
    raw = yaml.safe_load(GRID.read_text())
    raw["tables"][2]["repeats"] = repeats  # t11
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_seed_repeats_are_queued_and_their_spread_rendered(tmp_path: Path) -> None:
    """A repeat is its arm again with train.seed = sampling.seed = S, under its own experiment name; it
    never fills the table (verdicts stay on seed 0); the report sets each column's range beside the
    tolerance, and lists the repeats not run yet."""
    grid_path = _grid_with_repeats(tmp_path, {"seeds": [1, 2], "arms": ["n100-m5"]})
    grid = ablations.load_grid(grid_path)
    t11 = grid.tables[2]
    assert [a.name for a in t11.arms] == ["n100-m5", "n400-m5", "n400-m1"]
    assert [(a.name, a.experiment, a.seed, a.of) for a in t11.repeats] == [
        ("n100-m5-s1", "abl-t11-n100-m5-s1", 1, "n100-m5"), ("n100-m5-s2", "abl-t11-n100-m5-s2", 2, "n100-m5")]
    assert t11.repeats[1].overrides == t11.arms[0].overrides + ("train.seed=2", "sampling.seed=2")
    arms = tmp_path / "arms"
    for src in ARMS.glob("*/*"):
        (arms / src.parent.name).mkdir(parents=True, exist_ok=True)
        (arms / src.parent.name / src.name).write_bytes(src.read_bytes())
    doc = json.loads((ARMS / "t11" / "n100-m5.json").read_text())
    doc.update(arm="n100-m5-s1", experiment="abl-t11-n100-m5-s1", overrides=list(t11.repeats[0].overrides),
               rev="5e5e" * 10)
    doc["metrics"]["model"].update(miou=0.60112, mean_class_accuracy=0.69541)  # IU 57.1 -> 60.1, AC 69.0 -> 69.5
    (arms / "t11" / "n100-m5-s1.json").write_text(json.dumps(doc))

    res = _invoke("queue", "--grid", str(grid_path), "--arms", str(arms), "--exp-json", str(EXP),
                  "--params", str(REPO / "params.yaml"), "--dry-run", "--tables", "t11")
    assert res.exit_code == 0, res.output
    state = {line.split()[0]: line.split()[1] for line in res.output.splitlines() if line.startswith("t11/")}
    assert state["t11/n100-m5-s1"] == "collected" and state["t11/n100-m5-s2"] == "missing"
    assert f"    {shlex.join(ablations.queue_argv(t11.repeats[1]))}" in res.output.splitlines()

    ablations.render_report(grid, arms, tmp_path / "out")
    page = (tmp_path / "out" / "README.md").read_text()
    section = page.split("## Table 11:", 1)[1]
    assert "| n100-m5 | 0 / 1 (2 not run) | 69.0 / 69.5 (mean 69.3, range 0.5) | 57.1 / 60.1 (mean 58.6, range 3.0) |" in section
    assert ("Largest range per column: AC (%) 0.5 (within its preset tolerance 1.0); IU (%) 3.0 (**beyond** its "
            "preset tolerance 1.0)") in section
    assert "| n100-m5-s1 | 500 × 5 | segmentation | 900 |" in section and "| n100-m5-s2 |" in section
    ours = next(line for line in section.splitlines() if line.startswith("| 100 × 5 | ours"))
    assert ours.startswith("| 100 × 5 | ours, mean of 2 seeds | 69.3 | 58.6 |")  # the means, not seed 0's 69.0 / 57.1
    # "100 pixels match 400" on the means (IU 58.6 vs 59.4) and against IU's measured range 3.0: seed 0 alone
    # (57.1 vs 59.4, tolerance 1.0) disagreed.
    assert "* IU (%): ours -0.8 (agrees, tolerance 3.0); paper +0.1 (agrees)" in section
    assert "* AC (%): ours -1.2 (disagrees, tolerance 1.0)" in section
    assert "IU (%) 3.0 (preset 1.0, widened to the seed range)" in section
    assert "Means over seeds: n100-m5 (0 / 1). Single-seed arms, compared on their one run against the same " \
           "tolerances: n400-m5, n400-m1." in section


def test_repeat_errors_name_the_key(tmp_path: Path) -> None:
    for repeats, match in [({"seeds": [0, 1], "arms": ["n100-m5"]}, r"tables.t11.repeats.seeds: distinct integers >= 1"),
                           ({"seeds": [1, 1], "arms": ["n100-m5"]}, r"tables.t11.repeats.seeds"),
                           ({"seeds": [1], "arms": ["n100-m6"]}, r"tables.t11.repeats.arms\[0\]: 'n100-m6' is not an arm"),
                           ({"seeds": [1]}, r"tables.t11.repeats.arms: missing")]:
        with pytest.raises(ablations.AblationError, match=match):
            ablations.load_grid(_grid_with_repeats(tmp_path, repeats))
    raw = yaml.safe_load(GRID.read_text())
    raw["tables"][2]["arms"][0]["set"].append("train.seed=3")
    raw["tables"][2]["repeats"] = {"seeds": [1], "arms": ["n100-m5"]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ablations.AblationError, match=r"'n100-m5' sets train.seed=3 itself"):
        ablations.load_grid(tmp_path / "grid.yaml")


# ----------------------------------------------------------------------------- errors

def test_grid_and_override_errors_name_the_key(tmp_path: Path) -> None:
    raw = yaml.safe_load(GRID.read_text())
    raw["tables"][0]["arms"][1]["task"] = "edge"
    bad = tmp_path / "grid.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ablations.AblationError, match=r"grid.yaml: tables.t1.arms.p4-seg.task: 'edge'"):
        ablations.load_grid(bad)
    raw = yaml.safe_load(GRID.read_text())
    raw["tables"][2]["arms"][0]["set"] = ["sampling.pixels_per_image"]
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ablations.AblationError, match=r"tables.t11.arms.n100-m5.set\[0\]: expected an override"):
        ablations.load_grid(bad)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    with pytest.raises(ablations.AblationError, match="params.yaml has no key sampling.pixel_per_image"):
        ablations.apply_overrides(params, ("sampling.pixel_per_image=100",), "t1/x")
    assert ablations.apply_overrides(params, ("train.lr=1e-3",), "x")["train"]["lr"] == 0.001  # a number, as DVC reads it


def test_grid_is_read_by_the_typed_checker_of_params(tmp_path: Path) -> None:
    """Unknown keys, missing keys and wrong types are errors naming the file and the dotted key, as in params.yaml."""
    bad = tmp_path / "grid.yaml"
    for edit, match in [
        (lambda raw: raw["tables"][0]["columns"][0].update(colour="red"), r"grid.yaml: tables.t1.columns.iou.colour: unknown key"),
        (lambda raw: raw["tables"][0].pop("title"), r"grid.yaml: tables.t1.title: missing"),
        (lambda raw: raw["tables"][0].update(paper_table="one"), r"grid.yaml: tables.t1.paper_table: expected int \| None, got 'one'"),
        (lambda raw: raw["tables"][0]["rows"][0]["paper"].update(iou="x"), r"tables.t1.rows.all.paper.iou: expected float"),
        (lambda raw: raw["tables"][0]["rows"][0]["paper"].update(nope=1.0), r"tables.t1.rows.all.paper.nope: not a column of t1"),
        (lambda raw: raw["tables"][2]["plots"][0].update(x="lr"), r"tables.t11.plots.vs-n.x / series must be numeric budget keys"),
        (lambda raw: raw.update(extra=1), r"grid.yaml: extra: unknown key; allowed under the top level: prefix, tables"),
    ]:
        raw = yaml.safe_load(GRID.read_text())
        edit(raw)
        bad.write_text(yaml.safe_dump(raw))
        with pytest.raises(ablations.AblationError, match=match):
            ablations.load_grid(bad)


# ----------------------------------------------------------------------------- failed runs, noise, evaluation

def _copy_arms(tmp_path: Path) -> Path:
    arms = tmp_path / "arms"
    for src in ARMS.glob("*/*"):
        (arms / src.parent.name).mkdir(parents=True, exist_ok=True)
        (arms / src.parent.name / src.name).write_bytes(src.read_bytes())
    return arms


def _edit_arm(arms: Path, key: str, **model: float) -> None:
    path = arms / f"{key}.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["model"].update(model)
    path.write_text(json.dumps(doc))


def _section(page: str, number: int) -> str:
    return page.split(f"## Table {number}:", 1)[1].split("\n## ", 1)[0]


def _summary(page: str) -> dict[int, str]:
    """The summary table's rows by paper table number."""
    head = page.index("| Table | the paper's claim |")
    rows = page[head:].split("\n\n", 1)[0].splitlines()[2:]
    return {int(row.split(" | ")[0].strip("| ")): row for row in rows}


def test_baseline_checks_per_task() -> None:
    """Segmentation: pixel accuracy not above the majority class's; normals: mean angular error not
    below the mean normal's; edges: ODS not above Sobel's; no baseline recorded: not checked."""
    check = ablations.baseline_check
    assert check("segmentation", {"model": {"pixel_accuracy": 0.58}, "baseline": {"pixel_accuracy": 0.659}}).state == "failed"
    assert check("segmentation", {"model": {"pixel_accuracy": 0.80, "miou": 0.1},
                                  "baseline": {"pixel_accuracy": 0.659, "miou": 0.16}}).state == "passed"
    assert check("normals", {"model": {"mean": 30.0}, "baseline": {"mean": 28.7}}).text == \
        "mean angular error 30.0 above the mean training normal's 28.7"
    assert check("normals", {"model": {"mean": 20.0}, "baseline": {"mean": 28.7}}).state == "passed"
    assert check("edges", {"model": {"ods": 0.54}, "baseline": {"ods": 0.55}}).state == "failed"
    assert check("edges", {"model": {"ods": 0.74}}).state == "unchecked"
    # A run that answers exactly the majority class (Table 11's one-window arms without normalisation did)
    # learned nothing: equal to the baseline is no better than it.
    same = check("segmentation", {"model": {"pixel_accuracy": 0.6590703125}, "baseline": {"pixel_accuracy": 0.6590703125}})
    assert same.state == "failed" and "equal to the majority class's" in same.text, same.text
    assert check("normals", {"model": {"mean": 28.7}, "baseline": {"mean": 28.7}}).state == "failed"


def test_render_marks_an_arm_below_its_baseline_failed_and_leaves_it_out_of_the_verdict(tmp_path: Path) -> None:
    """Must-show 2: a run below its task's trivial baseline stays in its table, marked failed, and no
    verdict rests on it, in the table's claims or in the summary; the other columns are still judged."""
    arms = _copy_arms(tmp_path)
    _edit_arm(arms, "t11/n400-m1", pixel_accuracy=0.60)  # the majority class scores 0.659
    _edit_arm(arms, "t1/p4-normals", mean=30.0)          # the mean normal scores 28.7°
    ablations.render_report(ablations.load_grid(GRID), arms, tmp_path / "out")
    page = (tmp_path / "out" / "README.md").read_text()

    t11 = _section(page, 11)
    assert "| 400 × 1 | ours | 60.2 (failed) | 48.0 (failed) |" in t11  # its numbers stay visible
    assert "* n400-m1 (seed 0): pixel accuracy 0.600 below the majority class's 0.659." in t11
    assert ("* 5 images beat 1 (beats: 500 × 5 vs 2000 × 1): paper agrees (2 agrees of 2 columns); ours no verdict: "
            "arm n400-m1 failed (no better than baseline).") in t11
    assert "* IU (%): ours +9.1 (no verdict: arm n400-m1 failed (no better than baseline)); paper +10.2 (agrees)" in t11
    assert "* AC (%): ours -1.5 (disagrees, tolerance 1.0)" in t11  # the other claim is still judged
    assert "| n400-m1 | 2000 × 1 | segmentation | 900 | 400 × 1 = 400 | 64 | 0.8, 1.0, 1.25 + flip | **failed**: " \
           "pixel accuracy 0.600 below the majority class's 0.659 |" in t11
    assert "Small scenes." not in t11  # no reason is given for a verdict that was not reached

    t1 = _section(page, 1)
    assert "| 164 × 5 | ours | 62.4 | 30.0 (failed) | 73.6 (failed) |" in t1
    assert ("ours agrees (1 agrees of 1 column; no verdict on 2: arm p4-normals failed (no better than baseline))") in t1

    summary = _summary(page)
    assert "| p4-normals |" in summary[1]
    assert "| n400-m1 |" in summary[11]
    assert "5 images beat 1: no verdict: arm n400-m1 failed (no better than baseline)" in summary[11]
    assert "| none |" in summary[15]

    entries = _exp_entries()  # collect says so too
    _experiment(entries, "abl-t11-n400-m1")["revs"][0]["data"]["metrics"]["reports/segmentation/metrics.json"][
        "data"]["model"]["pixel_accuracy"] = 0.60
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(entries))
    res = _invoke("collect", "--grid", str(GRID), "--arms", str(tmp_path / "c"), "--exp-json", str(exp), "--no-curves")
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("t11/n400-m1"))
    assert "FAILED: pixel accuracy 0.600 below the majority class's 0.659" in line


def _t2_arm(arms: Path, grid, name: str, miou: float) -> None:
    arm = next(a for a in grid.tables[1].all_arms if a.name == name)
    doc = json.loads((ARMS / "t1" / "all-seg.json").read_text())
    doc.update(table="t2", arm=name, row=arm.row, experiment=arm.experiment, overrides=list(arm.overrides))
    doc["metrics"]["model"]["miou"] = miou
    (arms / "t2").mkdir(parents=True, exist_ok=True)
    (arms / "t2" / f"{name}.json").write_text(json.dumps(doc))


def _t2_with_a_seed_repeat(tmp_path: Path, seed1_iou: float):
    """The fixture grid with Table 2's mlp-seg repeated under seed 1; linear (bn) at 61.5 IoU, mlp at
    64.0 (seed 0) and `seed1_iou` (seed 1). Returns (grid, arms folder)."""
    raw = yaml.safe_load(GRID.read_text())
    raw["tables"][1]["repeats"] = {"seeds": [1], "arms": ["mlp-seg"]}
    grid_path = tmp_path / "grid.yaml"
    grid_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    grid = ablations.load_grid(grid_path)
    arms = _copy_arms(tmp_path)
    _t2_arm(arms, grid, "linear-bn-seg", 0.615)
    _t2_arm(arms, grid, "mlp-seg", 0.640)
    _t2_arm(arms, grid, "mlp-seg-s1", seed1_iou)
    return grid, arms


def test_a_difference_inside_the_seed_range_is_within_noise(tmp_path: Path) -> None:
    """The verdict compares the mean over seeds, against a tolerance widened to the measured range:
    MLP 64.0 / 62.0 (mean 63.0, range 2.0) against linear (bn) 61.5 is +1.5: beyond the preset 1.0, so
    seed 0 alone (+2.5) would agree, but within the noise of 2.0; the summary says so too."""
    grid, arms = _t2_with_a_seed_repeat(tmp_path, 0.620)
    ablations.render_report(grid, arms, tmp_path / "out")
    page = (tmp_path / "out" / "README.md").read_text()
    t2 = _section(page, 2)
    assert "| mlp | ours, mean of 2 seeds | 63.0 | — |" in t2
    assert "| linear + bn | ours | 61.5 | — |" in t2
    assert "IoU (T) 2.0 (preset 1.0, widened to the seed range); Mean 0.5 (preset)" in t2
    assert "Means over seeds: mlp-seg (0 / 1). Single-seed arms, compared on their one run against the same " \
           "tolerances: linear-bn-seg." in t2
    assert ("* the MLP beats linear (bn) (beats: MLP vs Linear (bn)): paper agrees (2 agrees of 2 columns); "
            "ours within noise (1 within noise of 1 column).") in t2
    assert "* IoU (T): ours +1.5 (within noise, tolerance 2.0); paper +5.0 (agrees)" in t2
    assert "| mlp-seg | 0 / 1 | 64.0 / 62.0 (mean 63.0, range 2.0) | — |" in t2
    summary = _summary(page)[2]
    assert summary.endswith("| the MLP beats linear (bn): within noise (1 within noise of 1 column) |")

    verdicts = ablations.results(grid.tables[1], ablations.load_arm_files(grid, arms)[0])
    assert verdicts.noise == {"iou": 2.0} and verdicts.values()["mlp"] == {"iou": 63.0}
    claim = grid.tables[1].claims[0]
    assert [r.word for r in ablations.judge(claim, grid.tables[1], verdicts.values())] == ["agrees"]  # preset 1.0
    assert [r.word for r in ablations.judge(claim, grid.tables[1], verdicts.values(), verdicts.tolerances())] == [
        "within noise"]


def test_a_failed_seed_fails_its_arm_and_its_range_is_not_noise(tmp_path: Path) -> None:
    """An arm with one seed below the baseline has failed: its mean is shown, marked, it gets no verdict,
    and its (meaningless) seed range does not widen the column's tolerance."""
    grid, arms = _t2_with_a_seed_repeat(tmp_path, 0.300)
    _edit_arm(arms, "t2/mlp-seg-s1", pixel_accuracy=0.5)
    verdicts = ablations.results(grid.tables[1], ablations.load_arm_files(grid, arms)[0])
    assert verdicts.arms["mlp-seg"].failed and verdicts.noise == {}
    ablations.render_report(grid, arms, tmp_path / "out")
    page = (tmp_path / "out" / "README.md").read_text()
    t2 = _section(page, 2)
    assert "| mlp | ours, mean of 2 seeds | 47.0 (failed) | — |" in t2
    assert "* mlp-seg-s1 (seed 1 of arm mlp-seg): pixel accuracy 0.500 below the majority class's 0.659." in t2
    assert "| mlp-seg (failed: its range is not counted) | 0 / 1 | 64.0 / 30.0 (mean 47.0, range 34.0) | — |" in t2
    assert "IoU (T) 1.0 (preset)" in t2
    assert _summary(page)[2].endswith("| mlp-seg | 0.8, 1.0, 1.25 + flip (the paper: 1.0, no flip) | the MLP beats "
                                      "linear (bn): no verdict: arm mlp-seg failed (no better than baseline) |")


def test_each_table_states_its_evaluation_settings(tmp_path: Path) -> None:
    """Each arm's evaluation settings, as collected from its experiment's params, are listed with its
    budget; each table says what it used, where that came from, and that it is not the paper's
    single-scale evaluation where it is not."""
    ablations.render_report(ablations.load_grid(GRID), ARMS, tmp_path)
    page = (tmp_path / "README.md").read_text()
    t1, t15 = _section(page, 1), _section(page, 15)
    assert ("**Evaluation.** Every arm was scored at 3 scales (0.8, 1.0, 1.25) with horizontal flips averaged in "
            "(params.yaml's `evaluate.scales` and `evaluate.flip`: the table does not pin them). **Not the paper's "
            "evaluation**") in t1
    assert "| all-seg | All Pixels | segmentation | 900 | 4,096 × 5 = 20,480 | 64 | 0.8, 1.0, 1.25 + flip |" in t1
    assert ("Every arm was scored at a single scale (1.0) with horizontal flips averaged in (`evaluate.scales` pinned "
            "in the table's overrides, `evaluate.flip` params.yaml's). **Not the paper's evaluation**") in t15
    assert "| 0.8, 1.0, 1.25 + flip (the paper: 1.0, no flip) |" in _summary(page)[1]


def test_table_15_shows_the_share_of_positives_drawn_beside_the_share_asked(tmp_path: Path) -> None:
    """`collect` keeps each arm's sampling summary (reports/<task>/sampling.json from `dvc exp show`),
    and the table reads the drawn share from it, never from the grid."""
    entries = _exp_entries()
    data = _experiment(entries, "abl-t15-p50")["revs"][0]["data"]
    data["metrics"]["reports/edges/sampling.json"] = {"data": {"strategy": "edge_biased",
                                                               "share_per_stratum": {"0": 0.565, "1": 0.435}}}
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(entries))
    arms = tmp_path / "arms"
    res = _invoke("collect", "--grid", str(GRID), "--arms", str(arms), "--exp-json", str(exp), "--no-curves")
    assert res.exit_code == 0, res.output
    assert json.loads((arms / "t15" / "p50.json").read_text())["sampling"]["share_per_stratum"]["1"] == 0.435
    assert "sampling" not in json.loads((arms / "t15" / "uniform.json").read_text())
    for src in ARMS.glob("*/*.csv"):  # the curves the plots read
        (arms / src.parent.name / src.name).write_bytes(src.read_bytes())
    ablations.render_report(ablations.load_grid(GRID), arms, tmp_path / "out")
    t15 = _section((tmp_path / "out" / "README.md").read_text(), 15)
    assert "| Method | from | ODS | OIS | AP | positives asked | positives drawn |" in t15
    assert "| 50% positives | ours | 0.657 | 0.670 | 0.601 | 50% | 43.5% |" in t15
    assert "| uniform | ours | 0.641 | 0.665 | 0.602 | uniform | not recorded |" in t15
    assert "| (50%) | paper | 0.791 | 0.807 | 0.823 | — | — |" in t15


def test_backfill_reads_the_evaluation_settings_from_the_baseline_params(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An arm file collected before `evaluation` was recorded gets it from params.yaml at its baseline
    commit with its overrides applied, only when the budget read back the same way equals its own."""
    text = (REPO / "params.yaml").read_text()
    params = yaml.safe_load(text)
    shown: list[list[str]] = []

    def fake_run(argv, check=True):
        shown.append(list(argv))
        return type("Done", (), {"stdout": text, "returncode": 0})()

    monkeypatch.setattr(ablations.experiments, "run_command", fake_run)
    arms = tmp_path / "arms"
    (arms / "t1").mkdir(parents=True)
    grid = ablations.load_grid(GRID)
    arm = grid.tables[0].arms[0]
    doc = json.loads((ARMS / "t1" / "all-seg.json").read_text())
    del doc["evaluation"]
    ran = ablations.apply_overrides(params, arm.overrides, arm.key)
    doc["budget"] = ablations.budget_of(ran, arm.task, arm.key)
    (arms / "t1" / "all-seg.json").write_text(json.dumps(doc))

    res = _invoke("collect", "--backfill-evaluation", "--grid", str(GRID), "--arms", str(arms), "--tables", "t1")
    assert res.exit_code == 0, res.output
    assert shown == [["git", "show", f"{doc['baseline_rev']}:params.yaml"]]
    got = json.loads((arms / "t1" / "all-seg.json").read_text())["evaluation"]
    assert got == {**ablations.evaluation_of(ran, "x"), "from": f"params.yaml at {doc['baseline_rev'][:7]} with the overrides"}
    res = _invoke("collect", "--backfill-evaluation", "--grid", str(GRID), "--arms", str(arms), "--tables", "t1")
    assert res.exit_code == 0 and "has its evaluation settings; kept" in res.output

    doc["budget"]["iterations"] += 1  # not what these params give: refuse, write nothing
    (arms / "t1" / "all-seg.json").write_text(json.dumps(doc))
    res = _invoke("collect", "--backfill-evaluation", "--grid", str(GRID), "--arms", str(arms), "--tables", "t1")
    assert res.exit_code == 2
    assert "all-seg.json" in res.output and "differs from the file's in iterations" in res.output
    assert "evaluation" not in json.loads((arms / "t1" / "all-seg.json").read_text())


def test_render_marks_recomputed_drawn_shares(tmp_path: Path) -> None:
    """A drawn share recomputed by --backfill-sampling is shown with † and named under the table; one
    that is missing still reads "not recorded"."""
    import shutil

    arms = tmp_path / "arms"
    shutil.copytree(ARMS, arms)
    path = arms / "t15" / "p50.json"
    doc = json.loads(path.read_text())
    doc["sampling"] = {"share_per_stratum": {"0": 0.5652, "1": 0.4348}}
    doc["sampling_from"] = "recomputed: `pixelnet ablations collect --backfill-sampling` at params.yaml abc1234"
    path.write_text(json.dumps(doc))
    res = _invoke("render", "--grid", str(GRID), "--arms", str(arms), "--out", str(tmp_path / "out"),
                  "--notes", str(tmp_path / "none"))
    assert res.exit_code == 0, res.output
    text = (tmp_path / "out" / "README.md").read_text()
    assert "| 50% positives | ours | 0.657 | 0.670 | 0.601 | 50% | 43.5%† |" in text
    assert "Marked †: p50, collected before" in text and "Not recorded for uniform:" in text


def test_backfill_sampling_recomputes_the_plan_an_arm_trained_on(tmp_path: Path) -> None:
    """The sampling plan is a function of the params and the shards: recomputed at a real arm's params
    (params.yaml at its baseline commit, through git, with its overrides) it equals the summary the arm
    recorded when it ran; a recorded summary that differs fails the check and nothing is written; an arm
    file without one gets it, marked as recomputed."""
    src = REPO / "reports" / "ablations" / "arms" / "t11" / "n400-m5.json"
    doc = json.loads(src.read_text())
    if ablations.experiments.run_command(["git", "cat-file", "-e", f"{doc['baseline_rev']}^{{commit}}"],
                                         check=False).returncode != 0:
        pytest.skip(f"a shallow clone: no commit {doc['baseline_rev'][:7]} to read the arm's params from")
    arms, work = tmp_path / "arms", tmp_path / "work"
    (arms / "t11").mkdir(parents=True)
    path = arms / "t11" / "n400-m5.json"
    real_grid = str(REPO / "recipes" / "ablations" / "grid.yaml")
    args = ("collect", "--backfill-sampling", "--grid", real_grid, "--arms", str(arms), "--tables", "t11",
            "--work", str(work))

    path.write_text(json.dumps(doc))
    res = _invoke(*args, "--check-sampling")
    assert res.exit_code == 0, res.output
    assert "t11/n400-m5" in res.output and "equals the one it trained on" in res.output

    tampered = json.loads(json.dumps(doc))
    tampered["sampling"]["share_per_stratum"]["0"] += 0.01
    path.write_text(json.dumps(tampered))
    res = _invoke(*args, "--check-sampling")
    assert res.exit_code == 2 and "differ from the recorded ones for t11/n400-m5" in res.output
    assert json.loads(path.read_text()) == tampered

    lacking = {k: v for k, v in doc.items() if k != "sampling"}
    path.write_text(json.dumps(lacking))
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    got = json.loads(path.read_text())
    plan_keys = ("share_per_stratum", "rows", "draws", "images", "epochs", "pixels_per_image", "strategy")
    assert {k: got["sampling"][k] for k in plan_keys} == {k: doc["sampling"][k] for k in plan_keys}
    assert got["sampling_from"].startswith("recomputed") and doc["baseline_rev"][:7] in got["sampling_from"]
    res = _invoke(*args)
    assert res.exit_code == 0 and "has its sampling summary; kept" in res.output
    res = _invoke(*args, "--check-sampling")  # a recomputed summary is not checked against itself
    assert res.exit_code == 0 and "t11/n400-m5" not in res.output
    assert _invoke("collect", "--check-sampling", "--arms", str(arms)).exit_code == 2


# ----------------------------------------------------------------------------- arms that start from another model

def test_an_init_arm_runs_the_init_pipeline_whose_train_stage_depends_on_the_source_model() -> None:
    """A queued experiment gets the other task's model only as a dependency of the stage it runs (DVC
    checks out, orders and records only those): the init pipeline's train stage lists
    data/models/<source> and `pixelnet train` reads the same path from the arm's override."""
    pipeline = yaml.safe_load((REPO / "recipes" / "ablations" / "dvc.yaml").read_text())["stages"]
    grid = ablations.load_grid(REPO / "recipes" / "ablations" / "grid.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    init_arms = [a for t in grid.tables for a in t.all_arms if a.source]
    assert {(a.task, a.source) for a in init_arms} == {("segmentation", "normals"), ("normals", "segmentation")}
    for arm in init_arms:
        key = f"{arm.task}-from-{arm.source}"
        item = pipeline["train-init"]["foreach"][key]
        train = pipeline["train-init"]["do"]
        deps = [d.replace("${item.source}", item["source"]).replace("${item.task}", item["task"]) for d in train["deps"]]
        ran = ablations.apply_overrides(params, arm.overrides, arm.key)
        assert f"data/models/{arm.source}" in deps and f"data/samples/{arm.task}" in deps
        assert ran["tasks"][arm.task]["model"]["init"] == f"data/models/{arm.source}/model.pt"
        assert "init" not in ran["tasks"][arm.source].get("model", {})  # the source trains as the root's does
        assert "--out data/init/${key}" in train["cmd"] and "--model data/init/${key}/model.pt" in pipeline["evaluate-init"]["do"]["cmd"]
        assert pipeline["evaluate-init"]["foreach"][key] == item
        assert arm.target.endswith(f":evaluate-init@{key}") and arm.metrics_file == f"reports/init/{key}/metrics.json"
        assert shlex.join(ablations.queue_argv(arm)).endswith(f" {arm.target}")


def test_init_overrides_the_loader_refuses(tmp_path: Path) -> None:
    from pipeline.ablations.init import init_source

    assert init_source("segmentation", ("+tasks.segmentation.model.init=data/models/normals/model.pt",), "a") == "normals"
    assert init_source("segmentation", ("model.init=scratch", "+tasks.segmentation.model.init=imagenet"), "a") is None
    for overrides, match in [
        (("model.init=data/models/normals/model.pt",), "the source model's own too"),
        (("+tasks.normals.model.init=data/models/segmentation/model.pt",), "the arm trains segmentation, not normals"),
        (("+tasks.segmentation.model.init=pixelnet/zoo/x/model.pt",), r"data/models/<task>/model.pt"),
        (("+tasks.segmentation.model.init=data/models/segmentation/model.pt",), r"another task's root model"),
    ]:
        with pytest.raises(ablations.AblationError, match=match):
            init_source("segmentation", overrides, "t5.arms.x")
    bare = tmp_path / "dvc.yaml"  # a pipeline whose train stage forgot the dependency on the source model
    raw = yaml.safe_load((REPO / "recipes" / "ablations" / "dvc.yaml").read_text())
    raw["stages"]["train-init"]["do"]["deps"].remove("data/models/${item.source}")
    bare.write_text(yaml.safe_dump(raw))
    with pytest.raises(ablations.AblationError, match=r"train-init does not list data/models/\$\{item.source\}"):
        init_source("segmentation", ("+tasks.segmentation.model.init=data/models/normals/model.pt",), "x", bare)
    del raw["stages"]["evaluate-init"]["foreach"]["normals-from-segmentation"]
    bare.write_text(yaml.safe_dump(raw))
    with pytest.raises(ablations.AblationError, match="does not define normals-from-segmentation"):
        init_source("normals", ("+tasks.normals.model.init=data/models/segmentation/model.pt",), "x", bare)


def _has(entry: dict, name: str) -> bool:
    return any(r["revs"][0]["name"] == name for r in entry.get("experiments") or [])


def _grid_with(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(GRID.read_text())
    edit(raw)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_collect_reads_an_init_arm_from_the_init_pipeline_files(tmp_path: Path) -> None:
    """queue, collect and render on an arm that starts from another model: its command targets the
    init pipeline, its metrics and loss curve come from that pipeline's report folder."""
    def add(raw):
        raw["tables"][1]["rows"].append({"id": "geometry", "label": "Geometry", "ours": "from the normals model"})
        raw["tables"][1]["arms"].append({"name": "geometry-seg", "row": "geometry", "task": "segmentation",
                                         "set": ["+tasks.segmentation.model.init=data/models/normals/model.pt"]})
    grid_path = _grid_with(tmp_path, add)
    grid = ablations.load_grid(grid_path)
    arm = _arm(grid, "t2/geometry-seg")
    entries = _exp_entries()
    rng = json.loads(json.dumps(_experiment(entries, "abl-t1-all-seg")))
    tip = rng["revs"][0]
    tip["name"], tip["rev"] = arm.experiment, "9e0" * 13 + "9"
    data = tip["data"]
    data["params"]["params.yaml"]["data"] = ablations.apply_overrides(yaml.safe_load((REPO / "params.yaml").read_text()),
                                                                       arm.overrides, arm.key)
    data["metrics"] = {arm.metrics_file: data["metrics"]["reports/segmentation/metrics.json"]}
    next(e for e in entries if _has(e, "abl-t1-all-seg"))["experiments"].append(rng)
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(entries))
    res = _invoke("queue", "--grid", str(grid_path), "--arms", str(tmp_path / "none"), "--exp-json", str(exp),
                  "--params", str(REPO / "params.yaml"), "--dry-run", "--tables", "t2")
    assert res.exit_code == 0, res.output
    assert "t2/geometry-seg" in res.output and "finished" in res.output.split("t2/geometry-seg", 1)[1].splitlines()[0]
    arms = tmp_path / "arms"
    res = _invoke("collect", "--grid", str(grid_path), "--arms", str(arms), "--exp-json", str(exp), "--no-curves", "--tables", "t2")
    assert res.exit_code == 0, res.output
    doc = json.loads((arms / "t2" / "geometry-seg.json").read_text())
    assert doc["metrics_file"] == "reports/init/segmentation-from-normals/metrics.json"
    assert doc["target"] == "recipes/ablations/dvc.yaml:evaluate-init@segmentation-from-normals"
    ablations.render_report(grid, arms, tmp_path / "out")
    t2 = _section((tmp_path / "out" / "README.md").read_text(), 2)
    assert "| geometry-seg | Geometry | segmentation | 900 |" in t2
    assert "| from the normals model | ours | 63.1 | — |" in t2
    assert f"{shlex.join(ablations.queue_argv(arm))}" in t2


# ----------------------------------------------------------------------------- grid forms: exemptions, seed blocks, checks

def test_an_arm_exempt_from_an_equal_budget_key_is_named_not_called_unequal(tmp_path: Path) -> None:
    """Table 4's arm at equal compute trains longer on purpose: `exempt: {iterations: why}` keeps the
    other arms' check (still equal, or unequal when they differ) and says why that arm differs; the
    loader refuses an exemption from a key the table does not hold equal, and a key set twice."""
    def longer(raw):
        t2 = raw["tables"][1]
        t2["rows"].append({"id": "long", "label": "linear, longer", "ours": "linear, 5× the steps"})
        t2["arms"].append({"name": "long-seg", "row": "long", "task": "segmentation",
                           "set": ["model.head=linear", "train.lr=0.01"], "exempt": {"iterations": "five times the steps"}})
    grid = ablations.load_grid(_grid_with(tmp_path, longer))
    arms = _copy_arms(tmp_path)
    for name, miou in (("linear-bn-seg", 0.615), ("mlp-seg", 0.64), ("long-seg", 0.60)):
        _t2_arm(arms, grid, name, miou)
    doc = json.loads((arms / "t2" / "long-seg.json").read_text())
    doc["budget"]["iterations"] = 4500
    (arms / "t2" / "long-seg.json").write_text(json.dumps(doc))
    ablations.render_report(grid, arms, tmp_path / "out")
    t2 = _section((tmp_path / "out" / "README.md").read_text(), 2)
    assert ("* IoU (T) (3 arms): iterations 900, pixels_per_batch 20480; equal, except long-seg iterations 4500 on "
            "purpose (five times the steps).") in t2
    doc["budget"]["pixels_per_batch"] = 1  # a difference it is not exempt from is still reported
    (arms / "t2" / "long-seg.json").write_text(json.dumps(doc))
    ablations.render_report(grid, arms, tmp_path / "out")
    assert "**unequal**: pixels_per_batch: linear-bn-seg 20480, mlp-seg 20480, long-seg 1" in \
        _section((tmp_path / "out" / "README.md").read_text(), 2)

    def wrong_key(raw):
        raw["tables"][1]["arms"][0]["exempt"] = {"crop": "bigger windows"}
    with pytest.raises(ablations.AblationError, match=r"tables.t2.arms.linear-seg.exempt.crop: not a key of the table's"):
        ablations.load_grid(_grid_with(tmp_path, wrong_key))

    def twice(raw):
        raw["tables"][1]["arms"][0]["set"].append("train.iterations=450")
    with pytest.raises(ablations.AblationError, match=r"tables.t2.arms.linear-seg.set\[2\]: train.iterations=450 sets a key"):
        ablations.load_grid(_grid_with(tmp_path, twice))


def test_repeats_as_blocks_give_arms_different_seeds(tmp_path: Path) -> None:
    grid = ablations.load_grid(_grid_with(tmp_path, lambda raw: raw["tables"][2].update(
        repeats=[{"seeds": [1, 2], "arms": ["n100-m5"]}, {"seeds": [1], "arms": ["n400-m5", "n400-m1"]}])))
    assert [a.name for a in grid.tables[2].repeats] == ["n100-m5-s1", "n100-m5-s2", "n400-m5-s1", "n400-m1-s1"]
    with pytest.raises(ablations.AblationError, match=r"tables.t11.repeats\[1\].arms\[0\]: 'n100-m6' is not an arm"):
        ablations.load_grid(_grid_with(tmp_path, lambda raw: raw["tables"][2].update(
            repeats=[{"seeds": [1], "arms": ["n100-m5"]}, {"seeds": [2], "arms": ["n100-m6"]}])))
    with pytest.raises(ablations.AblationError, match=r"'n100-m5-s1' appears 2 times"):
        ablations.load_grid(_grid_with(tmp_path, lambda raw: raw["tables"][2].update(
            repeats=[{"seeds": [1], "arms": ["n100-m5"]}, {"seeds": [1], "arms": ["n100-m5"]}])))


def test_a_check_of_ours_renders_without_paper_rows(tmp_path: Path) -> None:
    """`paper_table: null`: a check the paper does not have (the norm check) is headed as one, shows
    our rows only, judges its claim without a paper verdict, and the page title counts only the
    paper's tables."""
    def check(raw):
        t11 = raw["tables"][2]
        t11["paper_table"] = None
        t11["title"] = "Norm check (fixture)"
        for row in t11["rows"]:
            row["paper"] = {}
    ablations.render_report(ablations.load_grid(_grid_with(tmp_path, check)), ARMS, tmp_path / "out")
    page = (tmp_path / "out" / "README.md").read_text()
    assert page.startswith("# Ablations: the paper's Tables 1, 2 and 15, ours beside the paper's")
    section = page.split("## Check: Norm check (fixture)", 1)[1].split("\n## ", 1)[0]
    assert "**The claim checked (not in the paper).**" in section and "| paper |" not in section
    assert "| 100 × 5 | ours | 69.0 | 57.1 |" in section
    claims = [line for line in section.splitlines() if line.startswith(("* ", "  * ")) and "ours" in line]
    assert any(line.startswith("* 5 images beat 1 (beats: 500 × 5 vs 2000 × 1): ours ") for line in claims)
    assert all("paper" not in line for line in claims)
    assert "\n| check | " in page and "![Check, " in section

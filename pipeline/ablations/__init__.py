"""`pixelnet ablations ...`: the paper's ablation tables as a grid of DVC experiments, and their report.

Each arm of each table (recipes/ablations/grid.yaml) is one `dvc exp run --queue` of the root
pipeline, so DVC's own queue runs the grid (`dvc queue start -j 1`; a kill loses at most the running
arm) and `dvc exp show` / `dvc plots diff` compare arms; nothing here trains. Experiments live in git
refs that do not travel with the branch, so `collect` copies each finished arm's overrides, budget
(read back from the experiment's own params through pipeline.params) and metrics into one small
committed JSON file, and `render` builds reports/ablations/README.md from those files alone: the
report regenerates from the repository, and a test checks it does.

  queue    one experiment per arm of the chosen tables that has no finished result yet
  collect  finished experiments (`dvc exp show --json`) → reports/ablations/arms/<table>/<arm>.json
  render   those files → reports/ablations/README.md and plots, each table ours beside the paper's

The package: `grid` (the tables and arms), `overrides` (`-S` overrides applied as DVC does; an arm's
budget and evaluation read back), `backfill` (what older arm files lack: evaluation settings, sampling
summaries), `init` (arms that start from another task's model, run through recipes/ablations/dvc.yaml),
`experiments` (DVC's queue and `collect`), `verdicts` (failed runs, means over seeds, noise-widened
tolerances, the verdicts), `report` (`render`), `listing` (what each arm ran with, and superseded arm
files), `plots` (its pictures) and `cli` (the Typer sub-app).
"""

from pipeline.ablations import experiments
from pipeline.ablations.cli import ablations_app
from pipeline.ablations.backfill import backfill_evaluation, backfill_sampling
from pipeline.ablations.experiments import (collect_arms, load_experiments, plan_queue, queue_argv,
                                            read_experiments)
from pipeline.ablations.grid import (ARMS, GRID, REPORT, AblationError, Grid, apply_overrides, budget_of, evaluation_of,
                                     load_grid, parse_override)
from pipeline.ablations.report import load_arm_files, render_report
from pipeline.ablations.verdicts import baseline_check, baseline_rule, judge, results, verdict

__all__ = ["ARMS", "GRID", "REPORT", "AblationError", "Grid", "ablations_app", "apply_overrides",
           "backfill_evaluation", "backfill_sampling", "baseline_check", "baseline_rule", "budget_of", "collect_arms",
           "evaluation_of", "experiments", "judge",
           "load_arm_files", "load_experiments", "load_grid", "parse_override", "plan_queue", "queue_argv",
           "read_experiments", "render_report", "results", "verdict"]

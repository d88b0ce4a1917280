"""`pixelnet ablations queue | collect | render`: the Typer sub-app over the grid, DVC's queue and
the report (see the package docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.ablations.grid import ARMS, AblationError, GRID, REPORT, load_grid
from pipeline.ablations.backfill import backfill_evaluation, backfill_sampling
from pipeline.ablations.experiments import collect_arms, load_experiments, plan_queue
from pipeline.ablations.report import render_report
from pipeline.ablations import experiments
from pipeline.errors import friendly

ablations_app = typer.Typer(
    help=("The paper's ablations (Tables 1, 2, 4, 11, 15) as DVC experiments: queue the grid's arms, collect "
          "finished ones into committed files, render reports/ablations/README.md from them."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

GridOpt = Annotated[Path, typer.Option("--grid", help="The grid of tables and arms.")]
ArmsOpt = Annotated[Path, typer.Option("--arms", help="Folder of the committed per-arm files (<table>/<arm>.json).")]
TablesOpt = Annotated[str | None, typer.Option("--tables", help="Comma-separated table ids, e.g. t1,t15 (default: all).")]
ExpJsonOpt = Annotated[Path | None, typer.Option("--exp-json", help="Read this saved `dvc exp show --json` output instead of running `dvc exp show --json -A`.")]


_friendly = friendly("pixelnet ablations", errors=(AblationError, FileNotFoundError))


@ablations_app.command()
@_friendly
def queue(
    tables: TablesOpt = None,
    bsds500: Annotated[Path | None, typer.Option("--bsds500", help="BSDS500 (BSR folder or archive) for the BSDS tables; passed to each arm as -S data.bsds500.source=<absolute path>.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print each arm's state and the commands; queue nothing.")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Queue even with uncommitted changes to tracked files (queued experiments carry them).")] = False,
    grid: GridOpt = GRID,
    arms: ArmsOpt = ARMS,
    params: Annotated[Path, typer.Option("--params", help="params.yaml every override is checked against.")] = Path("params.yaml"),
    exp_json: ExpJsonOpt = None,
) -> None:
    """Queue one `dvc exp run --queue` per arm without a finished result (committed arm file or finished
    experiment); failed arms and arms orphaned by a killed queue are removed from the queue first.
    Then: `uv run dvc queue start -j 1`."""
    g = load_grid(grid)
    if bsds500 is not None:
        if not bsds500.exists():
            raise AblationError(f"--bsds500 {bsds500}: no such file or folder")
        bsds500 = bsds500.resolve()
    lines, plans = plan_queue(g, g.select(tables), load_experiments(exp_json), arms, params, bsds500)
    if any(step[:3] == ["dvc", "queue", "kill"] for steps in plans for step in steps):
        # An arm read as running whose process is gone may only have finished between `dvc exp show` and
        # the process check (seen live: the arm was then queued a second time): read again before killing.
        lines, plans = plan_queue(g, g.select(tables), load_experiments(exp_json), arms, params, bsds500)
    typer.echo("\n".join(lines))
    if dry_run or not plans:
        typer.echo(f"{len(plans)} arm(s) to queue" + (" (dry run: nothing queued)" if dry_run else ""))
        return
    dirty = experiments.dirty_files()
    if dirty and not allow_dirty:
        raise AblationError(f"uncommitted changes to tracked files ({', '.join(dirty[:8])}): queued experiments would "
                            f"carry them; commit or stash them, or pass --allow-dirty")
    failed = 0
    for steps in plans:
        try:
            for step in steps:
                experiments.run_command(step)
        except AblationError as err:
            failed += 1
            typer.echo(f"  {err}", err=True)
    typer.echo(f"queued {len(plans) - failed} arm(s). Next: uv run dvc queue start -j 1; uv run dvc queue status; "
               f"then uv run pixelnet ablations collect && uv run pixelnet ablations render")
    if failed:
        raise AblationError(f"{failed} arm(s) could not be queued (above)")


@ablations_app.command()
@_friendly
def collect(
    tables: TablesOpt = None,
    grid: GridOpt = GRID,
    arms: ArmsOpt = ARMS,
    exp_json: ExpJsonOpt = None,
    curves: Annotated[bool, typer.Option("--curves/--no-curves", help="Also copy each arm's train_loss.csv (and edges' eval_bdry_thr.txt) from its experiment commit, for the plots.")] = True,
    backfill_evaluation_: Annotated[bool, typer.Option("--backfill-evaluation", help="Read no experiment: give the committed arm files that lack them their evaluation settings, from params.yaml at their baseline commit with their overrides (checked against their budget).")] = False,
    backfill_sampling_: Annotated[bool, typer.Option("--backfill-sampling", help="Read no experiment: give the committed arm files that lack it their sampling plan's summary, recomputed by the sample stage at their params (params.yaml at their baseline commit with their overrides; the dataset sharded into --work). Marked `sampling_from`.")] = False,
    check_sampling: Annotated[bool, typer.Option("--check-sampling", help="With --backfill-sampling: recompute the arms that kept their own summary instead, and fail unless each equals it. Writes nothing.")] = False,
    work: Annotated[Path, typer.Option("--work", help="Scratch folder for --backfill-sampling's shards and plans.")] = Path("data/backfill"),
) -> None:
    """Write reports/ablations/arms/<table>/<arm>.json for every finished arm: its overrides (checked
    against the experiment's params), budget, evaluation settings, metrics, sampling summary and
    experiment rev; a run no better than its task's trivial baseline is flagged FAILED. Commit them."""
    g = load_grid(grid)
    if backfill_evaluation_:
        typer.echo("\n".join(backfill_evaluation(g.select(tables), arms)))
        return
    if check_sampling and not backfill_sampling_:
        raise AblationError("--check-sampling goes with --backfill-sampling")
    if backfill_sampling_:
        typer.echo("\n".join(backfill_sampling(g.select(tables), arms, work, check=check_sampling)))
        return
    typer.echo("\n".join(collect_arms(g.select(tables), load_experiments(exp_json), arms, curves)))


@ablations_app.command()
@_friendly
def render(
    grid: GridOpt = GRID,
    arms: ArmsOpt = ARMS,
    out: Annotated[Path, typer.Option("--out", help="Folder for README.md and the plots.")] = REPORT,
    notes: Annotated[Path, typer.Option("--notes", help="Optional <table>.md files added under each table (what the results mean).")] = REPORT / "notes",
) -> None:
    """Render the report from the grid and the committed arm files only (never from DVC)."""
    written, warnings = render_report(load_grid(grid), arms, out, notes)
    for w in warnings:
        typer.echo(w, err=True)
    typer.echo("\n".join(str(p) for p in written))

"""The ablation grid (recipes/ablations/grid.yaml): tables, their columns, rows and arms, each arm's
`-S` overrides, target and files (pipeline.ablations.overrides applies overrides as DVC does and reads
an arm's budget back; pipeline.ablations.init, the arms that start from another task's model).

The grid file is read through typed dataclasses by the same checker as params.yaml
(`pipeline.typed`): an unknown key, a missing one, a wrong type or a value out of range raises an
error naming the file and the dotted key (``grid.yaml: tables.t1.arms.p4-seg.task: ...``)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.ablations.overrides import (AblationError, apply_overrides, budget_of, evaluation_of,  # noqa: F401
                                          evaluation_text, lookup, override_mismatch, parse_override, same_value)
from pipeline.ablations.init import INIT_PIPELINE, INIT_REPORTS, init_source, pair_key
from pipeline.typed import ParamsError, build
from pixelnet.tasks import TASKS

GRID = Path("recipes/ablations/grid.yaml")
ARMS = Path("reports/ablations/arms")
REPORT = Path("reports/ablations")
SOURCES = ("bsds500",)  # datasets whose local path `queue` passes in (never written into the grid)
# The budget keys a plot may put on an axis: (short name, axis label).
AXES = {"pixels_per_image": ("N", "N, pixels per image"), "images_per_batch": ("M", "M, images a step"),
        "pixels_per_batch": ("N × M", "N × M, pixels a step"), "iterations": ("steps", "training steps"),
        "crop": ("crop", "window side, px"), "positive_fraction": ("positives", "share of positives")}
BUDGET_KEYS = ("iterations", "lr_steps", "pixels_per_image", "images_per_batch", "pixels_per_batch", "crop",
               "strategy", "positive_fraction", "head", "head_batch_norm", "dataset")
SEED_KEYS = ("train.seed", "sampling.seed")  # the model's initialisation; the plan (windows, pixels, order)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# ----------------------------------------------------------------------------- the grid file, as written

@dataclass(frozen=True)
class Column:
    id: str
    label: str
    task: str
    metric: str
    better: str                  # higher | lower
    scale: float = 1.0
    fmt: str = ".3f"
    tol: float = 0.0             # preset tolerance in the displayed unit

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(TASKS)}")
        if self.better not in ("higher", "lower"):
            raise ValueError(f"better: must be higher or lower, got {self.better!r}")
        if not re.fullmatch(r"\.\d+f", self.fmt):
            raise ValueError(f"fmt: must look like .1f, got {self.fmt!r}")
        if self.tol < 0:
            raise ValueError(f"tol: must be >= 0, got {self.tol}")

    def show(self, value: float | None) -> str:
        return "—" if value is None else format(value, self.fmt)

    def rounded(self, value: float) -> float:
        """The value as displayed, so a verdict never contradicts the printed numbers."""
        digits = int(self.fmt.strip(".f") or 0)
        return round(value, digits)


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    ours: str = ""
    paper: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ArmSpec:
    """One arm as the grid writes it: the table row it fills, its task and its own `-S` overrides."""

    name: str
    row: str
    task: str
    set: tuple[str, ...]
    columns: tuple[str, ...] = ()  # default: every column of its task
    # Budget keys of the table's equal_budget this arm departs from on purpose -> why (e.g. Table 4's
    # arm at equal compute trains longer); the report names them instead of calling the budget unequal.
    exempt: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(TASKS)}")
        if any(not why.strip() for why in self.exempt.values()):
            raise ValueError("exempt: each key needs its reason")


@dataclass(frozen=True)
class Repeats:
    """`repeats: {seeds: [1, 2], arms: [name, ...]}`: the named arms again under each seed (a list of
    such blocks gives different arms different seeds)."""

    seeds: tuple[int, ...]
    arms: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.seeds or any(s < 1 for s in self.seeds) or len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"seeds: distinct integers >= 1 (0 is params.yaml's, the arms' own), got {list(self.seeds)!r}")


@dataclass(frozen=True)
class Claim:
    kind: str                    # beats: rows[0] better than rows[1]; matches: equal within tolerance
    rows: tuple[str, str]
    text: str
    reason_if_disagrees: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("beats", "matches"):
            raise ValueError(f"kind: must be beats or matches, got {self.kind!r}")

    @property
    def reason(self) -> str:
        return self.reason_if_disagrees


@dataclass(frozen=True)
class PlotSpec:
    id: str
    x: str                       # a budget key of AXES
    columns: tuple[str, ...]
    title: str = ""
    series: str | None = None    # a budget key of AXES: one line per value
    logx: bool = False

    def __post_init__(self) -> None:
        if self.x not in AXES or self.series not in (None, *AXES):
            raise ValueError(f"x / series must be numeric budget keys ({', '.join(AXES)}), got {self.x!r} / {self.series!r}")


@dataclass(frozen=True)
class Drawn:
    stratum: str | int           # a key of sampling.json's share_per_stratum ("1": edge pixels)
    label: str                   # what the report calls it, e.g. "positives"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stratum", str(self.stratum))  # JSON keys are text


@dataclass(frozen=True)
class TableSpec:
    """One table as the grid writes it; its lists of items are read by the item dataclasses above."""

    id: str
    paper_table: int | None      # null: a check of ours, not a table of the paper
    title: str
    claim: str
    base: tuple[str, ...]
    columns: tuple[dict[str, Any], ...]
    rows: tuple[dict[str, Any], ...]
    arms: tuple[dict[str, Any], ...]
    setting: str = ""
    equal_budget: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    repeats: dict[str, Any] | tuple[dict[str, Any], ...] | None = None
    claims: tuple[dict[str, Any], ...] = ()
    plots: tuple[dict[str, Any], ...] = ()
    drawn: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not set(self.equal_budget) <= set(BUDGET_KEYS) or not set(self.requires) <= set(SOURCES):
            raise ValueError(f"equal_budget must name budget keys ({', '.join(BUDGET_KEYS)}) and requires sources "
                             f"({', '.join(SOURCES)}), got {list(self.equal_budget)} / {list(self.requires)}")


@dataclass(frozen=True)
class GridSpec:
    prefix: str                  # experiment names are <prefix>-<table>-<arm>
    tables: tuple[dict[str, Any], ...]


# ----------------------------------------------------------------------------- the grid, checked

@dataclass(frozen=True)
class Arm:
    table: str
    name: str
    row: str
    task: str
    overrides: tuple[str, ...]   # the table's base, then the arm's own, exactly as passed to -S
    columns: tuple[str, ...]
    experiment: str
    seed: int | None = None      # a repeat of arm `of` with train.seed = sampling.seed = seed
    of: str | None = None
    source: str | None = None    # the task whose root model its training starts from (pipeline.ablations.init)
    exempt: tuple[tuple[str, str], ...] = ()  # (budget key, why) it departs from the table's equal_budget

    @property
    def key(self) -> str:
        return f"{self.table}/{self.name}"

    @property
    def target(self) -> str:
        """The stage `dvc exp run` reproduces: the root pipeline's evaluate@<task>, or for an arm that
        starts from another task's model the init pipeline's, which depends on that model."""
        if self.source:
            return f"{INIT_PIPELINE}:evaluate-init@{pair_key(self.task, self.source)}"
        return f"evaluate@{self.task}"

    @property
    def report_dir(self) -> str:
        """Where its evaluate stage writes metrics.json, and its train stage the loss log."""
        return f"{INIT_REPORTS}/{pair_key(self.task, self.source)}" if self.source else f"reports/{self.task}"

    @property
    def metrics_file(self) -> str:
        return f"{self.report_dir}/metrics.json"

    @property
    def loss_file(self) -> str:
        return f"{self.report_dir}/train_loss.csv"

    @property
    def sampling_file(self) -> str:
        """The sample stage's summary of the arm's plan (a DVC metrics file: `dvc exp show` has it; the
    root pipeline's sample stage, for an init arm too)."""
        return f"reports/{self.task}/sampling.json"


@dataclass(frozen=True)
class Table:
    id: str
    paper_table: int | None      # None: a check of ours, not in the paper
    title: str
    claim: str
    setting: str
    requires: tuple[str, ...]
    equal_budget: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    arms: tuple[Arm, ...]        # one per row and task: the table's numbers and verdicts
    claims: tuple[Claim, ...]
    plots: tuple[PlotSpec, ...]
    repeats: tuple[Arm, ...] = ()  # arms again under other seeds: the measured seed spread
    drawn: Drawn | None = None   # show this stratum's share of the drawn pixels beside the share asked

    @property
    def all_arms(self) -> tuple[Arm, ...]:
        """Every experiment of the table: what `queue` and `collect` handle."""
        return self.arms + self.repeats

    def column(self, cid: str) -> Column:
        return next(c for c in self.columns if c.id == cid)

    @property
    def name(self) -> str:
        """How the report names it: `Table 4`, or `Check` for one of ours the paper does not have."""
        return f"Table {self.paper_table}" if self.paper_table is not None else "Check"


@dataclass(frozen=True)
class Grid:
    path: Path
    prefix: str
    tables: tuple[Table, ...]

    def select(self, ids: str | None) -> tuple[Table, ...]:
        if not ids:
            return self.tables
        wanted = [s.strip() for s in ids.split(",") if s.strip()]
        known = [t.id for t in self.tables]
        bad = [w for w in wanted if w not in known]
        if bad or not wanted:
            raise AblationError(f"--tables: unknown {bad or 'empty list'}; {self.path} has {', '.join(known)}")
        return tuple(t for t in self.tables if t.id in wanted)


def _ids(items: list, where: str) -> None:
    seen = Counter(items)
    for item, n in seen.items():
        if not isinstance(item, str) or not _NAME.match(item):
            raise AblationError(f"{where}: {item!r} is not a lower-case name (letters, digits, '-')")
        if n > 1:
            raise AblationError(f"{where}: {item!r} appears {n} times")


def _key(parent: str, raw: Any, i: int, name_field: str) -> str:
    """The dotted key of item i of a list: parent.<its name> when it has one, else parent[i]."""
    name = raw.get(name_field) if isinstance(raw, dict) else None
    return f"{parent}.{name}" if isinstance(name, str) and name else f"{parent}[{i}]"


def _items(cls: type, raws: tuple, parent: str, name_field: str | None = None) -> list:
    """Each mapping of a list read as `cls`, its errors named by the item's name (or index)."""
    return [build(cls, raw, _key(parent, raw, i, name_field) if name_field else f"{parent}[{i}]")
            for i, raw in enumerate(raws)]


def _rows(spec: TableSpec, columns: list[Column], where: str) -> list[Row]:
    rows = _items(Row, spec.rows, f"{where}.rows", "id")
    for row in rows:
        for cid in row.paper:
            if cid not in {c.id for c in columns}:
                raise AblationError(f"{where}.rows.{row.id}.paper.{cid}: not a column of {spec.id}")
    _ids([r.id for r in rows], f"{where}.rows")
    return rows


def _arms(spec: TableSpec, columns: list[Column], rows: list[Row], prefix: str, where: str) -> list[Arm]:
    """The table's arms: each fills its columns of one row, and no two fill the same cell."""
    col_ids = {c.id: c for c in columns}
    row_ids = {r.id for r in rows}
    arms, filled = [], set()
    for a in _items(ArmSpec, spec.arms, f"{where}.arms", "name"):
        w = f"{where}.arms.{a.name}"
        if a.row not in row_ids:
            raise AblationError(f"{w}.row: {a.row!r} is not a row of {spec.id} ({', '.join(sorted(row_ids))})")
        own = [parse_override(text, f"{w}.set[{j}]")[0] for j, text in enumerate(a.set)]
        keys = Counter(own + [parse_override(text, where)[0] for text in spec.base])
        for j, text in enumerate(a.set):
            if keys[own[j]] > 1:
                raise AblationError(f"{w}.set[{j}]: {text} sets a key its table's base (or the arm) sets too; DVC "
                                    f"would apply both and the record could not say which won: set it once")
        for key in a.exempt:
            if key not in spec.equal_budget:
                raise AblationError(f"{w}.exempt.{key}: not a key of the table's equal_budget "
                                    f"({', '.join(spec.equal_budget) or 'none'}): nothing to be exempt from")
        source = init_source(a.task, spec.base + a.set, w)
        cols = a.columns or tuple(c.id for c in columns if c.task == a.task)
        for cid in cols:
            if cid not in col_ids or col_ids[cid].task != a.task:
                raise AblationError(f"{w}.columns: {cid!r} is not a {a.task} column of {spec.id}")
            if (a.row, cid) in filled:
                raise AblationError(f"{w}.columns: row {a.row!r} column {cid!r} is already filled by another arm")
            filled.add((a.row, cid))
        arms.append(Arm(spec.id, a.name, a.row, a.task, spec.base + a.set, cols, f"{prefix}-{spec.id}-{a.name}",
                        source=source, exempt=tuple(a.exempt.items())))
    _ids([a.name for a in arms], f"{where}.arms")
    return arms


def _repeats(raw: dict | tuple | None, arms: list[Arm], where: str) -> list[Arm]:
    """Each arm named under `repeats` again per seed, named <arm>-s<seed>, with its overrides plus
    train.seed and sampling.seed = seed. The arms themselves run with params.yaml's seeds, so a
    repeat's seed must be new (not 0, the default) and each seed appears once per arm (a list of
    blocks naming one arm twice with the same seed is refused as a duplicate name)."""
    if raw is None:
        return []
    blocks = [(raw, where)] if isinstance(raw, dict) else [(b, f"{where}[{i}]") for i, b in enumerate(raw)]
    by_name = {a.name: a for a in arms}
    out = []
    for block, w in blocks:
        spec = build(Repeats, block, w)
        for i, name in enumerate(spec.arms):
            arm = by_name.get(name)
            if arm is None:
                raise AblationError(f"{w}.arms[{i}]: {name!r} is not an arm of this table ({', '.join(by_name)})")
            own = [o for o in arm.overrides if o.lstrip("+").split("=", 1)[0] in SEED_KEYS]
            if own:
                raise AblationError(f"{w}.arms[{i}]: {name!r} sets {own[0]} itself; a repeat varies the seeds")
            for seed in spec.seeds:
                out.append(replace(arm, name=f"{name}-s{seed}", experiment=f"{arm.experiment}-s{seed}",
                                   overrides=arm.overrides + tuple(f"{k}={seed}" for k in SEED_KEYS), seed=seed,
                                   of=name))
    return out


def _claims_and_plots(spec: TableSpec, columns: list[Column], rows: list[Row], where: str) -> tuple[list, list]:
    """Claims name two rows of the table; plots only its columns."""
    row_ids, col_ids = {r.id for r in rows}, {c.id for c in columns}
    claims = _items(Claim, spec.claims, f"{where}.claims")
    for i, claim in enumerate(claims):
        if not set(claim.rows) <= row_ids:
            raise AblationError(f"{where}.claims[{i}].rows: {list(claim.rows)!r} are not two rows of {spec.id}")
    plots = _items(PlotSpec, spec.plots, f"{where}.plots", "id")
    for plot in plots:
        if not set(plot.columns) <= col_ids:
            raise AblationError(f"{where}.plots.{plot.id}.columns: {list(plot.columns)!r} are not all columns of {spec.id}")
    return claims, plots


def _table(raw: dict, prefix: str, where: str) -> Table:
    spec = build(TableSpec, raw, where)
    for i, text in enumerate(spec.base):
        parse_override(text, f"{where}.base[{i}]")
    columns = _items(Column, spec.columns, f"{where}.columns", "id")
    _ids([c.id for c in columns], f"{where}.columns")
    rows = _rows(spec, columns, where)
    arms = _arms(spec, columns, rows, prefix, where)
    repeats = _repeats(spec.repeats, arms, f"{where}.repeats")
    _ids([a.name for a in arms + repeats], f"{where}.arms and repeats")
    claims, plots = _claims_and_plots(spec, columns, rows, where)
    drawn = None if spec.drawn is None else build(Drawn, spec.drawn, f"{where}.drawn")
    return Table(spec.id, spec.paper_table, spec.title, spec.claim, spec.setting, spec.requires, spec.equal_budget,
                 tuple(columns), tuple(rows), tuple(arms), tuple(claims), tuple(plots), tuple(repeats), drawn)


def load_grid(path: Path = GRID) -> Grid:
    """The grid file, checked: every name, task, row, column and override form; errors name the file
    and the dotted key."""
    path = Path(path)
    if not path.is_file():
        raise AblationError(f"{path}: grid file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise AblationError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise AblationError(f"{path}: expected a mapping with prefix and tables")
    try:
        spec = build(GridSpec, raw, "")
        _ids([spec.prefix], "prefix")
        if not spec.tables:
            raise AblationError("tables: empty")
        tables = tuple(_table(t, spec.prefix, _key("tables", t, i, "id")) for i, t in enumerate(spec.tables))
        _ids([t.id for t in tables], "tables")
    except (ParamsError, AblationError) as err:
        raise AblationError(f"{path}: {err}") from None
    return Grid(path, spec.prefix, tables)

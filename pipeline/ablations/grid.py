"""The ablation grid (recipes/ablations/grid.yaml): tables, their columns, rows and arms, each arm's
`-S` overrides; applying overrides to params as DVC does, and reading an arm's budget back.

The grid file is read through typed dataclasses by the same checker as params.yaml
(`pipeline.typed`): an unknown key, a missing one, a wrong type or a value out of range raises an
error naming the file and the dotted key (``grid.yaml: tables.t1.arms.p4-seg.task: ...``)."""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class AblationError(ValueError):
    """A grid, experiment or arm-file problem; the message names the file, arm or dotted key."""


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

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(TASKS)}")


@dataclass(frozen=True)
class Repeats:
    """`repeats: {seeds: [1, 2], arms: [name, ...]}`: the named arms again under each seed."""

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
    paper_table: int
    title: str
    claim: str
    base: tuple[str, ...]
    columns: tuple[dict[str, Any], ...]
    rows: tuple[dict[str, Any], ...]
    arms: tuple[dict[str, Any], ...]
    setting: str = ""
    equal_budget: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    repeats: dict[str, Any] | None = None
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

    @property
    def key(self) -> str:
        return f"{self.table}/{self.name}"

    @property
    def target(self) -> str:
        return f"evaluate@{self.task}"

    @property
    def metrics_file(self) -> str:
        return f"reports/{self.task}/metrics.json"

    @property
    def sampling_file(self) -> str:
        """The sample stage's summary of the arm's plan (a DVC metrics file: `dvc exp show` has it)."""
        return f"reports/{self.task}/sampling.json"


@dataclass(frozen=True)
class Table:
    id: str
    paper_table: int
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
        for j, text in enumerate(a.set):
            parse_override(text, f"{w}.set[{j}]")
        cols = a.columns or tuple(c.id for c in columns if c.task == a.task)
        for cid in cols:
            if cid not in col_ids or col_ids[cid].task != a.task:
                raise AblationError(f"{w}.columns: {cid!r} is not a {a.task} column of {spec.id}")
            if (a.row, cid) in filled:
                raise AblationError(f"{w}.columns: row {a.row!r} column {cid!r} is already filled by another arm")
            filled.add((a.row, cid))
        arms.append(Arm(spec.id, a.name, a.row, a.task, spec.base + a.set, cols, f"{prefix}-{spec.id}-{a.name}"))
    _ids([a.name for a in arms], f"{where}.arms")
    return arms


def _repeats(raw: dict | None, arms: list[Arm], where: str) -> list[Arm]:
    """Each arm named under `repeats` again per seed, named <arm>-s<seed>, with its overrides plus
    train.seed and sampling.seed = seed. The arms themselves run with params.yaml's seeds, so a
    repeat's seed must be new (not 0, the default) and each seed appears once."""
    if raw is None:
        return []
    spec = build(Repeats, raw, where)
    by_name = {a.name: a for a in arms}
    out = []
    for i, name in enumerate(spec.arms):
        arm = by_name.get(name)
        if arm is None:
            raise AblationError(f"{where}.arms[{i}]: {name!r} is not an arm of this table ({', '.join(by_name)})")
        own = [o for o in arm.overrides if o.lstrip("+").split("=", 1)[0] in SEED_KEYS]
        if own:
            raise AblationError(f"{where}.arms[{i}]: {name!r} sets {own[0]} itself; a repeat varies the seeds")
        for seed in spec.seeds:
            out.append(Arm(arm.table, f"{name}-s{seed}", arm.row, arm.task,
                           arm.overrides + tuple(f"{k}={seed}" for k in SEED_KEYS), arm.columns,
                           f"{arm.experiment}-s{seed}", seed, name))
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


# ----------------------------------------------------------------------------- overrides and budgets

def parse_override(text: str, where: str) -> tuple[str, Any]:
    """`key=value` as DVC's -S takes it -> (dotted key, value read as YAML). A leading `+` (DVC: add a
    new key) is accepted; deletions (`~key`) are not, since the report could not show what they did."""
    if not isinstance(text, str) or "=" not in text or text.startswith("~"):
        raise AblationError(f"{where}: expected an override `key=value`, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.lstrip("+")
    if not key or any(not part for part in key.split(".")) or ":" in key:
        raise AblationError(f"{where}: bad key in {text!r} (dotted keys of params.yaml only)")
    if raw == "":
        raise AblationError(f"{where}: empty value in {text!r}")
    value = yaml.safe_load(raw)
    if isinstance(value, str) and _NUMBER.match(value):  # YAML 1.1 reads 1e-3 as text; DVC reads a number
        value = float(value)
    return key, value


def lookup(params: dict, key: str) -> tuple[bool, Any]:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def apply_overrides(params: dict, overrides: tuple[str, ...], where: str) -> dict:
    """params with the overrides applied, as DVC would write params.yaml; a missing key is an error
    (DVC refuses it too without a leading `+`)."""
    out = copy.deepcopy(params)
    for text in overrides:
        key, value = parse_override(text, where)
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                if not text.startswith("+"):
                    raise AblationError(f"{where}: -S {text}: params.yaml has no key {key}")
                node[part] = {}
            node = node[part]
        if parts[-1] not in node and not text.startswith("+"):
            raise AblationError(f"{where}: -S {text}: params.yaml has no key {key}")
        node[parts[-1]] = value
    return out


def override_mismatch(arm: Arm, params: dict | None) -> str | None:
    """None when the experiment's params carry every override of the arm, else what differs."""
    if not isinstance(params, dict):
        return "the experiment has no params.yaml in `dvc exp show`"
    for text in arm.overrides:
        key, want = parse_override(text, arm.key)
        found, have = lookup(params, key)
        if not found:
            return f"params.yaml has no key {key} (expected {text})"
        if not same_value(want, have):
            return f"params.yaml key {key} is {have!r}, expected {want!r} (from -S {text})"
    return None


def _parsed(params: dict, where: str):
    """params through the one params loader (pipeline.params), its errors named for the arm."""
    from pipeline.params import ParamsError, parse_params

    try:
        return parse_params(copy.deepcopy(params))
    except ParamsError as err:
        raise AblationError(f"{where}: params are not valid: {err}") from None


def evaluation_of(params: dict, where: str) -> dict[str, Any]:
    """How one arm was scored: the test-time scales its predictions are averaged over, and whether
    the horizontally flipped image is averaged in too."""
    e = _parsed(params, where).evaluate
    return {"scales": [float(s) for s in e.scales], "flip": bool(e.flip)}


def evaluation_text(ev: dict | None) -> str:
    """Evaluation settings in a few words: `0.8, 1.0, 1.25 + flip`, `1.0, no flip`."""
    if not ev:
        return "not recorded"
    scales = ", ".join(f"{s:.1f}" if s == int(s) else format(s, "g") for s in ev["scales"])
    return scales + (" + flip" if ev["flip"] else ", no flip")


def budget_of(params: dict, task: str, where: str) -> dict[str, Any]:
    """What one arm trained with, read through the one params loader (task overrides applied)."""
    p = _parsed(params, where)
    if task not in p.tasks:
        raise AblationError(f"{where}: tasks.{task} is not configured in its params")
    s, train = p.sampling[task], p.task_train[task]
    return {"iterations": train.iterations, "lr_steps": list(train.lr_steps), "pixels_per_image": s.pixels_per_image,
            "images_per_batch": p.images_per_batch, "pixels_per_batch": s.pixels_per_image * p.images_per_batch,
            "crop": p.augment[task].crop, "strategy": s.strategy, "positive_fraction": s.positive_fraction,
            "head": p.task_model[task].head, "head_batch_norm": p.task_model[task].head_batch_norm,
            "dataset": p.tasks[task].dataset}

"""The ablation grid (recipes/ablations/grid.yaml): tables, their columns, rows and arms, each arm's
`-S` overrides; applying overrides to params as DVC does, and reading an arm's budget back."""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GRID = Path("recipes/ablations/grid.yaml")
ARMS = Path("reports/ablations/arms")
REPORT = Path("reports/ablations")
TASKS = ("edges", "normals", "segmentation")
SOURCES = ("bsds500",)  # datasets whose local path `queue` passes in (never written into the grid)
_AXIS = {"pixels_per_image": ("N", "N, pixels per image"), "images_per_batch": ("M", "M, images a step"),
         "pixels_per_batch": ("N × M", "N × M, pixels a step"), "iterations": ("steps", "training steps"),
         "crop": ("crop", "window side, px"), "positive_fraction": ("positives", "share of positives")}
BUDGET_KEYS = ("iterations", "lr_steps", "pixels_per_image", "images_per_batch", "pixels_per_batch", "crop",
               "strategy", "positive_fraction", "head", "head_batch_norm", "dataset")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class AblationError(ValueError):
    """A grid, experiment or arm-file problem; the message names the file, arm or dotted key."""


# ----------------------------------------------------------------------------- the grid

@dataclass(frozen=True)
class Column:
    id: str
    label: str
    task: str
    metric: str
    scale: float
    fmt: str
    better: str
    tol: float

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
    ours: str
    paper: dict[str, float]


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
class Claim:
    kind: str                    # beats: rows[0] better than rows[1]; matches: equal within tolerance
    rows: tuple[str, str]
    text: str
    reason: str


@dataclass(frozen=True)
class PlotSpec:
    id: str
    title: str
    x: str
    series: str | None
    columns: tuple[str, ...]
    logx: bool


@dataclass(frozen=True)
class Drawn:
    stratum: str                 # a key of sampling.json's share_per_stratum ("1": edge pixels)
    label: str                   # what the report calls it, e.g. "positives"


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


def _need(mapping: Any, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise AblationError(f"{where}.{key}: missing")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise AblationError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _ids(items: list, where: str) -> None:
    seen = Counter(items)
    for item, n in seen.items():
        if not isinstance(item, str) or not _NAME.match(item):
            raise AblationError(f"{where}: {item!r} is not a lower-case name (letters, digits, '-')")
        if n > 1:
            raise AblationError(f"{where}: {item!r} appears {n} times")


def _table(raw: dict, prefix: str, where: str) -> Table:
    tid = _need(raw, "id", where)
    where = f"{where.rsplit('[', 1)[0]}.{tid}"
    base = tuple(_need(raw, "base", where, list))
    for i, text in enumerate(base):
        parse_override(text, f"{where}.base[{i}]")
    columns = []
    for i, c in enumerate(_need(raw, "columns", where, list)):
        w = f"{where}.columns[{i}]"
        col = Column(_need(c, "id", w), _need(c, "label", w), _need(c, "task", w), _need(c, "metric", w),
                     float(c.get("scale", 1)), str(c.get("fmt", ".3f")), _need(c, "better", w), float(c.get("tol", 0)))
        if col.task not in TASKS:
            raise AblationError(f"{w}.task: {col.task!r} is not one of {', '.join(TASKS)}")
        if col.better not in ("higher", "lower"):
            raise AblationError(f"{w}.better: must be higher or lower, got {col.better!r}")
        if not re.fullmatch(r"\.\d+f", col.fmt) or col.tol < 0:
            raise AblationError(f"{w}: fmt must look like .1f and tol be >= 0, got {col.fmt!r}, {col.tol}")
        columns.append(col)
    _ids([c.id for c in columns], f"{where}.columns")
    col_ids = {c.id: c for c in columns}
    rows = []
    for i, r in enumerate(_need(raw, "rows", where, list)):
        w = f"{where}.rows[{i}]"
        paper = r.get("paper") or {}
        for cid, value in paper.items():
            if cid not in col_ids or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AblationError(f"{w}.paper.{cid}: not a column of {tid} with a number ({value!r})")
        rows.append(Row(_need(r, "id", w), _need(r, "label", w), str(r.get("ours", "")),
                        {k: float(v) for k, v in paper.items()}))
    _ids([r.id for r in rows], f"{where}.rows")
    row_ids = {r.id for r in rows}
    arms, filled = [], set()
    for i, a in enumerate(_need(raw, "arms", where, list)):
        w = f"{where}.arms[{i}]"
        name, task, row = _need(a, "name", w), _need(a, "task", w), _need(a, "row", w)
        w = f"{where}.arms.{name}"
        if task not in TASKS:
            raise AblationError(f"{w}.task: {task!r} is not one of {', '.join(TASKS)}")
        if row not in row_ids:
            raise AblationError(f"{w}.row: {row!r} is not a row of {tid} ({', '.join(sorted(row_ids))})")
        own = tuple(_need(a, "set", w, list))
        for j, text in enumerate(own):
            parse_override(text, f"{w}.set[{j}]")
        cols = tuple(a.get("columns") or [c.id for c in columns if c.task == task])
        for cid in cols:
            if cid not in col_ids or col_ids[cid].task != task:
                raise AblationError(f"{w}.columns: {cid!r} is not a {task} column of {tid}")
            if (row, cid) in filled:
                raise AblationError(f"{w}.columns: row {row!r} column {cid!r} is already filled by another arm")
            filled.add((row, cid))
        arms.append(Arm(tid, name, row, task, base + own, cols, f"{prefix}-{tid}-{name}"))
    _ids([a.name for a in arms], f"{where}.arms")
    repeats = _repeats(raw.get("repeats"), arms, f"{where}.repeats")
    _ids([a.name for a in arms + repeats], f"{where}.arms and repeats")
    claims = []
    for i, c in enumerate(raw.get("claims") or []):
        w = f"{where}.claims[{i}]"
        kind, pair = _need(c, "kind", w), _need(c, "rows", w, list)
        if kind not in ("beats", "matches") or len(pair) != 2 or not set(pair) <= row_ids:
            raise AblationError(f"{w}: kind must be beats or matches and rows two rows of {tid}, got {kind!r} {pair!r}")
        claims.append(Claim(kind, (pair[0], pair[1]), _need(c, "text", w), str(c.get("reason_if_disagrees", ""))))
    plots = []
    for i, p in enumerate(raw.get("plots") or []):
        w = f"{where}.plots[{i}]"
        spec = PlotSpec(_need(p, "id", w), str(p.get("title", "")), _need(p, "x", w), p.get("series"),
                        tuple(_need(p, "columns", w, list)), bool(p.get("logx", False)))
        if spec.x not in _AXIS or spec.series not in (None, *_AXIS) or not set(spec.columns) <= set(col_ids):
            raise AblationError(f"{w}: x / series must be numeric budget keys ({', '.join(_AXIS)}) and columns of {tid}")
        plots.append(spec)
    drawn = None
    if raw.get("drawn") is not None:
        w = f"{where}.drawn"
        drawn = Drawn(str(_need(raw["drawn"], "stratum", w, (str, int))), _need(raw["drawn"], "label", w))
    equal = tuple(raw.get("equal_budget") or ())
    requires = tuple(raw.get("requires") or ())
    if not set(equal) <= set(BUDGET_KEYS) or not set(requires) <= set(SOURCES):
        raise AblationError(f"{where}: equal_budget must name budget keys ({', '.join(BUDGET_KEYS)}) and "
                            f"requires sources ({', '.join(SOURCES)}), got {list(equal)} / {list(requires)}")
    return Table(tid, int(_need(raw, "paper_table", where, int)), _need(raw, "title", where), _need(raw, "claim", where),
                 str(raw.get("setting", "")), requires, equal, tuple(columns), tuple(rows), tuple(arms), tuple(claims),
                 tuple(plots), tuple(repeats), drawn)


SEED_KEYS = ("train.seed", "sampling.seed")  # the model's initialisation; the plan (windows, pixels, order)


def _repeats(raw: Any, arms: list[Arm], where: str) -> list[Arm]:
    """`repeats: {seeds: [1, 2], arms: [name, ...]}` -> each named arm again, named <arm>-s<seed>, with
    its overrides plus train.seed and sampling.seed = seed. The arms themselves run with params.yaml's
    seeds, so a repeat's seed must be new (not 0, the default) and each seed appears once."""
    if raw is None:
        return []
    seeds, names = _need(raw, "seeds", where, list), _need(raw, "arms", where, list)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in seeds) or len(set(seeds)) < len(seeds):
        raise AblationError(f"{where}.seeds: distinct integers >= 1 (0 is params.yaml's, the arms' own), got {seeds!r}")
    by_name = {a.name: a for a in arms}
    out = []
    for i, name in enumerate(names):
        arm = by_name.get(name)
        if arm is None:
            raise AblationError(f"{where}.arms[{i}]: {name!r} is not an arm of this table ({', '.join(by_name)})")
        own = [o for o in arm.overrides if o.lstrip("+").split("=", 1)[0] in SEED_KEYS]
        if own:
            raise AblationError(f"{where}.arms[{i}]: {name!r} sets {own[0]} itself; a repeat varies the seeds")
        for seed in seeds:
            out.append(Arm(arm.table, f"{name}-s{seed}", arm.row, arm.task,
                           arm.overrides + tuple(f"{k}={seed}" for k in SEED_KEYS), arm.columns,
                           f"{arm.experiment}-s{seed}", seed, name))
    return out


def load_grid(path: Path = GRID) -> Grid:
    """The grid file, checked: every name, task, row, column and override form; errors name the dotted key."""
    path = Path(path)
    if not path.is_file():
        raise AblationError(f"{path}: grid file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise AblationError(f"{path}: not valid YAML ({err})") from err
    prefix = _need(raw, "prefix", str(path))
    _ids([prefix], f"{path}: prefix")
    tables = tuple(_table(t, prefix, f"{path}: tables[{i}]") for i, t in enumerate(_need(raw, "tables", str(path), list)))
    _ids([t.id for t in tables], f"{path}: tables")
    if not tables:
        raise AblationError(f"{path}: tables: empty")
    return Grid(path, prefix, tables)


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

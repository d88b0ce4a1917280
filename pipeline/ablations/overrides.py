"""`-S` overrides as DVC reads them, applied to params.yaml, compared with an experiment's params,
and what an arm trained and was scored with (its budget and evaluation settings), read back through
the one params loader (pipeline.params)."""

from __future__ import annotations

import copy
import math
import re
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pipeline.ablations.grid import Arm

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class AblationError(ValueError):
    """A grid, experiment or arm-file problem; the message names the file, arm or dotted key."""


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

"""Typed, validated dataclasses from loaded YAML mappings: the one checker behind params.yaml
(`pipeline.params`) and the ablation grid (`pipeline.ablations.grid`).

A key the dataclass does not declare, a value of the wrong type or one its `__post_init__` rejects
raises ParamsError whose message starts with the dotted key (``tasks.edges.consensus: ...``). No
torch here: the grid is read by commands that must start fast.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ParamsError(ValueError):
    """A params.yaml problem; the message starts with the dotted key."""


def dotted(prefix: str, key: str) -> str:
    """`prefix.key`, or `key` at the top level of a file (empty prefix)."""
    return f"{prefix}.{key}" if prefix else key


def typecheck(value: Any, hint: Any, key: str) -> Any:
    """Return value converted to `hint` (lists to tuples, ints to floats) or raise naming `key`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return typecheck(value, arm, key)
            except ParamsError:
                continue
        raise ParamsError(f"{key}: expected {hint}, got {value!r}")
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(typecheck(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(typecheck(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        if isinstance(value, dict):
            return {typecheck(k, key_hint, f"{key}.{k}"): typecheck(v, value_hint, f"{key}.{k}") for k, v in value.items()}
    else:
        raise TypeError(f"unsupported type {hint} for {key}")
    name = getattr(hint, "__name__", str(hint))
    raise ParamsError(f"{key}: expected {name}, got {value!r} ({type(value).__name__})")


def typed_fields(cls: type, mapping: Any, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Typed keyword arguments for `cls` from `mapping`, rejecting unknown keys."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ParamsError(f"{prefix}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in names:
            raise ParamsError(f"{dotted(prefix, key)}: unknown key; allowed under {prefix or 'the top level'}: "
                              f"{', '.join(names)}")
        out[key] = typecheck(value, hints[key], dotted(prefix, key))
    return out


def make(cls: type, kwargs: dict[str, Any], prefix: str) -> Any:
    """Construct, turning the dataclass's own range checks into ParamsError with the dotted key."""
    try:
        return cls(**kwargs)
    except ValueError as err:
        message = str(err)
        section = prefix.split(".")[-1]
        if not message.startswith(prefix):
            # Range checks name "section.field" or a bare field; make it the full dotted key.
            if message.startswith(section + "."):
                message = prefix + message[len(section):]
            else:
                message = f"{prefix}.{message}"
        raise ParamsError(message) from err


def build(cls: type, mapping: Any, prefix: str) -> Any:
    """`cls` from `mapping`: unknown keys, missing required keys, types and range checks all raise
    ParamsError naming the dotted key."""
    kwargs = typed_fields(cls, mapping, prefix)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ParamsError(f"{dotted(prefix, f.name)}: missing")
    return make(cls, kwargs, prefix)

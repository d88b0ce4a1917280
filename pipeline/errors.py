"""Expected failures at the command line: one line on stderr naming the command, exit code 2, no
traceback. Every Typer command of the stage layer wears `friendly`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

# ParamsError, ShardError and AblationError are ValueErrors: caught without importing their modules,
# which import torch (seconds) before `predict` has checked its inputs.
EXPECTED: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError, RuntimeError, FloatingPointError)


def friendly(program: str = "pixelnet", errors: tuple[type[BaseException], ...] = EXPECTED) -> Callable:
    """Decorate a command so that `errors` become `<program> <command>: error: <message>` on stderr and
    exit code 2; the command's name is its function's, with underscores as dashes (`evaluate_edges`
    is evaluate-edges, a trailing underscore dropped)."""

    def decorate(fn: Callable) -> Callable:
        command = fn.__name__.rstrip("_").replace("_", "-")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except errors as err:
                message = err.args[0] if isinstance(err, KeyError) and err.args else err
                typer.echo(f"{program} {command}: error: {message}", err=True)
                raise typer.Exit(2) from None

        return wrapper

    return decorate

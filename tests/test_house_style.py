"""House style that code can check (../shared/DESIGN.md): no function over 100 lines outside Numba
kernels, and a library that reads no YAML and knows nothing of DVC or Typer. Source is parsed, not
imported: nothing here needs torch."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 100
# Known offenders, each being split by whoever owns its file: `<path>::<qualified name>`.
PENDING: set[str] = set()


def _sources(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text(), filename=str(path))


def _is_numba_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated with numba.njit / numba.jit (called or not, by any import name)."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("njit", "jit"):
            return True
    return False


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its qualified name (Class.method, outer.inner)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement of the body (its docstring included) to the last."""
    return node.end_lineno - node.body[0].lineno + 1


def test_body_lines_counts_from_the_first_statement_to_the_last() -> None:
    tree = ast.parse("@decorator\ndef f(\n    a,\n):\n    '''doc'''\n\n    return a\n")
    (name, node), = _functions(tree)
    assert name == "f" and body_lines(node) == 3


def test_no_function_over_100_lines_outside_numba_kernels() -> None:
    long = []
    for path, tree in _sources("pixelnet", "pipeline"):
        for name, node in _functions(tree):
            n = body_lines(node)
            if n > MAX_LINES and not _is_numba_kernel(node) and f"{path}::{name}" not in PENDING:
                long.append(f"{path}:{node.lineno} {name}: {n} lines")
    assert not long, f"functions over {MAX_LINES} lines (split them into named steps):\n" + "\n".join(long)


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_the_library_reads_no_yaml_and_knows_no_dvc_or_typer() -> None:
    """params.yaml, dvc.yaml and the command line belong to the stage layer (pipeline/); pixelnet/
    functions take typed arguments."""
    found = [f"{path}:{line} imports {module}"
             for path, tree in _sources("pixelnet")
             for line, module in _imports(tree)
             if module.split(".")[0] in ("yaml", "ruamel", "dvc", "typer")]
    assert not found, "\n".join(found)

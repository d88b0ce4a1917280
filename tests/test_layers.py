"""Imports run downward only: stage layer -> batches -> tasks -> data -> model/sampling (DESIGN.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

ABOVE_DATA = ("pixelnet.tasks", "pixelnet.batches")  # what pixelnet/data must never import


def _imported(path: Path) -> set[str]:
    """Every module an import statement of `path` names, at any depth (lazy imports in functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_data_module_imports_a_task_or_the_batches():
    bad = {f"{p.relative_to(REPO)}: {name}" for p in sorted((REPO / "pixelnet" / "data").rglob("*.py"))
           for name in _imported(p) if any(name == up or name.startswith(up + ".") for up in ABOVE_DATA)}
    assert not bad, sorted(bad)


def test_importing_every_data_module_loads_no_task():
    """The same, through every module the data modules import in turn."""
    modules = sorted(f"pixelnet.data.{p.stem}" for p in (REPO / "pixelnet" / "data").glob("*.py") if p.stem != "__init__")
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + (
        f"print(sorted(m for m in sys.modules if m.startswith({ABOVE_DATA!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"], done.stdout

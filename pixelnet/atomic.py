"""Atomic outputs: build a folder under a temporary name, swap it in only when it is complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Yield an empty temp folder beside out_dir; on success it replaces out_dir, on failure it vanishes.

    The previous out_dir stays in place until the new one is complete, and is put back if the swap
    itself fails, so an interrupted stage never leaves half an output behind.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            try:
                os.replace(tmp, out_dir)
            except OSError:
                os.replace(old / out_dir.name, out_dir)  # put the previous folder back
                old.rmdir()
                raise
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():  # only when something failed before the rename
            shutil.rmtree(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file under a temporary name beside it, then rename: readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

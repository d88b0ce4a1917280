"""Atomic outputs: write a file or build a folder under a temporary name, rename it into place only when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
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


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside `path` to write; it is renamed to `path` only if the block succeeds.

    The temp name is unique per call (two writers never share it) and ends in ".tmp", so writers
    that infer a format from the suffix must be told the format (PIL: format="PNG"; NumPy: pass an
    open file, or np.save appends ".npy").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would stay on the renamed file; the writer creates this one as usual.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # only when something failed before the rename
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file under a temporary name beside it, then rename: readers never see half of it."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, payload: dict) -> None:
    """`payload` as indented JSON with a final newline, written atomically."""
    import json

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def write_png(path: Path, array) -> None:
    """An (H, W) or (H, W, 3) uint8 array as a PNG, written atomically."""
    from PIL import Image

    with atomic_file(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_npy(path: Path, array) -> None:
    """An array as a .npy file, written atomically."""
    import numpy as np

    with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
        np.save(f, array)

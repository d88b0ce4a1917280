"""Damaged archives for the fetch tests of every dataset."""

from __future__ import annotations

import tarfile
from pathlib import Path


def cut_before_last_member(archive: Path) -> Path:
    """An uncompressed tar cut where its last member's header begins, as an interrupted copy stops on
    a block boundary: every member before it still lists, so only the archive's size tells."""
    with tarfile.open(archive) as tar:
        offset = tar.getmembers()[-1].offset
    archive.write_bytes(archive.read_bytes()[:offset])
    return archive

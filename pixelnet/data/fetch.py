"""Bring a published file in: stream a URL to disk with a progress bar, and verify its checksums.

Shared by every dataset that is published as an archive. A checksum that is known is verified; the
SHA-256 is always computed and returned, so the caller can record what it actually received (and a
user can pin it) when the publisher gave none.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

ALGORITHMS = ("sha256", "md5")
_HEX_LENGTH = {"sha256": 64, "md5": 32}
_URL = re.compile(r"^(https?|ftp|file)://", re.IGNORECASE)


class FetchError(ValueError):
    """A download failed or a file does not match its checksum; the message names URL or file."""


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


def check_digest(algorithm: str, value: str | None) -> None:
    """Raise ValueError (naming the algorithm) unless value is None or a hex digest of the right length."""
    if value is None:
        return
    n = _HEX_LENGTH[algorithm]
    if not re.fullmatch(f"[0-9a-f]{{{n}}}", value):
        raise ValueError(f"{algorithm} must be {n} lower-case hex digits or null, got {value!r}")


def digests(path: Path, algorithms: tuple[str, ...] = ALGORITHMS) -> dict[str, str]:
    """Hex digests of a file, read once."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            for h in hashers.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashers.items()}


def verify(path: Path, expected: dict[str, str | None], source: str) -> dict[str, str]:
    """Check `path` against every known digest in `expected` (None = not published).

    Returns all computed digests; raises FetchError naming `source`, the algorithm, the expected and
    the actual digest on a mismatch.
    """
    actual = digests(path, tuple(a for a in ALGORITHMS if a == "sha256" or expected.get(a)))
    for algorithm, want in expected.items():
        if want and actual[algorithm] != want:
            raise FetchError(
                f"{source}: {algorithm} mismatch: expected {want}, got {actual[algorithm]} "
                f"(a corrupt or different file; delete it or fix the checksum in params.yaml)"
            )
    return actual


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Stream `url` into `dest` (written under a temporary name, renamed when complete)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as fh:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name or url, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    fh.write(block)
                    bar.update(len(block))
        if total is not None and part.stat().st_size != total:
            raise FetchError(f"{url}: download truncated ({part.stat().st_size} of {total} bytes)")
        os.replace(part, dest)
    except (urllib.error.URLError, OSError) as err:
        raise FetchError(f"{url}: download failed ({getattr(err, 'reason', err)})") from err
    finally:
        part.unlink(missing_ok=True)
    return dest

"""Bring a published source in and read it: one home for every dataset published as files.

* `bring`: a URL (streamed to disk with a progress bar), a local copy of the file, or its extracted
  folder; checksums verified where they apply. A checksum that is known is verified; the SHA-256
  is always computed and returned, so the caller can record what it actually received (and a user
  can pin it) when the publisher gave none.
* `Archive` (`open_archive`): the files of a tar or zip archive or of a folder, by relative POSIX
  name, read alike. A tar cut short is an error naming it, not a set of silently missing members.
* `write_meta` / `read_meta`: the raw folder's dataset.json, written and checked the same way by
  every source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

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


# ----------------------------------------------------------------------------- bringing a source in

DOWNLOADS = ".downloads"  # inside the install's temporary folder; `remove_downloads` clears it


def bring(location: str, workdir: Path, field: str, expected: dict[str, str | None], progress: bool,
          what: str = "archive or folder", file_origin: str = "archive", find: str | None = None) -> tuple[Path, dict]:
    """(path, provenance) of a source given as a URL, a local file or a folder.

    A URL is downloaded to workdir/.downloads/<field>-<name> and verified against `expected`, as is
    a local file. A folder is the extracted archive, taken as it is (no published digest applies to
    it), or, with `find`, searched for the one file of that name, which is verified like a file.
    Provenance: {"origin": "url" | file_origin | "folder", "location", and the digests computed}.
    A missing path is a FileNotFoundError naming it and `what` it should be.
    """
    if is_url(location):
        name = Path(urlparse(location).path).name or "download"
        path = download(location, Path(workdir) / DOWNLOADS / f"{field}-{name}", progress)
        return path, {"origin": "url", "location": location, **verify(path, expected, location)}
    path = Path(location)
    origin = file_origin
    if path.is_dir():
        if find is None:
            return path, {"origin": "folder", "location": str(path)}
        found = sorted(path.rglob(find))
        if len(found) != 1:
            raise FileNotFoundError(f"{path}: expected one {find} inside, found {len(found) or 'none'}")
        path, origin = found[0], "folder"
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    return path, {"origin": origin, "location": str(path), **verify(path, expected, str(path))}


def bring_archive(location: str, workdir: Path, field: str, expected: dict[str, str | None], progress: bool,
                  what: str = "archive or folder") -> tuple[Archive, dict]:
    """`bring` an archive or its extracted folder, then open it (`open_archive`): (archive, provenance)."""
    path, provenance = bring(location, workdir, field, expected, progress, what=what)
    return open_archive(path, location if is_url(location) else None), provenance


def remove_downloads(workdir: Path) -> None:
    """Delete what `bring` downloaded into workdir: read, and no part of the raw folder."""
    shutil.rmtree(Path(workdir) / DOWNLOADS, ignore_errors=True)


# ----------------------------------------------------------------------------- reading an archive

_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")  # gzip, bzip2, xz: a cut stream fails while listing
_TAR_ERRORS = (tarfile.TarError, OSError, EOFError)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError)


class Archive:
    """The files of a tar or zip archive, or of a folder, by relative POSIX name (`names`, sorted).

    Errors name `where` (the path, or the URL a download came from) and the member.
    """

    def __init__(self, path: Path, where: str | None = None) -> None:
        self.path = Path(path)
        self.where = where or str(self.path)
        self.tar: tarfile.TarFile | None = None
        self.zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self._order = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())
        elif _is_zip(self.path):
            try:
                self.zip = zipfile.ZipFile(self.path)
                infos = [i for i in self.zip.infolist() if not i.is_dir()]
            except _ZIP_ERRORS as err:
                raise ValueError(f"{self.where}: not a readable zip archive; truncated or corrupt? ({err})") from err
            self._members = {i.filename.removeprefix("./"): i for i in infos}
            self._order = list(self._members)
        else:
            try:
                self.tar = tarfile.open(self.path, "r:*")
            except _TAR_ERRORS as err:
                raise ValueError(f"{self.where}: not a readable tar archive ({err})") from err
            try:
                members = self.tar.getmembers()
                self._members = {m.name.removeprefix("./"): m for m in members if m.isfile()}
                self._check_complete(members)
            except _TAR_ERRORS as err:
                self.tar.close()
                raise ValueError(f"{self.where}: truncated or corrupt tar archive ({err})") from err
            except ValueError:
                self.tar.close()
                raise
            self._order = list(self._members)  # archive order: a .tgz is then read front to back
        self.names = sorted(self._order)

    def _check_complete(self, members: list[tarfile.TarInfo]) -> None:
        """An uncompressed tar cut short keeps the headers it still has; make that an error, not missing files."""
        with open(self.path, "rb") as fh:
            if fh.read(6).startswith(_COMPRESSED):
                return  # the decompressor already failed on a truncated stream while listing members
        end = max((m.offset_data + -(-m.size // 512) * 512 for m in members if not m.issparse()), default=0)
        size = self.path.stat().st_size
        if size < end + 1024:  # member data, then the two zero blocks that end every tar
            raise ValueError(f"{self.where}: truncated tar archive ({size} bytes; its members and end marker "
                             f"need {end + 1024})")

    def read(self, name: str) -> bytes:
        """The bytes of one member."""
        if self.tar is None and self.zip is None:
            return (self.path / name).read_bytes()
        try:
            if self.zip is not None:
                return self.zip.read(self._members[name])
            return self.tar.extractfile(self._members[name]).read()
        except (*_TAR_ERRORS, *_ZIP_ERRORS) as err:
            raise ValueError(f"{self.where}: cannot read {name} ({err})") from err

    def open(self, name: str) -> IO[bytes]:
        """One member as a binary stream (for members too large to hold twice); errors while reading
        it are the caller's to name."""
        if self.tar is None and self.zip is None:
            return open(self.path / name, "rb")
        try:
            if self.zip is not None:
                return self.zip.open(self._members[name])
            return self.tar.extractfile(self._members[name])
        except (*_TAR_ERRORS, *_ZIP_ERRORS) as err:
            raise ValueError(f"{self.where}/{name}: unreadable member ({err})") from err

    def copy(self, selected: dict[str, Path], desc: str, progress: bool) -> dict[str, str]:
        """Copy name -> destination in archive order; {name: sha256 of the bytes copied}."""
        out: dict[str, str] = {}
        for name in tqdm([n for n in self._order if n in selected], desc=desc, unit="file", disable=not progress):
            data = self.read(name)
            selected[name].parent.mkdir(parents=True, exist_ok=True)
            selected[name].write_bytes(data)
            out[name] = hashlib.sha256(data).hexdigest()
        return out

    def close(self) -> None:
        for handle in (self.tar, self.zip):
            if handle is not None:
                handle.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_zip(path: Path) -> bool:
    """A zip by its first bytes (a local header, or the end record of an empty one), or by its name."""
    with open(path, "rb") as fh:
        return fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06") or path.suffix.lower() == ".zip"


def open_archive(path: Path, where: str | None = None) -> Archive:
    """A folder, or a tar (any compression) or zip archive, as an `Archive`; errors name `where` or the path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{where or path}: no such archive or folder")
    return Archive(path, where)


# ----------------------------------------------------------------------------- the raw folder's dataset.json

META = "dataset.json"


def write_meta(folder: Path, meta: dict) -> None:
    """folder/dataset.json: what `install` returns, as every source writes it."""
    (Path(folder) / META).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(raw_dir: Path, dataset: str, check: Callable[[dict], object] | None = None) -> dict:
    """raw_dir/dataset.json, written by the download stage of `dataset`; `check(meta)` raises KeyError,
    TypeError or ValueError on a missing or ill-typed entry, reported as a malformed file."""
    path = Path(raw_dir) / META
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the download stage for {dataset})")
    try:
        meta = json.loads(path.read_text())
        if check is not None:
            check(meta)
    except (KeyError, TypeError, ValueError) as err:  # ValueError: also bad JSON and bad UTF-8
        raise ValueError(f"{path}: malformed ({err})") from err
    return meta

"""NYU Depth v2 (Silberman et al., 2012) with the surface normals of Ladický et al. (2014) as Records.

The normals task of PixelNet (and MarrRevisited before it) trains and tests on the 1,449 labelled
NYUDv2 frames, split 795 / 654 by ``splits.mat``, against the normals of Ladický, Zeisl and
Pollefeys (ECCV 2014), ignoring pixels without a Kinect depth reading. Three published files:

``nyu_depth_v2_labeled.mat``  MATLAB v7.3, i.e. HDF5 behind a 512-byte MATLAB header. ``images``
    is MATLAB's [480 640 3 1449] uint8 array; HDF5 stores it column-major, so h5py sees it as
    (1449, 3, 640, 480) = (image, channel, column, row) and one image is ``images[i].transpose(2,
    1, 0)`` -> (480, 640, 3) RGB. Nothing else in the file is read (``labels`` hold the 894 raw
    NYU classes, which need a class mapping this module does not ship: this dataset carries
    normals only, so ``classes`` is empty and Records have no ``label``).
``splits.mat``  MATLAB v5 with ``trainNdxs`` (795 x 1) and ``testNdxs`` (654 x 1), 1-based indices
    into the 1,449 images.
Ladický's normals  The original ``https://www.inf.ethz.ch/personal/ladickyl/nyu_normals_gt.zip``
    (named in MarrRevisited's README) is gone since about 2022, and third-party loaders disagree on
    what was inside it (per-image PNGs in ``nyu_normals_gt/{train,test}/`` in one, .mat files in
    another), so it is not read here. The replacement is FAIR's self-supervision benchmark mirror
    ``https://dl.fbaipublicfiles.com/fair_self_supervision_benchmark/nyuv2_surfacenormal_metadata.zip``
    (about 0.84 GB; its README credits the normals to Lubor Ladický). Inside it:
    ``surfacenormal_metadata/all_normals.pklz`` (read here), ``train_SN40.json`` /
    ``test_SN40.json`` (records like ``{"img": "000001_rgb.jpg", ...}``) and ``vocab40.mat``
    (k-means normal clusters), which are not needed.

``all_normals.pklz`` is a gzip-compressed pickle of a dict, built by FAIR's
``convert_matlab_normals_to_numpy_files`` from Ladický's per-image .mat files (``nx``, ``ny``,
``nz``, ``depthValid``, each 480 x 640, already row-major as scipy loads a v5 .mat):

* ``all_normals``  (1449, 480, 640, 3) float32, the stacked (nx, ny, nz); unit length where valid;
* ``all_valid_depth_masks``  (1449, 480, 640) float32, > 0 where the Kinect measured depth (FAIR's
  evaluator and MarrRevisited's ``eval_pred_sn.m`` score only those pixels);
* ``all_filenames``  the .mat names without extension, 6-digit 1-based NYU indices ("000001").

Assumed, not confirmed from a copy of the file (none could be fetched): those three keys, shapes
and the 6-digit names (they are what FAIR's converter writes and what its loader, its evaluator,
and two independent extraction scripts read); and the axis convention, which is kept as published.
The only axis fact relied on is that x (channel 0) is horizontal in the image: FAIR's own flip
code negates it, as our flip augmentation does. A file that differs fails with a message naming
it and the key. The pickle is read by an unpickler that accepts numpy arrays and nothing else,
so a tampered download cannot run code. It holds about 7 GB of arrays in memory while installing.
The Eigen & Fergus normals (``normals_gt.tgz``) are a different ground truth and are not read.

``install`` writes everything ``read_split`` needs (raw folder)::

    <raw>/images/<split>/<NNNN>.png    (480, 640, 3) uint8 RGB, lossless from the .mat (1-based NNNN)
    <raw>/normals/<split>/<NNNN>.npy   (480, 640, 3) float32: unit where valid, (0, 0, 0) elsewhere
    <raw>/raw_frames/list.txt, ...     optional extra training pairs (see below)
    <raw>/dataset.json                 counts, origin and digests of every input

``dataset.json``: ``counts`` is how many Records ``read_split`` yields per split (train includes the
raw frames), ``labeled_counts`` the labelled images alone, ``raw_frames`` the extras, ``normals``
the valid pixels kept and those dropped (marked valid but zero or non-finite), ``sources`` where
each input came from with the SHA-256 (and MD5) of what was received.

Extra raw-frame pairs (``raw_frames``, a folder or a tar archive): any number of images
``<name>.jpg|.jpeg|.png`` (RGB, any size, nested folders allowed), each beside
``<name>_normal.npy``: a (H, W, 3) float array of the image's size, a normal per pixel in the same
axis convention, with (0, 0, 0) or a non-finite value where invalid; other vectors are scaled to
unit length. They are added to the train split after the labelled images, in name order.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image
from tqdm import tqdm

from pixelnet.atomic import atomic_dir
from pixelnet.data import fetch
from pixelnet.data.images import decode_rgb
from pixelnet.data.shards import Record
from pixelnet.metrics.dense_io import read_normals

NYUD_NAME = "nyud"
SPLITS = ("train", "test")
CLASSES: tuple[str, ...] = ()  # normals only: the 894 NYU labels need a class mapping we do not ship

LABELED_NAME = "nyu_depth_v2_labeled.mat"
LABELED_URL = "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
LABELED_MD5 = "520609c519fba3ba5ac58c8fefcc3530"
LABELED_SHA256 = "2d724b0c0ab358aa1ce5df855e5bd14a2279ab7202efe22f32a30d612dcb86aa"  # 2,972,037,809 bytes

SPLITS_NAME = "splits.mat"
SPLITS_URL = "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat"
SPLITS_MD5 = "08e3c3aea27130ac7c01ffd739a4535f"
SPLITS_SHA256 = "6e081404491a8bfba2f066beaa9713ef6046f9007aa5f799f2a350506a580cee"

NORMALS_DEAD_URL = "https://www.inf.ethz.ch/personal/ladickyl/nyu_normals_gt.zip"  # gone since ~2022
NORMALS_URL = "https://dl.fbaipublicfiles.com/fair_self_supervision_benchmark/nyuv2_surfacenormal_metadata.zip"
NORMALS_MD5 = "e51209f4960b73c014d5fdeccc24b669"  # one source (a third-party prep script, 841,839,365 bytes)
NORMALS_MEMBER = "surfacenormal_metadata/all_normals.pklz"

_IMAGE = re.compile(r"^(.+)\.(jpg|jpeg|png)$", re.IGNORECASE)
_NORMAL_SUFFIX = "_normal.npy"


@dataclass(frozen=True)
class NyudConfig:
    labeled: str | None = None              # local .mat (or a folder holding it); None = download labeled_url
    labeled_url: str = LABELED_URL
    labeled_md5: str | None = LABELED_MD5   # verified when set
    labeled_sha256: str | None = LABELED_SHA256
    splits: str | None = None               # local splits.mat (or a folder holding it); None = splits_url
    splits_url: str = SPLITS_URL
    splits_md5: str | None = SPLITS_MD5
    splits_sha256: str | None = SPLITS_SHA256
    normals: str | None = None              # the FAIR zip, its extracted folder, or all_normals.pklz; None = normals_url
    normals_url: str = NORMALS_URL
    normals_sha256: str | None = None       # of the zip; none is published
    normals_md5: str | None = NORMALS_MD5   # of the zip; one source
    raw_frames: str | None = None           # folder or tar of extra training pairs (module doc); None = none
    limit: int = 0                          # at most this many images per split (and raw frames); 0 = all

    def __post_init__(self) -> None:
        for name in ("labeled", "splits", "normals", "raw_frames"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name}: expected a non-empty path or URL string, or null, got {value!r}")
        for name in ("labeled_url", "splits_url", "normals_url"):
            value = getattr(self, name)
            if not isinstance(value, str) or not fetch.is_url(value):
                raise ValueError(f"{name}: expected an http(s)/ftp/file URL, got {value!r}")
        for name in ("labeled_md5", "labeled_sha256", "splits_md5", "splits_sha256", "normals_md5", "normals_sha256"):
            algorithm, value = name.rsplit("_", 1)[1], getattr(self, name)
            try:
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{algorithm} must be a hex string or null, got {value!r}")
                fetch.check_digest(algorithm, value)
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"limit: must be an integer >= 0, got {self.limit!r}")


# ----------------------------------------------------------------------------- bringing files in


def _bring_file(location: str, name: str, workdir: Path, expected: dict[str, str | None], progress: bool) -> tuple[Path, dict]:
    """A published file from a URL (downloaded into workdir), a local copy, or a folder holding it; verified."""
    field = name.rsplit(".", 1)[0]
    return fetch.bring(location, workdir, field, expected, progress, what="file or folder", file_origin="file", find=name)


def read_splits(path: Path) -> dict[str, list[int]]:
    """{"train": [...], "test": [...]}: sorted 1-based image indices from a splits.mat."""
    try:
        mat = scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, ValueError, OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a readable MATLAB file ({err})") from err
    out: dict[str, list[int]] = {}
    for split in SPLITS:
        key = f"{split}Ndxs"
        if key not in mat:
            raise ValueError(f"{path}: no {key} (expected splits.mat with trainNdxs and testNdxs)")
        values = np.asarray(mat[key], dtype=np.float64).ravel()  # (K,) from a K x 1 column
        if values.size == 0 or not np.all(values == np.round(values)) or values.min() < 1:
            raise ValueError(f"{path}: {key} must hold 1-based integer indices")
        indices = values.astype(np.int64)
        if len(set(indices.tolist())) != len(indices):
            raise ValueError(f"{path}: {key} repeats an index")
        out[split] = sorted(indices.tolist())
    if set(out["train"]) & set(out["test"]):
        raise ValueError(f"{path}: trainNdxs and testNdxs share {len(set(out['train']) & set(out['test']))} indices")
    return out


class _Labeled:
    """The RGB images of nyu_depth_v2_labeled.mat, read one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.file = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"{path}: not a readable MATLAB v7.3 (HDF5) file; truncated or corrupt? ({err})") from err
        try:
            images = self.file["images"]
        except KeyError:
            self.file.close()
            raise ValueError(f"{path}: no 'images' dataset (expected the layout of {LABELED_NAME})") from None
        if not isinstance(images, h5py.Dataset) or images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
            self.file.close()
            raise ValueError(f"{path}: 'images' must be (N, 3, W, H) uint8 as MATLAB v7.3 stores it, got "
                             f"{getattr(images, 'shape', '?')} {getattr(images, 'dtype', '?')}")
        self.images = images
        self.count = images.shape[0]

    def image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the 1-based NYU index."""
        try:
            chw = self.images[index - 1]  # (3, W, H): MATLAB's column-major [H W 3 N] as HDF5 shows it
        except (OSError, ValueError) as err:
            raise ValueError(f"{self.path}: cannot read image {index} ({err}); truncated or corrupt?") from err
        return np.ascontiguousarray(chw.transpose(2, 1, 0))  # (H, W, 3)

    def __enter__(self) -> _Labeled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


# ----------------------------------------------------------------------------- normals


class _Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allowed numpy reconstructors."""


class _ArraysOnly(pickle.Unpickler):
    """Unpickle plain containers and numpy arrays; refuse every other global (no code from a download)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # how a protocol-2 pickle from Python 3 spells bytes: str -> bytes, nothing more
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self._ALLOWED:
            raise _Refused(f"refusing to load {module}.{name} (only numpy arrays are expected)")
        module = module.replace("numpy.core.", "numpy._core.")  # numpy 2 moved numpy.core to numpy._core
        return getattr(importlib.import_module(module), name)


def _load_pklz(stream, where: str) -> dict:
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
            data = _ArraysOnly(gz, encoding="latin1").load()  # latin1: also reads a Python 2 pickle's arrays
    except _Refused as err:
        raise ValueError(f"{where}: not FAIR's normals pickle: {err}") from err
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error, zipfile.BadZipFile, ValueError, AttributeError) as err:
        raise ValueError(f"{where}: unreadable gzip pickle; truncated or corrupt? ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a dict, got {type(data).__name__}")
    return data


def _open_normals(location: str, workdir: Path, expected: dict[str, str | None], progress: bool) -> tuple[dict, dict]:
    """FAIR's all_normals.pklz from its zip (URL or file), an extracted folder, or the .pklz itself."""
    if not fetch.is_url(location):
        path = Path(location)
        if path.is_dir():
            found = sorted(path.rglob("all_normals.pklz"))
            if len(found) != 1:
                raise FileNotFoundError(f"{path}: expected one all_normals.pklz inside (the extracted "
                                        f"{Path(NORMALS_URL).name}), found {len(found) or 'none'}")
            with open(found[0], "rb") as fh:
                data = _load_pklz(fh, str(found[0]))
            digest = fetch.digests(found[0], ("sha256",))
            return data, {"origin": "folder", "location": str(found[0]), "member_sha256": digest["sha256"]}
        if path.suffix == ".pklz" and path.is_file():  # the bare pickle: the zip's checksums do not apply to it
            with open(path, "rb") as fh:
                data = _load_pklz(fh, str(path))
            return data, {"origin": "file", "location": str(path), **fetch.digests(path, ("sha256",))}
    path, provenance = fetch.bring(location, workdir, "normals", expected, progress, what="file or folder",
                                   file_origin="file")
    with fetch.open_archive(path, location) as archive:
        members = [n for n in archive.names if n.rsplit("/", 1)[-1] == "all_normals.pklz"]
        if len(members) != 1:
            raise FileNotFoundError(f"{location}: expected one {NORMALS_MEMBER} inside, found {members or 'none'}")
        with archive.open(members[0]) as stream:
            data = _load_pklz(stream, f"{location}/{members[0]}")
    return data, {**provenance, "member": members[0]}


class _Normals:
    """Checked view of the FAIR dict: the normal map and valid mask of a 1-based NYU index."""

    def __init__(self, data: dict, where: str) -> None:
        self.where = where
        for key in ("all_normals", "all_valid_depth_masks", "all_filenames"):
            if key not in data:
                raise ValueError(f"{where}: no {key!r} (expected all_normals, all_valid_depth_masks, all_filenames)")
        self.normals = np.asarray(data["all_normals"])  # (N, H, W, 3)
        self.masks = np.asarray(data["all_valid_depth_masks"])  # (N, H, W)
        names = [n.decode() if isinstance(n, bytes) else n for n in data["all_filenames"]]
        if self.normals.ndim != 4 or self.normals.shape[-1] != 3 or self.normals.dtype.kind != "f":
            raise ValueError(f"{where}: all_normals must be (N, H, W, 3) float, got {self.normals.shape} {self.normals.dtype}")
        if self.masks.shape != self.normals.shape[:3]:
            raise ValueError(f"{where}: all_valid_depth_masks is {self.masks.shape}, all_normals {self.normals.shape}")
        if len(names) != len(self.normals) or not all(isinstance(n, str) and n.strip().isdigit() for n in names):
            raise ValueError(f"{where}: all_filenames must be {len(self.normals)} decimal NYU indices like '000001'")
        self.position = {int(n): i for i, n in enumerate(names)}
        if len(self.position) != len(names):
            raise ValueError(f"{where}: all_filenames repeats an index")

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index not in self.position:
            raise FileNotFoundError(f"{self.where}: no normals for image {index} ({len(self.position)} images inside)")
        i = self.position[index]
        return self.normals[i], self.masks[i] > 0  # (H, W, 3), (H, W) bool


def unit_normals(normal: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(H, W, 3) float32 scaled to unit length where valid, (0, 0, 0) elsewhere; and how many valid-marked
    pixels were dropped because their vector was zero or not finite."""
    n = normal.astype(np.float64)  # (H, W, 3)
    length = np.linalg.norm(n, axis=-1)  # (H, W); NaN/inf stay non-finite
    usable = np.isfinite(length) & (length > 1e-6)
    if valid is None:
        valid = np.isfinite(n).all(axis=-1) & (np.abs(np.nan_to_num(n)).sum(axis=-1) > 0)
    keep = valid & usable
    out = np.zeros(n.shape, dtype=np.float32)
    out[keep] = n[keep] / length[keep, None]
    return out, int((valid & ~usable).sum())


# ----------------------------------------------------------------------------- raw frames


def _scan_raw_frames(origin: fetch.Archive, limit: int) -> list[tuple[str, str]]:
    """(image name, normal name) pairs in name order; every image needs its _normal.npy and vice versa."""
    names = set(origin.names)
    pairs = []
    for name in origin.names:
        m = _IMAGE.match(name)
        if m:
            normal = m.group(1) + _NORMAL_SUFFIX
            if normal not in names:
                raise FileNotFoundError(f"{origin.path}: {normal} (the normals of {name}) is missing")
            pairs.append((name, normal))
    paired = {n for _, n in pairs}
    for name in origin.names:
        if name.endswith(_NORMAL_SUFFIX) and name not in paired:
            raise FileNotFoundError(f"{origin.path}: {name} has no image <name>.jpg|.jpeg|.png beside it")
    if not pairs:
        raise FileNotFoundError(f"{origin.path}: no <name>.jpg|.png + <name>{_NORMAL_SUFFIX} pairs inside")
    return pairs[: limit or None]


def _raw_key(image_name: str) -> str:
    stem = _IMAGE.match(image_name).group(1)
    return "nyud-raw-" + re.sub(r"[^A-Za-z0-9_-]", "_", stem.replace("/", "-"))


def _install_raw_frames(location: str, tmp: Path, limit: int, progress: bool) -> dict:
    """Copy checked raw-frame pairs into tmp/raw_frames with a list.txt of image names."""
    path = Path(location)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such raw-frame folder or archive")
    with fetch.open_archive(path) as origin:
        pairs = _scan_raw_frames(origin, limit)
        keys = [_raw_key(img) for img, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{path}: two raw frames map to the same key; rename them")
        dropped = 0
        for img, nrm in tqdm(pairs, desc="nyud raw frames", unit="frame", disable=not progress):
            data = origin.read(img)
            image = decode_rgb(data, f"{path}/{img}")
            normal = read_normals(io.BytesIO(origin.read(nrm)), f"{path}/{nrm}")  # (H, W, 3)
            if normal.shape != (*image.shape[:2], 3) or normal.dtype.kind != "f":
                raise ValueError(f"{path}/{nrm}: must be {(*image.shape[:2], 3)} float (the size of {img}), "
                                 f"got {normal.shape} {normal.dtype}")
            normal, bad = unit_normals(normal)
            dropped += bad
            (tmp / "raw_frames" / img).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "raw_frames" / img).write_bytes(data)
            np.save(tmp / "raw_frames" / nrm, normal)
    (tmp / "raw_frames" / "list.txt").write_text("".join(f"{img}\n" for img, _ in pairs))
    return {"origin": "folder" if path.is_dir() else "archive", "location": str(path), "count": len(pairs),
            "dropped_pixels": dropped}


# ----------------------------------------------------------------------------- install


def install(config: NyudConfig, out_dir: Path, progress: bool = True) -> dict:
    """Bring labelled images, splits and normals in (checksums verified), write them per split into out_dir
    atomically (the module doc has the layout); returns dataset.json's dict."""
    with atomic_dir(Path(out_dir)) as tmp:
        splits_path, splits_src = _bring_file(
            config.splits or config.splits_url, SPLITS_NAME, tmp,
            {"md5": config.splits_md5, "sha256": config.splits_sha256}, progress)
        ids = {split: indices[: config.limit or None] for split, indices in read_splits(splits_path).items()}
        labeled_path, labeled_src = _bring_file(
            config.labeled or config.labeled_url, LABELED_NAME, tmp,
            {"md5": config.labeled_md5, "sha256": config.labeled_sha256}, progress)
        with _Labeled(labeled_path) as labeled:
            beyond = [i for indices in ids.values() for i in indices if i > labeled.count]
            if beyond:
                raise ValueError(f"{splits_path}: index {beyond[0]} is beyond the {labeled.count} images of {labeled_path}")
            data, normals_src = _open_normals(
                config.normals or config.normals_url, tmp,
                {"md5": config.normals_md5, "sha256": config.normals_sha256}, progress)
            normals = _Normals(data, normals_src["location"] + (f"/{normals_src['member']}" if "member" in normals_src else ""))
            valid_pixels = dropped = 0
            for split, indices in ids.items():
                (tmp / "images" / split).mkdir(parents=True)
                (tmp / "normals" / split).mkdir(parents=True)
                for index in tqdm(indices, desc=f"nyud {split}", unit="image", disable=not progress):
                    image = labeled.image(index)  # (H, W, 3)
                    normal, valid = normals.get(index)
                    if normal.shape[:2] != image.shape[:2]:
                        raise ValueError(f"{normals.where}: normals of image {index} are {normal.shape[:2]}, "
                                         f"the image in {labeled_path} is {image.shape[:2]}")
                    normal, bad = unit_normals(normal, valid)
                    valid_pixels += int(valid.sum()) - bad
                    dropped += bad
                    Image.fromarray(image).save(tmp / "images" / split / f"{index:04d}.png")
                    np.save(tmp / "normals" / split / f"{index:04d}.npy", normal)
            del data, normals  # the whole pickle: gigabytes
        raw = None if config.raw_frames is None else _install_raw_frames(config.raw_frames, tmp, config.limit, progress)
        fetch.remove_downloads(tmp)  # downloads: read, no longer needed
        labeled_counts = {split: len(indices) for split, indices in ids.items()}
        meta = {
            "name": NYUD_NAME,
            "classes": list(CLASSES),
            "counts": {"train": labeled_counts["train"] + (raw["count"] if raw else 0), "test": labeled_counts["test"]},
            "labeled_counts": labeled_counts,
            "raw_frames": raw["count"] if raw else 0,
            "limit": config.limit,
            "normals": {"valid_pixels": valid_pixels, "dropped_pixels": dropped},
            "sources": {"labeled": labeled_src, "splits": splits_src, "normals": normals_src, "raw_frames": raw},
        }
        fetch.write_meta(tmp, meta)
    return meta


# ----------------------------------------------------------------------------- read


def _check_meta(meta: dict) -> None:
    """What the reader needs of dataset.json (a KeyError, TypeError or ValueError where it is not there)."""
    for split in SPLITS:
        int(meta["labeled_counts"][split])
    int(meta["raw_frames"])


def _read_normal(path: Path, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    normal = read_normals(path)  # (H, W, 3)
    if normal.shape != (*shape, 3) or normal.dtype != np.float32:
        raise ValueError(f"{path}: expected {(*shape, 3)} float32, got {normal.shape} {normal.dtype}")
    return normal


def read_split(raw_dir: Path, split: str) -> Iterator[Record]:
    """Records of one split in NYU index order (then, for train, the raw frames in name order)."""
    if split not in SPLITS:
        raise ValueError(f"unknown NYUDv2 split {split!r}; allowed: {', '.join(SPLITS)}")
    raw_dir = Path(raw_dir)
    meta = fetch.read_meta(raw_dir, NYUD_NAME, _check_meta)
    images = sorted((raw_dir / "images" / split).glob("*.png"))
    expected = int(meta["labeled_counts"][split])
    if len(images) != expected:
        raise ValueError(f"{raw_dir / 'images' / split}: {len(images)} images, but dataset.json says {expected}")
    info = {"annotators": 1, "dataset": NYUD_NAME, "split": split}
    for path in images:
        image = decode_rgb(path.read_bytes(), str(path))
        normal = _read_normal(raw_dir / "normals" / split / f"{path.stem}.npy", image.shape[:2])
        yield {"key": f"nyud-{split}-{path.stem}", "image": image, "normal": normal, "meta": dict(info)}
    if split != "train" or not int(meta["raw_frames"]):
        return
    listing = raw_dir / "raw_frames" / "list.txt"
    names = listing.read_text().splitlines() if listing.is_file() else []
    if len(names) != int(meta["raw_frames"]):
        raise ValueError(f"{listing}: lists {len(names)} raw frames, but dataset.json says {meta['raw_frames']}")
    for name in names:
        path = raw_dir / "raw_frames" / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (listed in {listing})")
        data = path.read_bytes()
        image = decode_rgb(data, str(path))
        normal = _read_normal(raw_dir / "raw_frames" / (_IMAGE.match(name).group(1) + _NORMAL_SUFFIX), image.shape[:2])
        record = {"key": _raw_key(name), "image": image, "normal": normal, "meta": dict(info)}
        if name.lower().endswith((".jpg", ".jpeg")):
            record["image_jpeg"] = data  # the published bytes go into the shard as they are
        yield record

"""Tiny NYUDv2 sources in the published formats, for tests that must not touch the network.

``make_nyud_sources(tmp_path, n=6)`` writes, under tmp_path/nyud-src:

* ``nyu_depth_v2_labeled.mat``: MATLAB v7.3 = HDF5 with MATLAB's 512-byte userblock header; ``images``
  (n, 3, W, H) uint8 as MATLAB's column-major [H W 3 n] array appears to h5py, plus ``depths`` and
  ``labels`` in the same transposed layout, each with its MATLAB_class attribute;
* ``splits.mat``: MATLAB v5 (scipy.io.savemat) with 1-based ``trainNdxs`` / ``testNdxs`` columns;
* ``nyuv2_surfacenormal_metadata.zip``: FAIR's mirror layout, ``surfacenormal_metadata/
  all_normals.pklz`` (gzip pickle of all_normals / all_valid_depth_masks / all_filenames) and the
  train/test SN40 json lists;
* ``raw_frames/``: two extra training pairs (``<name>.jpg|png`` + ``<name>_normal.npy``).

The pixel content is known (``fake_image``, ``fake_normals``) so tests can check orientation.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

HEIGHT, WIDTH = 48, 64
TRAIN = (4, 1, 3)  # 1-based, deliberately unsorted as a column vector; the rest is test
RAW_SIZE = (40, 56)


def fake_image(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(H, W, 3) uint8: R = row, G = column, B = 1-based image index (a pattern no transpose keeps)."""
    rows, cols = np.mgrid[0:height, 0:width]  # (H, W) each
    return np.stack([rows, cols, np.full_like(rows, index)], axis=-1).astype(np.uint8)


def fake_normals(index: int, height: int = HEIGHT, width: int = WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) float32 unit normals and (H, W) float32 valid mask as Ladický's files hold them.

    Invalid pixels (a border and a block) carry junk vectors (non-unit, some NaN) that a reader must
    zero; the valid mask is float like FAIR's.
    """
    rng = np.random.default_rng(index)
    n = rng.normal(size=(height, width, 3))
    n[..., 2] = np.abs(n[..., 2]) + 0.1  # facing the camera, like real surfaces
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    valid = np.ones((height, width), dtype=np.float32)
    valid[:3, :] = valid[:, :5] = 0
    valid[20:30, 30:40] = 0
    n[valid == 0] = 0.3
    n[0, 0] = np.nan
    return n.astype(np.float32), valid


def write_matlab_v73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An HDF5 file with MATLAB's v7.3 header: each array stored transposed, as MATLAB writes it."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, array in arrays.items():
            dataset = f.create_dataset(name, data=array.transpose(tuple(reversed(range(array.ndim)))))
            dataset.attrs["MATLAB_class"] = np.bytes_({np.uint8: "uint8", np.uint16: "uint16",
                                                       np.float32: "single"}[array.dtype.type])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"  # text, subsys offset, version, endian
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\0"))


def normals_pickle(indices: list[int], protocol: int = 2) -> bytes:
    """all_normals.pklz's bytes for the given 1-based indices (FAIR's keys and 6-digit names)."""
    pairs = [fake_normals(i) for i in indices]
    data = {
        "all_normals": np.stack([n for n, _ in pairs]),  # (N, H, W, 3)
        "all_valid_depth_masks": np.stack([v for _, v in pairs]),  # (N, H, W)
        "all_filenames": [f"{i:06d}" for i in indices],
    }
    return gzip.compress(pickle.dumps(data, protocol=protocol), mtime=0)


def write_normals_zip(path: Path, pklz: bytes, train: list[int], test: list[int]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # the pklz is already compressed
        z.writestr("surfacenormal_metadata/", b"")
        z.writestr("surfacenormal_metadata/all_normals.pklz", pklz)
        for split, indices in (("train", train), ("test", test)):
            records = [{"img": f"{i:06d}_rgb.jpg", "segm": f"{i:06d}_SN40.png", "width": WIDTH, "height": HEIGHT}
                       for i in indices]
            z.writestr(f"surfacenormal_metadata/{split}_SN40.json", json.dumps(records))


def fake_raw_normal(k: int) -> np.ndarray:
    """(H, W, 3) float64 raw-frame normals, not unit length, zero in the top rows (invalid)."""
    h, w = RAW_SIZE
    n = np.zeros((h, w, 3))
    n[..., 0], n[..., 1], n[..., 2] = 0.5 * k, -1.0, 2.0
    n[:4] = 0
    return n


def make_nyud_sources(tmp_path: Path, n: int = 6) -> dict[str, Path]:
    """Write the four sources (module doc); returns {"labeled", "splits", "normals", "raw_frames"} paths."""
    root = Path(tmp_path) / "nyud-src"
    root.mkdir(parents=True)
    indices = list(range(1, n + 1))
    images = np.stack([fake_image(i) for i in indices])  # (n, H, W, 3)
    depths = np.stack([np.full((HEIGHT, WIDTH), i, np.float32) for i in indices])  # (n, H, W)
    labels = np.zeros((n, HEIGHT, WIDTH), dtype=np.uint16)
    # MATLAB's arrays are [H W 3 n] / [H W n]; write_matlab_v73 transposes them as MATLAB's writer does.
    write_matlab_v73(root / "nyu_depth_v2_labeled.mat", {
        "images": images.transpose(1, 2, 3, 0),
        "depths": depths.transpose(1, 2, 0),
        "labels": labels.transpose(1, 2, 0),
    })
    train = [i for i in TRAIN if i <= n]
    test = [i for i in indices if i not in train]
    scipy.io.savemat(root / "splits.mat", {
        "trainNdxs": np.asarray(train, dtype=np.float64)[:, None],  # (K, 1) columns, 1-based
        "testNdxs": np.asarray(test, dtype=np.float64)[:, None],
    })
    write_normals_zip(root / "nyuv2_surfacenormal_metadata.zip", normals_pickle(indices), train, test)
    frames = root / "raw_frames"
    (frames / "kitchen_0001").mkdir(parents=True)
    for k, name in enumerate(("kitchen_0001/r-0001.png", "kitchen_0001/r-0002.jpg"), 1):
        image = fake_image(100 + k, *RAW_SIZE)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG" if name.endswith("png") else "JPEG", quality=95)
        (frames / name).write_bytes(buf.getvalue())
        np.save(frames / f"{name.rsplit('.', 1)[0]}_normal.npy", fake_raw_normal(k))
    return {
        "labeled": root / "nyu_depth_v2_labeled.mat",
        "splits": root / "splits.mat",
        "normals": root / "nyuv2_surfacenormal_metadata.zip",
        "raw_frames": frames,
    }

"""`pixelnet predict` on a user's images: bad inputs refused in one line before anything is written (and
before torch starts), float / 16-bit / 32-bit images, folders, --skip-existing, --nms / --thin, --format npy,
and the torch-free checkpoint header reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.data.folder import read_image
from pixelnet.metrics.nms import edge_nms
from pixelnet.metrics.thinning import thin
from pixelnet.model import trunk
from pixelnet.inputs import OutputConfig
from pixelnet.model.pixelnet import ModelConfig, PixelNet, load_checkpoint, save_checkpoint
from pixelnet.tasks.edges import edge_map
from pixelnet.zoo import ZOO
from pixelnet.zoo.header import STRIDES, deepest_stride, read_header

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
# Deepest tap conv5_3: stride 16, so a 10 px side is too small; tiny widths keep 64 px images fast.
CFG = ModelConfig(width=0.0625, hidden=(8,), layers=("conv1_2", "conv5_3"), dropout=0.0, head_init="kaiming")
CHANNELS = {"edges": 1, "normals": 3, "segmentation": 4}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for task, k in CHANNELS.items():
        torch.manual_seed(0)
        paths[task] = folder / f"{task}.pt"
        save_checkpoint(paths[task], PixelNet(CFG, k).eval(), {"task": task})
    return paths


def _noise(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """(h, w, channels) uint8, or (h, w) for one channel."""
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    return noise[..., 0] if channels == 1 else noise


def _png(path: Path, h: int = 32, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(h, w, seed=seed)).save(path)
    return path


def _predict(model: Path, *args: str | Path):
    return runner.invoke(app, ["predict", "--model", str(model), *map(str, args), "--quiet"])


# ----------------------------------------------------------------------------- bad inputs

def _truncated(path: Path) -> Path:
    _png(path.with_name("whole" + path.suffix))
    data = path.with_name("whole" + path.suffix).read_bytes()
    path.with_name("whole" + path.suffix).unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def _float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32)).save(path)  # mode F
    return path


def _animated(path: Path, frames: int = 3) -> Path:
    images = [Image.fromarray(_noise(32, 32, 1, seed=s)) for s in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


BAD = {  # name -> (builder(folder) -> the bad input, extra args, words its one-line message holds)
    "1x1": (lambda d: _png(d / "tiny.png", 1, 1), [], "1×1 px, the model needs at least 16 px on each side"),
    "10x10": (lambda d: _png(d / "small.png", 10, 10), [], "10×10 px, the model needs at least 16 px"),
    "scale": (lambda d: _png(d / "mid.png", 24, 40), ["--scales", "1,0.5"], "at least 16 px on each side at scale 0.5"),
    "float > 255": (lambda d: _float_tiff(d / "hdr.tif", np.full((32, 32), 300.0)), [], "values in [300, 300]"),
    "float < 0": (lambda d: _float_tiff(d / "neg.tif", np.linspace(-1, 1, 32 * 32).reshape(32, 32)), [], "values in [-1, 1]"),
    "float nan": (lambda d: _float_tiff(d / "nan.tif", np.where(np.eye(32) > 0, np.nan, 0.5)), [], "32 non-finite"),
    "truncated jpeg": (lambda d: _truncated(d / "cut.jpg"), [], "not a readable image"),
    "truncated png": (lambda d: _truncated(d / "cut.png"), [], "not a readable image"),
    "text as png": (lambda d: (d / "notes.png").write_text("not an image\n") and d / "notes.png", [], "not a readable image"),
    "animated gif": (lambda d: _animated(d / "anim.gif"), [], "3 frames; pixelnet reads single images"),
    "multi-page tiff": (lambda d: _animated(d / "pages.tif", 2), [], "2 frames"),
    "empty folder": (lambda d: (d / "empty").mkdir() or d / "empty", [], "a folder with no images"),
    "missing": (lambda d: d / "nowhere.png", [], "no such file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_among_good_ones_is_one_line_naming_it_and_nothing_is_written(tmp_path, models, case):
    build, extra, words = BAD[case]
    good = [_png(tmp_path / "in" / "a.png", seed=1), _png(tmp_path / "in" / "b.png", seed=2)]
    bad = build(tmp_path / "in")
    out = tmp_path / "deep" / "out"
    result = _predict(models["edges"], good[0], bad, good[1], "--out", out, *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pixelnet predict: error: {bad}") and words in lines[0], lines[0]
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("task, args, words", [
    ("normals", ["--nms"], "is a normals model; NMS thins edge maps only"),
    ("segmentation", ["--thin"], "is a segmentation model"),
    ("segmentation", ["--format", "npy"], "--format npy"),
    ("edges", ["--format", "jpg"], "--format must be png or npy"),
    ("edges", ["--threshold", "0.3"], "--threshold applies to --thin only"),
    ("edges", ["--thin", "--threshold", "0"], "--threshold must lie in (0, 1]"),
    ("edges", ["--precision", "fp16"], "--precision must be fp32 or bf16"),
])
def test_options_that_do_not_suit_the_model_are_refused(tmp_path, models, task, args, words):
    image = _png(tmp_path / "im.png")
    result = _predict(models[task], image, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_failure_mid_run_removes_the_folder_it_made_but_keeps_finished_files(tmp_path, models, monkeypatch):
    import pixelnet.predict as P

    images = [_png(tmp_path / "a.png", seed=1), _png(tmp_path / "b.png", seed=2)]
    real, calls = P.predict_image, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail_at:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "predict_image", flaky)
    fail_at = 1
    result = _predict(models["edges"], *images, "--out", tmp_path / "deep" / "out")
    assert result.exit_code == 2 and "out of memory" in result.stderr
    assert not (tmp_path / "deep").exists()  # both folders it made, still empty, are gone
    fail_at, calls[:] = 2, []
    result = _predict(models["edges"], *images, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_edges.png"]  # complete, no temp file


# ----------------------------------------------------------------------------- images beyond 8 bits

def test_float_16_bit_and_32_bit_images_are_scaled_by_the_documented_rule(tmp_path):
    grey = _noise(20, 24, 1, seed=3)  # (20, 24) uint8
    expected = np.repeat(grey[..., None], 3, axis=2)
    unit = _float_tiff(tmp_path / "unit.tif", grey / 255.0)
    wide = _float_tiff(tmp_path / "wide.tif", grey.astype(np.float64))
    np.testing.assert_array_equal(read_image(unit), expected)  # [0, 1] scaled by 255
    np.testing.assert_array_equal(read_image(wide), expected)  # [0, 255] used as it is
    deep = tmp_path / "deep.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(deep)  # 16-bit grey: 65535 -> 255
    np.testing.assert_array_equal(read_image(deep), expected)
    for values, scale in [(grey.astype(np.int32), 1.0), (grey.astype(np.int32) * 257, 257.0),
                          (grey.astype(np.int32) * 1000, int(grey.max()) * 1000 / 255)]:
        path = tmp_path / "int32.tif"
        Image.fromarray(values).save(path)  # mode I: <= 255 as is, <= 65535 like 16-bit, else by the maximum
        assert Image.open(path).mode == "I"
        np.testing.assert_allclose(read_image(path)[..., 0], np.round(values / scale), atol=1)
    negative = tmp_path / "negative.tif"
    Image.fromarray(grey.astype(np.int32) - 100).save(negative)
    assert read_image(negative).min() == 0  # negative values become 0


def test_an_mpo_camera_jpeg_is_read_as_its_primary_image(tmp_path):
    first, preview = _noise(32, 32, seed=4), _noise(16, 16, seed=5)
    path = tmp_path / "camera.jpg"
    Image.fromarray(first).save(path, format="MPO", save_all=True, append_images=[Image.fromarray(preview)])
    assert Image.open(path).format == "MPO"
    assert read_image(path).shape == (32, 32, 3)


def test_a_float_tiff_in_0_1_predicts_like_its_8_bit_version(tmp_path, models):
    grey = _noise(40, 48, 1, seed=6)
    Image.fromarray(grey).save(tmp_path / "plain.png")
    _float_tiff(tmp_path / "unit.tif", grey / 255.0)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    result = _predict(models["edges"], tmp_path / "plain.png", tmp_path / "unit.tif", tmp_path / "deep.png",
                      "--out", tmp_path / "out", "--format", "npy")
    assert result.exit_code == 0, result.output
    plain = np.load(tmp_path / "out" / "plain_edges.npy")
    for other in ("unit", "deep"):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{other}_edges.npy"), plain, atol=1e-6)


# ----------------------------------------------------------------------------- folders and resuming

def test_folders_recursive_and_skip_existing(tmp_path, models):
    src = tmp_path / "photos"
    for rel in ("a.png", "B.JPG", "sub/c.png", "sub/deeper/d.tif", ".hidden.png", ".cache/e.png"):
        _png(src / rel, seed=len(rel))
    (src / "notes.txt").write_text("not an image")
    out = src / "edges"  # inside the input folder: never read back as input

    result = _predict(models["edges"], src, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["B_edges.png", "a_edges.png"]
    assert result.stdout.strip().splitlines()[-1] == f"2 images predicted → {out}"

    result = _predict(models["edges"], src, "--recursive", "--skip-existing", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["B_edges.png", "a_edges.png", "c_edges.png", "d_edges.png"]
    assert result.stdout.strip().splitlines()[-1] == f"2 images predicted, 2 skipped (outputs exist) → {out}"

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = _predict(models["edges"], src, "-r", "--skip-existing", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [f"0 images predicted, 4 skipped (outputs exist) → {out}"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing rewritten

    _png(src / "other" / "a.png", seed=9)  # a second stem "a" below the folder
    result = _predict(models["edges"], src, "-r", "--out", tmp_path / "out2")
    assert result.exit_code == 2 and str(src / "a.png") in result.stderr and str(src / "other" / "a.png") in result.stderr
    assert not (tmp_path / "out2").exists()


# ----------------------------------------------------------------------------- --nms, --thin, --format npy

def test_nms_thin_and_npy_are_the_benchmarks_own_steps(tmp_path, models):
    image = _png(tmp_path / "scene.png", 48, 64, seed=7)
    runs = {"raw": [], "nms": ["--nms"], "nms_png": ["--nms"], "raw_png": []}
    for name, extra in runs.items():
        fmt = "png" if name.endswith("png") else "npy"
        result = _predict(models["edges"], image, "--out", tmp_path / name, "--format", fmt, *extra)
        assert result.exit_code == 0, result.output
    raw, nms = np.load(tmp_path / "raw" / "scene_edges.npy"), np.load(tmp_path / "nms" / "scene_edges.npy")
    assert raw.shape == nms.shape == (48, 64) and raw.dtype == nms.dtype == np.float32
    assert 0 <= raw.min() and raw.max() <= 1
    png = np.asarray(Image.open(tmp_path / "raw_png" / "scene_edges.png")) / 255.0
    assert np.abs(png - raw).max() <= 0.5 / 255 + 1e-6  # npy is the png's map at full precision
    # --nms is exactly edge_nms with the benchmark's defaults on the predicted map.
    np.testing.assert_allclose(nms, np.clip(edge_nms(raw), 0, 1).astype(np.float32), atol=1e-6)
    assert (nms != raw).any()
    nms_png = np.asarray(Image.open(tmp_path / "nms_png" / "scene_edges.png")) / 255.0
    assert np.abs(nms_png - nms).max() <= 0.5 / 255 + 1e-6

    threshold = float(np.median(nms[nms > 0]))  # a random model's map is flat: most of it survives NMS
    result = _predict(models["edges"], image, "--out", tmp_path / "thin", "--format", "npy", "--thin",
                      "--threshold", f"{threshold:.6f}")
    assert result.exit_code == 0, result.output
    thinned = np.load(tmp_path / "thin" / "scene_edges.npy")
    on = thinned > 0
    assert on.any() and np.array_equal(thin(on), on)  # thinning it again changes nothing: one pixel wide
    assert np.array_equal(thinned[on], nms[on]) and (nms[on] >= round(threshold, 6)).all()  # probabilities kept


def test_nms_leaves_a_blurred_line_one_pixel_wide():
    """What --nms is for: a soft ridge a few pixels wide becomes one pixel wide, keeping its strength."""
    xx = np.mgrid[0:64, 0:64][1].astype(np.float64)
    ridge = 0.8 * np.exp(-((xx - 30.3) ** 2) / (2 * 2.0**2))  # (64, 64) a vertical line near x = 30, ~5 px wide
    thinned = edge_map(ridge, OutputConfig(nms=True))
    assert thinned.dtype == np.float32 and np.count_nonzero(ridge > 0.1) > 4 * 64
    inner = thinned[8:-8]  # rows away from the 5 px border ramp
    assert (np.count_nonzero(inner, axis=1) == 1).all() and set(np.nonzero(inner)[1]) == {30}
    assert 0.7 < inner.max() <= 0.8
    assert np.count_nonzero(thinned[:, :20]) == 0


# ----------------------------------------------------------------------------- the header reader and start-up

def test_the_torch_free_header_reader_returns_the_shipped_models_config(tmp_path):
    path = ZOO / "bsds500-edges" / "model.pt"
    header, state = read_header(path), load_checkpoint(path)
    for key in ("model_config", "task", "out_channels", "classes", "summary"):
        assert header[key] == state[key], key
    assert header["machine"]["torch"] == str(state["machine"]["torch"])
    assert deepest_stride(header) == 16 and STRIDES == trunk.STRIDES
    for bad in (tmp_path / "notes.pt", tmp_path / "nothing.pt"):
        if bad.name == "notes.pt":
            bad.write_text("hello")
        with pytest.raises((ValueError, FileNotFoundError), match=bad.name):
            read_header(bad)


def test_help_and_an_input_error_come_back_without_importing_torch(tmp_path):
    """The check runs before torch is imported (seconds): a fresh interpreter never loads it."""
    _png(tmp_path / "tiny.png", 1, 1)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pipeline.cli import app\n"
        "r = CliRunner().invoke(app, sys.argv[1:])\n"
        "print(r.exit_code, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["--help"], ["predict", "--help"],
                 ["predict", "--model", "bsds500-edges", str(tmp_path / "tiny.png"), "--out", str(tmp_path / "x")]):
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO, env=env,
                              timeout=60)
        assert done.stdout.split() == ["0" if "--help" in args else "2", "False"], (args, done.stdout, done.stderr)
    assert not (tmp_path / "x").exists()

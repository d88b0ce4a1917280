"""`pixelnet predict`: inputs of every kind, checked before any work; tiling; each task's output files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.atomic import atomic_file
from pixelnet.data.folder import read_image
from pixelnet.infer import InferConfig, activations, predict
from pixelnet.model.pixelnet import ModelConfig, PixelNet, save_checkpoint
from pixelnet.predict import TileConfig, blend_weights, task_from_payload, tile_spans, tiled_activations
from pixelnet.tasks import TASKS

runner = CliRunner()
# Kaiming hidden layers: the paper's σ = 1e-3 everywhere makes a random model's outputs nearly constant
# (softmax 0.25 ± 6e-8), too flat for the relative tile-versus-whole bounds below.
CFG = ModelConfig(width=0.0625, hidden=(8,), layers=("conv1_2", "conv3_3"), dropout=0.0, head_init="kaiming")
CHANNELS = {"edges": 1, "normals": 3, "segmentation": 4}


def tiny_model(task: str) -> PixelNet:
    torch.manual_seed(0)
    return PixelNet(CFG, CHANNELS[task]).eval()


def make_task(task: str):
    return TASKS[task](num_classes=CHANNELS[task]) if task == "segmentation" else TASKS[task]()


@pytest.fixture
def checkpoint(tmp_path):
    def make(task: str, **extra) -> Path:
        path = tmp_path / f"{task}.pt"
        save_checkpoint(path, tiny_model(task), {"task": task, **extra})
        return path
    return make


def _noise(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze()


@pytest.fixture
def inputs(tmp_path) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Four readable images of different kinds with their displayed (H, W), and a text file named .png."""
    folder = tmp_path / "in"
    folder.mkdir()
    grey = folder / "grey.png"
    Image.fromarray(_noise(36, 44, 1)).save(grey)
    rgba = folder / "rgba.png"
    Image.fromarray(_noise(40, 32, 4, seed=1)).save(rgba)  # (H, W, 4): RGBA
    deep = folder / "deep.png"
    Image.fromarray((_noise(30, 50, 1, seed=2).astype(np.uint16) * 257)).save(deep)  # 16-bit grey
    # Stored 48 wide x 32 high with a white marker at the stored top-left; EXIF orientation 6 means
    # "rotate 90 degrees clockwise to display": displayed 32 wide x 48 high, the marker at the top right.
    stored = np.zeros((32, 48, 3), dtype=np.uint8)
    stored[:8, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = folder / "rotated.jpg"
    Image.fromarray(stored).save(rotated, exif=exif, quality=95)
    notes = folder / "notes.png"
    notes.write_text("not an image\n")
    return {"grey": (grey, (36, 44)), "rgba": (rgba, (40, 32)), "deep": (deep, (30, 50)),
            "rotated": (rotated, (48, 32)), "notes": (notes, (0, 0))}


def test_read_image_handles_grey_rgba_16bit_and_exif(inputs):
    for name in ("grey", "rgba", "deep", "rotated"):
        path, (h, w) = inputs[name]
        image = read_image(path)
        assert image.shape == (h, w, 3) and image.dtype == np.uint8, name
    deep = np.asarray(Image.open(inputs["deep"][0])).astype(np.float64)  # (H, W) 16-bit values
    np.testing.assert_array_equal(read_image(inputs["deep"][0])[..., 0], np.round(deep / 257))  # full range, not stretched
    rotated = read_image(inputs["rotated"][0])
    assert rotated[:8, -8:].mean() > 200 and rotated[-8:, :8].mean() < 50  # the marker where it is displayed
    stored = np.asarray(Image.open(inputs["rotated"][0]).convert("RGB"))  # (32, 48, 3) as stored
    np.testing.assert_array_equal(rotated, np.rot90(stored, k=-1))  # clockwise


def test_a_bad_input_fails_first_and_nothing_is_written_then_the_good_ones_predict(tmp_path, checkpoint, inputs):
    model = checkpoint("normals")
    out = tmp_path / "out"
    good = [inputs[k][0] for k in ("grey", "rgba", "deep", "rotated")]
    bad = inputs["notes"][0]
    result = runner.invoke(app, ["predict", "--model", str(model), *map(str, good), str(bad), "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.startswith("pixelnet predict: error:") and str(bad) in result.stderr
    assert not out.exists()  # the bad file came last: nothing was predicted before it was checked

    result = runner.invoke(app, ["predict", "--model", str(model), *map(str, good), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    *lines, summary = result.stdout.strip().splitlines()
    assert len(lines) == 4 and summary == f"4 images predicted → {out}"
    for path, line in zip(good, lines):
        h, w = dict(inputs.values())[path]
        png, npy = out / f"{path.stem}_normals.png", out / f"{path.stem}_normals.npy"
        assert line.startswith(str(path)) and str(png) in line and str(npy) in line
        colours = np.asarray(Image.open(png))
        normals = np.load(npy)
        assert colours.shape == (h, w, 3) and colours.dtype == np.uint8
        assert normals.shape == (h, w, 3) and normals.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-4)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_normals.{e}" for p in good for e in ("png", "npy"))

    # The EXIF-rotated JPEG is predicted as displayed: exactly the prediction on the upright pixels,
    # and the marker's effect on the prediction lies at the displayed top right.
    task, net = make_task("normals"), tiny_model("normals")
    upright = read_image(inputs["rotated"][0])  # (48, 32, 3)
    written = np.load(out / "rotated_normals.npy")
    np.testing.assert_allclose(written, predict(net, task, upright, InferConfig()), atol=1e-5)
    effect = np.linalg.norm(written - predict(net, task, np.zeros_like(upright), InferConfig()), axis=-1)  # (48, 32)
    y, x = np.unravel_index(effect.argmax(), effect.shape)
    assert y < 16 and x >= 16, (y, x)


def test_two_inputs_with_one_stem_are_refused(tmp_path, checkpoint):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.jpg"
    Image.fromarray(_noise(32, 32)).save(first)
    Image.fromarray(_noise(32, 32)).save(second)
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "--model", str(checkpoint("edges")), str(first), str(second), "--out", str(out)])
    assert result.exit_code == 2
    assert str(first) in result.stderr and str(second) in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [(["--scales", "1,zero"], "--scales"), (["--scales", "0"], "--scales"),
                                           (["--device", "tpu"], "device"), (["--tile", "20"], "tile size 20")])
def test_bad_options_fail_cleanly_before_any_output(tmp_path, checkpoint, args, message):
    image = tmp_path / "im.png"
    Image.fromarray(_noise(64, 64)).save(image)
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", "--model", str(checkpoint("edges")), str(image), "--out", str(out), *args])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_tile_spans_cover_the_image_on_the_grid_with_the_overlap():
    for length, tile, overlap, grid in [(100, 48, 32, 4), (80, 40, 32, 4), (49, 48, 32, 4), (5000, 1024, 128, 32), (1100, 1024, 128, 32)]:
        spans = tile_spans(length, tile, overlap, grid)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(start % grid == 0 for start, _ in spans)
        assert all(stop - start == tile for start, stop in spans[:-1]) and tile <= spans[-1][1] - spans[-1][0] < tile + grid
        assert all(prev[1] - nxt[0] >= overlap for prev, nxt in zip(spans, spans[1:]))
    w = blend_weights(16, 64, 100)  # an inner edge on both sides
    assert w[0] == w[-1] == 0.25 and w.argmax() in (23, 24)
    np.testing.assert_array_equal(blend_weights(0, 100, 100), np.ones(100))


@pytest.mark.parametrize("task_name", ["edges", "normals", "segmentation"])
def test_tiled_activations_match_the_whole_image(task_name):
    """80 x 100 in 48 px tiles (15 of them): the blend matches the untiled map to a small fraction of
    its own spread. A random model's outputs vary little in absolute terms, so the bound is relative."""
    task, model = make_task(task_name), tiny_model(task_name)
    image = _noise(80, 100, seed=3)
    assert len(tile_spans(80, 48, 32, 4)) > 1 and len(tile_spans(100, 48, 32, 4)) > 1
    whole = activations(model, task, image, InferConfig())  # (80, 100, K)
    tiled = tiled_activations(model, task, image, InferConfig(), TileConfig(size=48))
    assert tiled.shape == whole.shape and tiled.dtype == np.float32
    error = np.abs(tiled - whole)
    assert error.mean() < 0.02 * whole.std() and error.max() < 0.3 * whole.std(), (error.mean(), error.max(), whole.std())


def test_predict_tiled_through_the_cli_matches_untiled(tmp_path, checkpoint):
    image = tmp_path / "big.png"
    Image.fromarray(_noise(80, 100, seed=4)).save(image)
    model = checkpoint("normals")
    for tile in ("48", "0"):
        result = runner.invoke(app, ["predict", "--model", str(model), str(image), "--out", str(tmp_path / tile), "--tile", tile, "--quiet"])
        assert result.exit_code == 0, result.output
    tiled, whole = np.load(tmp_path / "48" / "big_normals.npy"), np.load(tmp_path / "0" / "big_normals.npy")
    angle = np.degrees(np.arccos(np.clip((tiled * whole).sum(-1), -1, 1)))  # (80, 100)
    assert angle.mean() < 0.5 and np.percentile(angle, 99) < 5, (angle.mean(), angle.max())


@pytest.mark.parametrize("task_name, files", [
    ("edges", {"_edges.png": ((45, 61), np.uint8)}),
    ("normals", {"_normals.png": ((45, 61, 3), np.uint8), "_normals.npy": ((45, 61, 3), np.float32)}),
    ("segmentation", {"_labels.png": ((45, 61), np.uint8), "_segmentation.png": ((45, 61, 3), np.uint8)}),
])
def test_each_task_writes_its_files(tmp_path, checkpoint, task_name, files):
    image = tmp_path / "scene.jpg"
    Image.fromarray(_noise(45, 61, seed=5)).save(image)
    out = tmp_path / "deep" / "out"  # created, parents included
    result = runner.invoke(app, ["predict", "--model", str(checkpoint(task_name)), str(image), "--out", str(out),
                                 "--scales", "1,0.75", "--flip", "--quiet"])
    assert result.exit_code == 0, result.output
    for suffix, (shape, dtype) in files.items():
        path = out / f"scene{suffix}"
        array = np.load(path) if suffix.endswith(".npy") else np.asarray(Image.open(path))
        assert array.shape == shape and array.dtype == dtype, (suffix, array.shape, array.dtype)
    expected = {f"scene{s}" for s in files} | ({"scene_legend.png"} if task_name == "segmentation" else set())
    assert {p.name for p in out.iterdir()} == expected  # and no temporary files
    if task_name == "segmentation":
        labels = np.asarray(Image.open(out / "scene_labels.png"))
        colours = np.asarray(Image.open(out / "scene_segmentation.png"))
        assert labels.max() < CHANNELS["segmentation"]
        np.testing.assert_array_equal(colours, make_task("segmentation").visualize(labels))
        legend = np.asarray(Image.open(out / "scene_legend.png"))
        assert legend.ndim == 3 and legend.shape[0] >= 20 * len(np.unique(labels))  # a row per class present


def test_class_names_come_from_the_checkpoint_when_present():
    _, names = task_from_payload({"task": "segmentation"}, 3, Path("m.pt"))
    assert names == ["0", "1", "2"]
    _, names = task_from_payload({"task": "segmentation", "classes": ["sky", "road", "car"]}, 3, Path("m.pt"))
    assert names == ["sky", "road", "car"]
    with pytest.raises(ValueError, match="m.pt"):
        task_from_payload({"task": "segmentation", "classes": ["sky"]}, 3, Path("m.pt"))
    with pytest.raises(ValueError, match="m.pt.*no known task"):
        task_from_payload({}, 3, Path("m.pt"))


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_temp_file(tmp_path):
    target = tmp_path / "x_edges.png"
    target.write_bytes(b"previous")
    with pytest.raises(OSError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError("disk full")
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["x_edges.png"]

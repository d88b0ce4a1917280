"""`pixelnet.load`: the README's example on a real BSDS500 image, every accepted input kind giving the
same map, each bad input refused with one sentence, and the other tasks' maps."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelnet
from pixelnet.metrics.nms import edge_nms
from pixelnet.model.pixelnet import ModelConfig, PixelNet, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
BSDS_TEST = REPO.parent / "shared" / "datasets" / "BSR" / "BSDS500" / "data" / "images" / "test"
needs_bsds = pytest.mark.skipif(not BSDS_TEST.is_dir(), reason="../shared/datasets/BSR is absent")


def readme_example() -> str:
    """The first python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def bsds_image(index: int = 0) -> np.ndarray:
    with Image.open(sorted(BSDS_TEST.glob("*.jpg"))[index]) as im:
        return np.asarray(im.convert("RGB"))  # (H, W, 3) uint8


@pytest.fixture(scope="module")
def model():
    return pixelnet.load("bsds500-edges", device="cpu")


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 64 × 96 px piece of a real image (with texture and edges), uint8 RGB, and its map."""
    if not BSDS_TEST.is_dir():
        return np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    return np.ascontiguousarray(bsds_image(1)[100:164, 150:246])


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, pixelnet; assert callable(pixelnet.load); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


@needs_bsds
def test_readme_example_runs_on_a_bsds_image():
    image = bsds_image(0)
    scope = {"image": image}
    exec(compile(readme_example(), "README.md", "exec"), scope)  # noqa: S102 - the documented example itself
    edges, thin, model = scope["edges"], scope["thin"], scope["model"]
    assert model.task == "edges" and model.classes == [] and model.config.layers[-1] == "conv5_3"
    assert edges.shape == image.shape[:2] and edges.dtype == np.float32
    assert 0 <= edges.min() and edges.max() <= 1 and edges.max() > 0.5  # a real photo has confident edges
    assert thin.shape == edges.shape and thin.dtype == np.float32
    np.testing.assert_array_equal(thin, edge_nms(edges.astype(np.float64)).astype(np.float32))  # the benchmark's NMS

    def blocks(b: np.ndarray) -> int:  # 2 × 2 squares all on: a line two or more pixels wide
        return int((b[:-1, :-1] & b[1:, :-1] & b[:-1, 1:] & b[1:, 1:]).sum())

    thick, thinned = edges >= 0.5, thin >= 0.5
    assert thinned.sum() < 0.5 * thick.sum()
    assert blocks(thick) > 1000 and blocks(thinned) < 0.05 * blocks(thick)


def test_every_accepted_input_gives_the_same_map(model, crop):
    reference = model(crop)  # (64, 96) from uint8 RGB
    grey = crop.mean(axis=2).round().astype(np.uint8)  # (64, 96)
    grey_reference = model(np.repeat(grey[..., None], 3, axis=2))
    alpha = np.random.default_rng(0).integers(0, 256, crop.shape[:2], dtype=np.uint8)
    same = {
        "rgba": (np.dstack([crop, alpha]), reference),
        "float32": (crop.astype(np.float32) / 255, reference),
        "float64": (crop / 255.0, reference),
        "float16": ((crop / 255.0).astype(np.float16), reference),
        "uint16": (crop.astype(np.uint16) * 257, reference),
        "pil rgb": (Image.fromarray(crop), reference),
        "pil rgba": (Image.fromarray(np.dstack([crop, alpha])), reference),
        "grey": (grey, grey_reference),
        "grey h×w×1": (grey[..., None], grey_reference),
        "pil grey": (Image.fromarray(grey), grey_reference),
    }
    assert reference.shape == (64, 96) and reference.dtype == np.float32
    for name, (image, expected) in same.items():
        np.testing.assert_allclose(model(image), expected, atol=1e-5, rtol=0, err_msg=name)


@pytest.mark.parametrize("image, error, words", [
    (np.zeros((3, 64, 96), np.uint8), ValueError, ["got shape (3, 64, 96)", "channels first? use image.transpose(1, 2, 0)"]),
    (np.zeros((1, 1, 3), np.uint8), ValueError, ["1×1 px", "at least 16 px on each side"]),
    (np.full((64, 96, 3), 1.5), ValueError, ["[0, 1]", "found [1.5, 1.5]"]),
    (np.full((64, 96, 3), np.nan, np.float32), ValueError, ["non-finite"]),
    (np.zeros((64, 96), bool), TypeError, ["got bool", "uint8"]),
    (np.zeros((64, 96), np.int16), TypeError, ["got int16"]),
    (np.zeros((64, 96, 5), np.uint8), ValueError, ["H×W×4 image, got shape (64, 96, 5)"]),
    ([[0, 1], [2, 3]], TypeError, ["numpy array or a PIL image, got builtins.list"]),
], ids=["channels-first", "1x1", "float-out-of-range", "float-nan", "bool", "int16", "5-channels", "list"])
def test_a_bad_input_is_one_clear_sentence(model, image, error, words):
    with pytest.raises(error) as caught:
        model(image)
    message = str(caught.value)
    assert message.startswith("image: ") and "\n" not in message
    for word in words:
        assert word in message


def test_nms_checks_its_map(model):
    with pytest.raises(ValueError, match=r"an \(H, W\) map"):
        model.nms(np.zeros((8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model.nms(np.full((8, 8), 2.0))


def _tiny(path: Path, task: str, channels: int, **extra) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(width=0.0625, hidden=(8,), layers=("conv1_2", "conv3_3"), dropout=0.0, head_init="kaiming",
                         head_batch_norm=True)
    save_checkpoint(path, PixelNet(config, channels).eval(), {"task": task, **extra})
    return path


def test_other_tasks_by_path(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (20, 27, 3), dtype=np.uint8)
    normals = pixelnet.load(_tiny(tmp_path / "normals.pt", "normals", 3), device="cpu", scales=(0.75, 1.0), flip=True)
    n = normals(image)
    assert n.shape == (20, 27, 3) and n.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="nms thins edge maps; this is a normals model"):
        normals.nms(n[..., 0])
    with pytest.raises(ValueError, match=r"image: 4×27 px, the model needs at least 4 px on each side at scale 0.75"):
        normals(image[:4])  # fine at scale 1, but round(4 * 0.75) = 3 rows < conv3_3's stride
    names = ["wall", "floor", "sphere", "box"]
    segmentation = pixelnet.load(_tiny(tmp_path / "seg.pt", "segmentation", 4, classes=names), device="cpu")
    labels = segmentation(Image.fromarray(image))
    assert labels.shape == (20, 27) and labels.dtype == np.uint8 and labels.max() < 4
    assert segmentation.task == "segmentation" and segmentation.classes == names


def test_load_names_what_exists():
    with pytest.raises(FileNotFoundError, match="shipped: .*bsds500-edges"):
        pixelnet.load("no-such-model")


def test_bf16_precision_is_close_to_fp32_and_checked(model, crop):
    import pixelnet

    fast = pixelnet.load("bsds500-edges", device="cpu", precision="bf16")
    fp32, bf16 = model(crop), fast(crop)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert 0 < float(np.abs(bf16 - fp32).max()) < 0.1  # autocast really ran, and stays close
    with pytest.raises(ValueError, match="precision"):
        pixelnet.load("bsds500-edges", device="cpu", precision="fp16")

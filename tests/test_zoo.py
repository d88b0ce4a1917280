"""Shipped models: found by name or path, shipped without what prediction does not need, and the
shipped BSDS500 edge model scores on real test images what its model card says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.card import parse_card_flip, parse_card_per_image
from pipeline.cli import app
from pixelnet.data.folder import read_image
from pixelnet.infer import InferConfig
from pixelnet.metrics.edges import BoundaryConfig, collect, image_counts, thresholds_for
from pixelnet.metrics.edges_io import read_ground_truth
from pixelnet.model.pixelnet import ModelConfig, PixelNet, load_checkpoint, model_from_checkpoint, save_checkpoint
from pixelnet.predict import TileConfig, predict_image
from pixelnet.tasks import TASKS
from pixelnet.zoo import ZOO, names, resolve, ship

BSR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "BSR" / "BSDS500" / "data"
SHIPPED = "bsds500-edges"
runner = CliRunner()


def _tiny_checkpoint(path: Path) -> PixelNet:
    torch.manual_seed(0)
    model = PixelNet(ModelConfig(layers=("conv1_2", "conv2_2"), width=0.125, hidden=(16,), batch_norm=True), 1).eval()
    with torch.no_grad():  # running stats away from their init, so shipping them is tested too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, model, {"step": 5, "task": "edges", "summary": {"seconds": 1.0},
                                  "optimizer": {"state": "large"}, "rng": [1, 2, 3]})
    return model


def test_resolve_takes_a_path_or_a_shipped_name_and_says_what_exists(tmp_path):
    ckpt = tmp_path / "model.pt"
    _tiny_checkpoint(ckpt)
    assert resolve(str(ckpt)) == ckpt
    assert SHIPPED in names()
    assert resolve(SHIPPED) == ZOO / SHIPPED / "model.pt"
    with pytest.raises(FileNotFoundError, match=f"no-such-model.*shipped: .*{SHIPPED}"):
        resolve("no-such-model")
    with pytest.raises(ValueError, match="not a file"):
        resolve(tmp_path)


def test_ship_drops_training_state_and_predicts_as_the_checkpoint(tmp_path):
    ckpt, out = tmp_path / "model.pt", tmp_path / "zoo" / "tiny" / "model.pt"
    model = _tiny_checkpoint(ckpt)
    info = ship(ckpt, out)
    payload = load_checkpoint(out)
    assert "optimizer" not in payload and "rng" not in payload
    assert payload["task"] == "edges" and payload["summary"] == {"seconds": 1.0} and payload["machine"]["cores"] >= 1
    assert info["float16_tensors"] > 0 and out.stat().st_size < ckpt.stat().st_size
    shipped, _ = model_from_checkpoint(out)
    assert all(p.dtype == torch.float32 for p in shipped.parameters())  # float16 on disk, float32 to run
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    task = TASKS["edges"]()
    a = predict_image(model, task, image, InferConfig(), TileConfig(size=0))
    b = predict_image(shipped, task, image, InferConfig(), TileConfig(size=0))
    assert np.abs(a - b).max() < 1e-2 and np.abs(a - b).max() > 0  # rounded weights, same model


def test_ship_refuses_a_file_that_is_not_a_trained_model(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": {}, "model_config": {}, "out_channels": 1}, path)
    result = runner.invoke(app, ["ship", str(path), "--out", str(tmp_path / "out.pt")])
    assert result.exit_code != 0 and str(path) in result.stderr and "names no task" in result.stderr
    assert not (tmp_path / "out.pt").exists()


def test_predict_by_name_writes_the_edge_map(tmp_path):
    image = tmp_path / "photo.png"
    rng = np.random.default_rng(1)
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(image)
    result = runner.invoke(app, ["predict", "--model", SHIPPED, str(image), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    edges = np.asarray(Image.open(tmp_path / "out" / "photo_edges.png"))
    assert edges.shape == (48, 64) and edges.dtype == np.uint8


def test_predict_with_an_unknown_model_name_fails_naming_it(tmp_path):
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    result = runner.invoke(app, ["predict", "--model", "bsds-edgez", str(image), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "bsds-edgez" in result.stderr and SHIPPED in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_shipped_model_has_a_card_quoting_three_test_images():
    """The earlier model stays shipped under its versioned name, and every shipped model's card
    quotes the per-image figures the next test re-scores."""
    assert {SHIPPED, f"{SHIPPED}-v1", f"{SHIPPED}-v2"} <= set(names())
    for name in names():
        assert len(parse_card_per_image((ZOO / name / "README.md").read_text())) == 3, name


@pytest.mark.skipif(not BSR.is_dir(), reason="../shared/datasets/BSR is absent")
@pytest.mark.parametrize("name", names())
def test_shipped_model_scores_its_cards_per_image_f_on_real_test_images(name):
    """Three BSDS500 test images from ../shared, predicted by each shipped model at one scale (with the
    mirrored image averaged in where its card says evaluate.flip: true) and scored by the project's
    benchmark (NMS, thinning, 99 thresholds, max_dist 0.0075): each image's best F equals the model's
    card within 0.01."""
    text = (ZOO / name / "README.md").read_text()
    card = parse_card_per_image(text)
    assert len(card) == 3
    model, _ = model_from_checkpoint(resolve(name))
    task = TASKS["edges"]()
    config = BoundaryConfig(thresholds=99, max_dist=0.0075, thin=True, nms=True)
    for key, expected in card.items():
        image_id = key.removeprefix("test-")
        image = read_image(BSR / "images" / "test" / f"{image_id}.jpg")
        pred = predict_image(model, task, image, InferConfig(scales=(1.0,), flip=parse_card_flip(text)), TileConfig(),
                             "cpu")
        counts = image_counts(pred.astype(np.float64), read_ground_truth(BSR / "groundTruth" / "test" / f"{image_id}.mat"),
                              config)
        got = collect([counts], thresholds_for(config.thresholds)).per_image[0]["f"]
        assert abs(got - expected) <= 0.01, f"{name} {key}: best F {got:.4f}, the card says {expected:.4f}"

"""The dense fast path gives the sparse path's maps: random models of every head shape, every view
(scales, flips, odd sizes, bands), and the shipped model on real BSDS500 test images."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelnet.data.folder import read_image
from pixelnet.infer import InferConfig, activations
from pixelnet.dense_head import dense_head
from pixelnet.model.pixelnet import ModelConfig, build_model
from pixelnet.predict import load_model
from pixelnet.tasks import EdgesTask, NormalsTask, SegmentationTask

ROOT = Path(__file__).resolve().parents[1]
BSDS_TEST = ROOT.parent / "shared" / "datasets" / "BSR" / "BSDS500" / "data" / "images" / "test"

CONFIGS = {
    "mlp": ModelConfig(layers=("conv1_2", "conv2_2", "conv3_3"), width=0.0625, hidden=(8,), dropout=0.0, head_init="kaiming"),
    "fc7-two-hidden": ModelConfig(width=0.0625, hidden=(16, 8), dropout=0.0, head_init="kaiming"),
    "linear": ModelConfig(layers=("conv2_2", "conv4_3"), width=0.0625, head="linear", head_std_last=0.1),
    "head-bn": ModelConfig(layers=("conv1_2", "conv3_3", "conv5_3"), width=0.0625, hidden=(8,), dropout=0.0,
                           head_batch_norm=True, head_init="kaiming"),
}


def _model(name: str, out_channels: int):
    torch.manual_seed(0)
    model = build_model(CONFIGS[name], out_channels)
    if CONFIGS[name].head_batch_norm:  # running statistics that are not the identity, so folding them matters
        bn = model.head[0]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("task", [EdgesTask(), NormalsTask(), SegmentationTask(num_classes=4)], ids=lambda t: t.name)
def test_dense_equals_sparse_on_every_view(name, task):
    model = _model(name, task.out_channels)
    image = np.random.default_rng(0).integers(0, 256, (77, 67, 3), dtype=np.uint8)  # sides not multiples of 32
    for config in (InferConfig(), InferConfig(scales=(0.5, 1.0, 1.5), flip=True)):
        sparse = activations(model, task, image, InferConfig(config.scales, config.flip, chunk_pixels=500, dense=False))
        dense = activations(model, task, image, config)
        banded = activations(model, task, image, InferConfig(config.scales, config.flip, chunk_pixels=97))
        assert dense.shape == sparse.shape == (77, 67, task.out_channels)
        assert np.abs(sparse).max() > 1e-3  # the models say something
        np.testing.assert_allclose(dense, sparse, atol=2e-5, rtol=0)
        np.testing.assert_allclose(banded, dense, atol=1e-6, rtol=0)


def test_dense_head_reads_the_sampler_positions_at_any_coordinates():
    """Arbitrary (non-grid) column and row positions: each output pixel equals head_at at (x, y)."""
    model = _model("fc7-two-hidden", 2)
    image = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)
    xs = torch.tensor([0.0, 3.7, 95.0, 40.25, -0.4, 12.0])
    ys = torch.tensor([-0.5, 30.0, 2.5, 63.2])  # any order
    with torch.no_grad():
        feats = model.features(image)
        dense = dense_head(model.head, feats, model.strides, xs, ys, band_pixels=7)  # (4, 6, 2)
        grid = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1).reshape(1, -1, 2)  # (1, 24, 2)
        sparse = model.head_at(feats, grid)[0].view(4, 6, 2)
    torch.testing.assert_close(dense, sparse, atol=1e-5, rtol=0)


def test_dense_head_refuses_a_batch():
    model = _model("mlp", 1)
    with torch.no_grad():
        feats = model.features(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="one image at a time"):
        dense_head(model.head, feats, model.strides, torch.arange(16.0), torch.arange(16.0))


@pytest.mark.skipif(not BSDS_TEST.is_dir(), reason="needs ../shared/datasets/BSR")
def test_shipped_model_dense_equals_sparse_on_real_images():
    """The issue's bar: max |Δp| <= 1e-4 between the fast path and the sparse path, on real images."""
    model, task, _ = load_model(ROOT / "pixelnet" / "zoo" / "bsds500-edges" / "model.pt", "cpu")
    ids = sorted(p.stem for p in BSDS_TEST.glob("*.jpg"))[:3]
    for i, stem in enumerate(ids):
        image = read_image(BSDS_TEST / f"{stem}.jpg")
        config = InferConfig(scales=(0.5, 1.0, 1.5), flip=True) if i == 0 else InferConfig()
        sparse = activations(model, task, image, InferConfig(config.scales, config.flip, dense=False))[..., 0]
        dense = activations(model, task, image, config)[..., 0]
        assert dense.shape == image.shape[:2]
        assert float(np.abs(dense - sparse).max()) <= 1e-4, stem
        assert dense.max() > 0.5 > dense.min()  # real edges and real background

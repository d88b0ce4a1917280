"""Sparse on-demand hypercolumns must equal dense bilinear upsampling at the same pixels."""

import pytest
import torch

from pixelnet.model.hypercolumn import dense_hypercolumns, sample_hypercolumns
from pixelnet.model.pixelnet import ModelConfig, PixelNet


@pytest.mark.parametrize("size", [(32, 32), (45, 61), (64, 40)])
def test_sparse_equals_dense_at_sampled_pixels(size):
    torch.manual_seed(0)
    h, w = size
    # float64 so the comparison measures the mapping, not float32 rounding (which is ~1e-5 on its own)
    feats = [torch.randn(2, 3, h, w, dtype=torch.float64), torch.randn(2, 5, h // 2, w // 2, dtype=torch.float64),
             torch.randn(2, 4, max(1, h // 8), max(1, w // 8), dtype=torch.float64)]
    rows = torch.randint(0, h, (2, 200))
    cols = torch.randint(0, w, (2, 200))
    coords = torch.stack([cols, rows], dim=-1).double()  # (B, N, 2)
    sparse = sample_hypercolumns(feats, coords, (h, w))  # (B, N, C)
    dense = dense_hypercolumns(feats, (h, w))  # (B, C, H, W)
    expected = torch.stack([dense[b, :, rows[b], cols[b]].T for b in range(2)])  # (B, N, C)
    assert sparse.shape == (2, 200, 12)
    torch.testing.assert_close(sparse, expected, atol=1e-5, rtol=0)


def test_sparse_equals_dense_through_the_real_trunk():
    torch.manual_seed(0)
    cfg = ModelConfig(layers=("conv1_2", "conv3_3", "conv5_3", "fc7"), width=0.0625, hidden=(8,), dropout=0.0)
    model = PixelNet(cfg, 2).eval()
    images = torch.randint(0, 256, (1, 3, 48, 56)).float()
    with torch.no_grad():
        feats = model.features(images)
        dense = dense_hypercolumns(feats, (48, 56))  # (1, C, H, W)
        rows, cols = torch.randint(0, 48, (300,)), torch.randint(0, 56, (300,))
        sparse = sample_hypercolumns(feats, torch.stack([cols, rows], -1).float()[None], (48, 56))
    torch.testing.assert_close(sparse[0], dense[0, :, rows, cols].T, atol=1e-4, rtol=1e-4)  # float32 model


def test_gradients_flow_through_sampling_to_every_tap():
    cfg = ModelConfig(layers=("conv1_2", "conv2_2", "fc7"), width=0.0625, hidden=(8,), dropout=0.0)
    model = PixelNet(cfg, 1)
    out = model(torch.rand(2, 3, 32, 32) * 255, torch.rand(2, 10, 2) * 31)
    out.sum().backward()
    assert model.trunk.features[0].weight.grad.abs().sum() > 0
    assert model.trunk.fc7.weight.grad.abs().sum() > 0


def _two_models(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(layers=("conv1_2", "conv3_3", "conv5_3", "fc7"), width=0.0625, hidden=(24, 8), dropout=0.0, **kw)
    fused = PixelNet(cfg, 3).double()
    plain = PixelNet(ModelConfig(**{**cfg.__dict__, "project_first": False}), 3).double()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@pytest.mark.parametrize("samples", [3, 40, 700])  # projects no tap / the deep ones / all but conv1_2 (64²)
def test_projecting_deep_taps_first_equals_sampling_first_with_gradients(samples):
    fused, plain = _two_models()
    images = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 255
    coords = torch.rand(2, samples, 2, dtype=torch.float64) * 63
    outs, grads = [], []
    for model in (fused, plain):
        out = model(images, coords)  # (B, N, K)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in (model.head[0].weight, model.trunk.fc7.weight, model.trunk.features[0].weight)])
    torch.testing.assert_close(outs[0], outs[1], atol=1e-10, rtol=1e-9)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_projection_cache_gives_the_same_predictions_chunk_by_chunk():
    fused, plain = _two_models()
    images = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 255
    coords = torch.rand(1, 900, 2, dtype=torch.float64) * 63
    with torch.no_grad():
        feats = fused.features(images)
        cache: dict = {}
        chunks = [fused.head_at(feats, coords[:, i : i + 300], (64, 64), cache) for i in range(0, 900, 300)]
        expected = plain(images, coords)
    assert set(cache) == {1, 2, 3}  # conv3_3 (16²), conv5_3 (4²), fc7 (2²) projected; conv1_2 (64²) gathered
    torch.testing.assert_close(torch.cat(chunks, dim=1), expected, atol=1e-10, rtol=1e-9)


def test_batch_norm_before_the_head_turns_projection_off():
    fused, plain = _two_models(head_batch_norm=True)
    fused.eval(), plain.eval()
    images = torch.rand(1, 3, 32, 32, dtype=torch.float64) * 255
    coords = torch.rand(1, 50, 2, dtype=torch.float64) * 31
    with torch.no_grad():
        torch.testing.assert_close(fused(images, coords), plain(images, coords))

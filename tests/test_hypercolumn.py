"""Sparse on-demand hypercolumns must equal dense bilinear upsampling at the same pixels, and both
must read every tap at its stride-true position u = (x + 0.5) / s - 0.5."""

import numpy as np
import pytest
import torch

from pixelnet.model.hypercolumn import GATHERS, dense_hypercolumns, first_layer_at, sample_hypercolumns
from pixelnet.model.pixelnet import ModelConfig, PixelNet
from pixelnet.model.trunk import LAYERS, STRIDES, VGGTrunk


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
    strides = (1, 2, 8)
    sparse = sample_hypercolumns(feats, coords, strides)  # (B, N, C)
    dense = dense_hypercolumns(feats, strides, (h, w))  # (B, C, H, W)
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
        dense = dense_hypercolumns(feats, model.strides, (48, 56))  # (1, C, H, W)
        rows, cols = torch.randint(0, 48, (300,)), torch.randint(0, 56, (300,))
        sparse = sample_hypercolumns(feats, torch.stack([cols, rows], -1).float()[None], model.strides)
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
        chunks = [fused.head_at(feats, coords[:, i : i + 300], cache) for i in range(0, 900, 300)]
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


# ----------------------------------------------------------------------------- stride-true positions

def _numpy_bilinear(f: np.ndarray, stride: int, xy: np.ndarray) -> np.ndarray:
    """Independent reference: (C, h, w) map read at (N, 2) pixel coords, u = (x + 0.5) / s - 0.5 clamped -> (N, C)."""
    _, h, w = f.shape
    u = np.clip((xy[:, 0] + 0.5) / stride - 0.5, 0, w - 1)
    v = np.clip((xy[:, 1] + 0.5) / stride - 0.5, 0, h - 1)
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    ax, ay = u - x0, v - y0
    out = (f[:, y0, x0] * (1 - ax) * (1 - ay) + f[:, y0, x1] * ax * (1 - ay)
           + f[:, y1, x0] * (1 - ax) * ay + f[:, y1, x1] * ax * ay)  # (C, N)
    return out.T


def _real_features(size):
    """Every tap of a small real VGG trunk (fc7 included) on two random images, float64."""
    torch.manual_seed(0)
    cfg = ModelConfig(layers=LAYERS, width=1 / 16, hidden=(8,), dropout=0.0, head="mlp")
    model = PixelNet(cfg, 3).double().eval()
    images = torch.rand(2, 3, *size, dtype=torch.float64) * 255
    with torch.no_grad():
        feats = model.features(images)
    h, w = size
    assert [tuple(f.shape[-2:]) for f in feats] == [(h // s, w // s) for s in model.strides]  # pooling floors
    return model, feats


def _coords(size, extra=300, seed=0):
    """Every pixel of the image, then `extra` fractional positions reaching half a pixel past the borders: (N, 2)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    rng = np.random.default_rng(seed)
    frac = rng.uniform(0, 1, (extra, 2)) * np.array([w, h]) - 0.5  # x in [-0.5, w - 0.5], y likewise
    return np.concatenate([grid, frac])


def _reference(feats, strides, xy_per_image):
    return np.stack([np.concatenate([_numpy_bilinear(f[b].numpy(), s, xy) for f, s in zip(feats, strides)], 1)
                     for b, xy in enumerate(xy_per_image)])  # (B, N, C)


@pytest.mark.parametrize("size", [(75, 101), (47, 61)])
def test_every_tap_is_read_at_stride_true_positions_sparse_and_dense(size):
    """Sides that are not multiples of 32: the gathers (bag and grid_sample) and the dense upsampling
    all equal an explicit NumPy bilinear read at u = (x + 0.5) / s - 0.5, for every tap of the real trunk."""
    model, feats = _real_features(size)
    assert model.strides == (1, 2, 4, 8, 16, 32)
    xy = [_coords(size, seed=0), _coords(size, seed=1)]
    expected = torch.from_numpy(_reference(feats, model.strides, xy))  # (B, N, C)
    coords = torch.from_numpy(np.stack(xy))  # (B, N, 2)
    for gather in GATHERS:
        got = sample_hypercolumns(feats, coords, model.strides, gather)
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10, msg=lambda m: f"{gather}: {m}")
    h, w = size
    dense = dense_hypercolumns(feats, model.strides, size)  # (B, C, H, W)
    assert dense.shape == (2, model.trunk.out_channels, h, w)
    at_pixels = dense.flatten(2).transpose(1, 2)  # (B, H*W, C), row-major like _coords' grid
    torch.testing.assert_close(at_pixels, expected[:, : h * w], atol=1e-10, rtol=1e-10)
    sparse = sample_hypercolumns(feats, coords[:, : h * w], model.strides)  # the sparse gather at every pixel
    torch.testing.assert_close(at_pixels, sparse, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("samples", [50, None])  # 50: the deep taps are projected; None: every pixel, all but conv1_2
def test_project_first_reads_stride_true_positions(samples):
    size = (47, 61)
    model, feats = _real_features(size)
    xy = [_coords(size, seed=2), _coords(size, seed=3)]
    if samples:
        xy = [c[np.random.default_rng(i).choice(len(c), samples, replace=False)] for i, c in enumerate(xy)]
    coords = torch.from_numpy(np.stack(xy))
    columns = torch.from_numpy(_reference(feats, model.strides, xy))  # (B, N, C)
    weight = torch.randn(16, columns.shape[-1], dtype=torch.float64)
    bias = torch.randn(16, dtype=torch.float64)
    cache: dict = {}
    got = first_layer_at(feats, coords, model.strides, weight, bias, cache)
    assert cache  # some tap went through its projection
    torch.testing.assert_close(got, columns @ weight.T + bias, atol=1e-9, rtol=1e-9)
    with torch.no_grad():  # the model's own path (project-first by default) gives the head on those columns
        out = model.head_at(feats, coords)
        expected = model.head(columns.flatten(0, 1)).view(2, -1, 3)
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=1e-9)


def test_pooled_cell_i_is_centred_at_stride_i_plus_half_stride_minus_one():
    """Through the real trunk's layers (convolutions made identities on two channels, real max pools,
    fc6/fc7 included): channel 0 carries max x, channel 1 carries -min x over each cell's pixels, so
    cell i of a stride-s tap pools exactly pixels s·i … s·i + s - 1, centred at s·i + (s - 1) / 2."""
    trunk = VGGTrunk(LAYERS, batch_norm=False, width=1 / 16).double()
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
                m.bias.zero_()
                k = m.kernel_size[0] // 2
                assert m.stride == (1, 1) and m.padding == (k, k)  # symmetric: no shift of centres
                for c in (0, 1):
                    m.weight[c, c, k, k] = 1.0
    for h, w in [(75, 101), (47, 61)]:
        for axis in ("x", "y"):
            ramp = torch.arange(w if axis == "x" else h, dtype=torch.float64)
            ramp = ramp.view(1, -1).expand(h, w) if axis == "x" else ramp.view(-1, 1).expand(h, w)
            big = float(max(h, w))
            image = torch.stack([ramp + 1, big - ramp, torch.zeros(h, w, dtype=torch.float64)])[None]  # all > 0
            with torch.no_grad():
                out = trunk(image)
            for tap, f in out.items():
                s = STRIDES[tap]
                assert f.shape[-2:] == (h // s, w // s), tap
                hi, lo = f[0, 0] - 1, big - f[0, 1]  # (h', w') max and min pixel index pooled into each cell
                idx = torch.arange(f.shape[-1] if axis == "x" else f.shape[-2], dtype=torch.float64)
                idx = idx.view(1, -1) if axis == "x" else idx.view(-1, 1)
                torch.testing.assert_close(lo, (s * idx).expand_as(lo), msg=lambda m: f"{tap} {axis}: {m}")
                torch.testing.assert_close(hi, (s * idx + s - 1).expand_as(hi), msg=lambda m: f"{tap} {axis}: {m}")
                torch.testing.assert_close((hi + lo) / 2, (s * idx + (s - 1) / 2).expand_as(hi))


def test_strides_must_match_the_maps():
    feats = [torch.zeros(1, 2, 8, 8)]
    with pytest.raises(ValueError, match="strides"):
        sample_hypercolumns(feats, torch.zeros(1, 3, 2), (1, 2))

import pytest
import torch
from torchvision.models import vgg

from pixelnet.model.hypercolumn import sample_hypercolumns
from pixelnet.model.pixelnet import ModelConfig, PixelNet, build_model, model_from_checkpoint, save_checkpoint
from pixelnet.model.trunk import LAYERS, VGGTrunk


def test_full_width_trunk_is_torchvision_vgg16_bn():
    trunk = VGGTrunk(LAYERS, batch_norm=True, width=1.0)
    reference = vgg.vgg16_bn(weights=None).features
    assert [tuple(p.shape) for p in trunk.features.parameters()] == [tuple(p.shape) for p in reference.parameters()]
    assert trunk.fc6.kernel_size == (7, 7) and trunk.fc6.padding == (3, 3)
    assert trunk.out_channels == 64 + 128 + 256 + 512 + 512 + 4096  # 5,568 as in the paper


def test_taps_have_the_expected_strides():
    trunk = VGGTrunk(LAYERS, batch_norm=False, width=0.0625)
    out = trunk(torch.rand(1, 3, 64, 64))
    assert [v.shape[-1] for v in out.values()] == [64, 32, 16, 8, 4, 2]  # fc7: padding 3 keeps pool5's size


def test_unknown_layer_names_the_key():
    with pytest.raises(ValueError, match="model.layers"):
        ModelConfig(layers=("conv9_9",))


def test_linear_head_with_batch_norm():
    model = build_model(ModelConfig(layers=("conv1_2",), width=0.0625, head="linear", head_batch_norm=True), 3)
    assert isinstance(model.head[0], torch.nn.BatchNorm1d) and isinstance(model.head[1], torch.nn.Linear)
    assert model(torch.rand(2, 3, 16, 16) * 255, torch.rand(2, 5, 2) * 15).shape == (2, 5, 3)


def test_checkpoint_round_trip_and_init_from_checkpoint(tmp_path):
    cfg = ModelConfig(layers=("conv1_2", "conv2_2"), width=0.0625, hidden=(8,), dropout=0.0)
    model = build_model(cfg, 3).eval()
    save_checkpoint(tmp_path / "m.pt", model)
    again, state = model_from_checkpoint(tmp_path / "m.pt")
    x, c = torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 7, 2) * 15
    torch.testing.assert_close(model(x, c), again(x, c))
    warm = build_model(ModelConfig(**{**cfg.__dict__, "init": str(tmp_path / "m.pt")}), 3)
    torch.testing.assert_close(warm.trunk.features[0].weight, model.trunk.features[0].weight)


def test_imagenet_init_offline_gives_a_clear_error(monkeypatch, tmp_path):
    """No weights in the cache and no network: the error says what to do, not a socket traceback."""
    import urllib.error

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    import torchvision.models._api as api

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="model.init=imagenet.*scratch"):
        build_model(ModelConfig(layers=("conv1_2",), init="imagenet"), 1)


# ----------------------------------------------------------------------------- head batch norm on valid rows

def _bn_models():
    torch.manual_seed(0)
    cfg = ModelConfig(layers=("conv1_2", "conv3_3", "conv5_3"), width=1 / 16, hidden=(16,), dropout=0.0,
                      head_batch_norm=True, head_init="kaiming")
    models = [PixelNet(cfg, 3).double().train() for _ in range(3)]
    for m in models[1:]:
        m.load_state_dict(models[0].state_dict())
    return models


def test_head_batch_norm_with_padded_rows_equals_batch_norm_on_the_valid_rows():
    """Padded rows (valid False) change neither the valid rows' outputs, nor the gradients, nor the
    running statistics: all equal BatchNorm1d run on the valid rows alone."""
    padded, alone, unmasked = _bn_models()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 47, 61, generator=g, dtype=torch.float64) * 255
    coords = torch.rand(2, 20, 2, generator=g, dtype=torch.float64) * torch.tensor([60.0, 46.0], dtype=torch.float64)
    valid = torch.zeros(2, 20, dtype=torch.bool)
    valid[0, :20], valid[1, :7] = True, True
    coords[~valid] = 0.0  # padding: every padded row reads the corner pixel
    weights = torch.rand(int(valid.sum()), 3, generator=g, dtype=torch.float64)

    out = padded(images, coords, valid)  # (B, N, K)
    assert out.shape == (2, 20, 3) and torch.isfinite(out).all()
    (out[valid] * weights).sum().backward()

    feats = alone.features(images)
    columns = sample_hypercolumns(feats, coords, alone.strides)[valid]  # (M, C): the valid rows only
    expected = alone.head(columns)  # plain BatchNorm1d on M rows
    (expected * weights).sum().backward()

    torch.testing.assert_close(out[valid], expected, atol=1e-10, rtol=1e-9)
    for (name, p), q in zip(padded.named_parameters(), alone.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=1e-8, msg=lambda m: f"{name}: {m}")
    bn, ref = padded.head[0], alone.head[0]
    torch.testing.assert_close(bn.running_mean, ref.running_mean, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(bn.running_var, ref.running_var, atol=1e-12, rtol=1e-10)
    assert bn.num_batches_tracked == ref.num_batches_tracked == 1

    with torch.no_grad():  # the padded rows do matter when not masked out: the test can tell
        assert not torch.allclose(unmasked(images, coords)[valid], expected)
    padded.eval()  # running statistics: rows are independent, valid changes nothing
    with torch.no_grad():
        torch.testing.assert_close(padded(images, coords, valid), padded(images, coords))


def test_valid_must_match_the_coords():
    model = _bn_models()[0]
    with pytest.raises(ValueError, match="valid"):
        model(torch.rand(2, 3, 32, 32, dtype=torch.float64), torch.rand(2, 5, 2, dtype=torch.float64),
              torch.ones(2, 4, dtype=torch.bool))


# ----------------------------------------------------------------------------- head initialisation

@pytest.mark.parametrize("init", ["gaussian", "kaiming"])
def test_head_initialisation_draws_the_configured_std(init):
    cfg = ModelConfig(layers=LAYERS, width=1 / 16, hidden=(512, 256), dropout=0.0, head_init=init,
                      head_std=2e-3, head_std_last=5e-3)
    model = PixelNet(cfg, 128)
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for i, layer in enumerate(linears):
        fan_in = layer.weight.shape[1]
        want = 5e-3 if i == 2 else (2e-3 if init == "gaussian" else (2 / fan_in) ** 0.5)
        assert abs(layer.weight.std().item() / want - 1) < 0.03, (i, layer.weight.std().item(), want)
        assert abs(layer.weight.mean().item()) < 0.05 * want
        assert torch.count_nonzero(layer.bias) == 0


def test_default_head_init_is_the_papers_gaussian():
    cfg = ModelConfig()
    assert (cfg.head_init, cfg.head_std, cfg.head_std_last) == ("gaussian", 1e-3, 1e-3)


@pytest.mark.parametrize("field, value", [("head_init", "xavier"), ("head_std", 0.0), ("head_std_last", -1e-3),
                                          ("head_std", float("nan")), ("head_std_last", "big")])
def test_bad_head_init_names_the_key(field, value):
    with pytest.raises(ValueError, match=f"^model\\.{field} "):
        ModelConfig(**{field: value})

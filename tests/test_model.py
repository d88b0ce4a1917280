import pytest
import torch
from torchvision.models import vgg

from pixelnet.model.pixelnet import ModelConfig, build_model, model_from_checkpoint, save_checkpoint
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

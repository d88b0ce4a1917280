"""model.norm: GroupNorm makes what the trunk computes for one image independent of its batch."""

import pytest
import torch

from pixelnet.model.pixelnet import ModelConfig, PixelNet, build_model

LAYERS = ("conv1_2", "conv3_3", "conv5_3")


def _trunk(norm: str, **kwargs):
    torch.manual_seed(0)
    config = ModelConfig(layers=LAYERS, width=1 / 16, hidden=(8,), norm=norm, head_init="kaiming", **kwargs)
    return build_model(config, 1, say=lambda msg: None).trunk.train()  # train mode: batch norm uses the batch


def _first_image_alone_and_in_a_batch(trunk):
    torch.manual_seed(1)
    images = torch.rand(4, 3, 48, 48) * 255
    with torch.no_grad():
        alone = trunk(images[:1])
        batch = trunk(images)
    return alone, batch


# The trunks the ablations' norm check puts against batch norm: 4 groups, one group (layer norm), none.
@pytest.mark.parametrize("kwargs", [{"norm": "group"}, {"norm": "group", "norm_groups": 1},
                                    {"norm": "batch", "batch_norm": False}], ids=["group4", "group1", "none"])
def test_a_batch_independent_trunk_output_does_not_depend_on_the_other_images(kwargs):
    alone, batch = _first_image_alone_and_in_a_batch(_trunk(**kwargs))
    for tap in LAYERS:
        scale = float(alone[tap][0].abs().max())  # the plain trunk's activations reach hundreds: float rounding only
        assert torch.allclose(alone[tap][0], batch[tap][0], atol=1e-6 * max(scale, 1.0)), tap


def test_batch_norm_output_does_depend_on_the_batch():  # the contrast that makes the test above mean something
    alone, batch = _first_image_alone_and_in_a_batch(_trunk("batch"))
    assert not torch.allclose(alone["conv5_3"][0], batch["conv5_3"][0], atol=1e-3)


def test_group_norm_replaces_every_batch_norm_and_keeps_the_taps():
    trunk = _trunk("group")
    kinds = {type(m).__name__ for m in trunk.features}
    assert "GroupNorm" in kinds and "BatchNorm2d" not in kinds
    assert trunk.channels == _trunk("batch").channels


def test_norm_settings_are_checked():
    with pytest.raises(ValueError, match="model.norm"):
        ModelConfig(norm="layer")
    with pytest.raises(ValueError, match="model.norm_groups"):
        ModelConfig(norm_groups=0)
    with pytest.raises(ValueError, match="ImageNet"):
        ModelConfig(norm="group", init="imagenet")
    PixelNet(ModelConfig(layers=LAYERS, width=1 / 16, hidden=(8,), norm="group", norm_groups=3), 1)  # 3 ∤ 4: gcd

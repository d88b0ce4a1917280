"""model.init from a checkpoint of another task (the paper's Tables 5/6): the trunk always, the head
layers whose shapes fit, the rest fresh, and one line saying which."""

from dataclasses import replace

import pytest
import torch

from pixelnet.model.pixelnet import ModelConfig, PixelNet, build_model, save_checkpoint
from pixelnet.model.trunk import VGGTrunk

CFG = ModelConfig(layers=("conv1_2", "conv3_3", "conv5_3"), width=1 / 16, hidden=(16, 8), dropout=0.0)


@pytest.fixture
def normals_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model(CFG, 3)  # a normals model: 3 outputs
    with torch.no_grad():  # distinctive values everywhere, batch-norm buffers included
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t))
    path = tmp_path / "normals.pt"
    save_checkpoint(path, model, {"task": "normals"})
    return path, model


@pytest.mark.parametrize("dropout", [0.0, 0.5])  # 0.5 moves the head's Linears to other Sequential indices
def test_normals_checkpoint_initialises_a_segmentation_model(normals_checkpoint, dropout):
    path, normals = normals_checkpoint
    cfg = replace(CFG, init=str(path), dropout=dropout)
    lines: list[str] = []
    torch.manual_seed(1)
    seg = build_model(cfg, 21, say=lines.append)
    torch.manual_seed(1)
    fresh = PixelNet(cfg, 21)  # the same draws as build_model's before it loads anything

    theirs, mine = normals.state_dict(), seg.state_dict()
    trunk = [k for k in theirs if k.startswith("trunk.")]
    assert trunk and all(torch.equal(mine[k], theirs[k]) for k in trunk)
    ours = [m for m in seg.head if isinstance(m, torch.nn.Linear)]
    old = [m for m in normals.head if isinstance(m, torch.nn.Linear)]
    for a, b in zip(ours[:2], old[:2]):  # hidden layers fit: loaded
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    last, fresh_last = ours[-1], [m for m in fresh.head if isinstance(m, torch.nn.Linear)][-1]
    assert last.weight.shape == (21, 8)
    assert torch.equal(last.weight, fresh_last.weight) and torch.count_nonzero(last.bias) == 0  # fresh

    assert len(lines) == 1
    line = lines[0]
    assert str(path) in line and "trunk" in line
    loaded, fresh_part = line.split("fresh:")
    first, second, out = (f"head.{i}" for i, m in enumerate(seg.head) if isinstance(m, torch.nn.Linear))
    assert f"{first} (Linear" in loaded and f"{second} (Linear 16->8)" in loaded and out not in loaded
    assert f"{out} (Linear 8->21)" in fresh_part and "8->3" in fresh_part


def test_head_batch_norm_missing_from_the_checkpoint_stays_fresh(normals_checkpoint):
    path, _ = normals_checkpoint
    lines: list[str] = []
    seg = build_model(replace(CFG, init=str(path), head_batch_norm=True), 5, say=lines.append)
    bn = seg.head[0]
    assert isinstance(bn, torch.nn.BatchNorm1d) and torch.count_nonzero(bn.running_mean) == 0
    assert len(lines) == 1 and "head.0 (BatchNorm1d" in lines[0].split("fresh:")[1]


@pytest.mark.parametrize("change, key", [
    ({"width": 1 / 8}, "trunk.features.0.weight"),
    ({"batch_norm": False}, "trunk.features."),
    ({"layers": ("conv1_2", "conv3_3", "fc7")}, "trunk.fc6.weight"),
])
def test_a_trunk_that_does_not_fit_names_the_checkpoint_and_the_key(normals_checkpoint, change, key):
    path, _ = normals_checkpoint
    with pytest.raises(RuntimeError) as err:
        build_model(replace(CFG, init=str(path), **change), 21, say=lambda line: None)
    message = str(err.value)
    assert str(path) in message and key in message and "does not fit" in message


def test_unused_checkpoint_taps_are_skipped_and_said(tmp_path):
    torch.manual_seed(0)
    with_fc7 = build_model(replace(CFG, layers=("conv1_2", "conv3_3", "fc7")), 3)
    path = tmp_path / "fc7.pt"
    save_checkpoint(path, with_fc7)
    lines: list[str] = []
    model = build_model(replace(CFG, layers=("conv1_2", "conv3_3"), init=str(path)), 3, say=lines.append)
    assert torch.equal(model.trunk.features[0].weight, with_fc7.trunk.features[0].weight)
    assert len(lines) == 1 and "fc6" in lines[0] and "fc7" in lines[0]


@pytest.mark.parametrize("batch_norm", [True, False])
def test_imagenet_with_batch_norm_says_which_weights(monkeypatch, batch_norm):
    monkeypatch.setattr(VGGTrunk, "load_imagenet", lambda self, bn: None)  # no download in tests
    lines: list[str] = []
    build_model(replace(CFG, init="imagenet", batch_norm=batch_norm), 3, say=lines.append)
    if batch_norm:
        assert len(lines) == 1 and "VGG16-BN" in lines[0] and "batch_norm: false" in lines[0]
    else:
        assert lines == []

"""Training levers of the edge recipe: the cosine schedule, the weight average (EMA), leaving
ambiguous edge pixels out of the draw, and the CPU's bf16 capability behind train.precision auto."""

import math

import numpy as np
import pytest
import torch

from pixelnet.bench.train import TrainBench, synthetic_batches
from pixelnet.device import cpu_flags
from pixelnet.model.pixelnet import PixelNet, model_from_checkpoint
from pixelnet.tasks import EdgesTask
from pixelnet.train import TrainConfig, WeightAverage, learning_rate, train

TINY = TrainBench(image_size=32, images=2, samples=50, layers=("conv1_2", "conv3_3"), hidden=(16,), dropout=0.0,
                  width=1 / 16, steps=3, warmup=1, workers=0)


def test_cosine_schedule_falls_from_lr_to_zero_and_refuses_lr_steps():
    config = TrainConfig(iterations=100, lr=0.1, schedule="cosine")
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 50) == pytest.approx(0.05)
    assert learning_rate(config, 99) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    with pytest.raises(ValueError, match="train.lr_steps"):
        TrainConfig(schedule="cosine", lr_steps=(50,))
    with pytest.raises(ValueError, match="train.schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="train.ema"):
        TrainConfig(ema=1.0)


def test_weight_average_follows_the_decay_and_copies_integer_buffers():
    model = torch.nn.BatchNorm1d(3)
    average = WeightAverage(model, decay=0.9)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    model.num_batches_tracked += 5
    average.update(model)  # t = 1: keep min(0.9, 2/11)
    keep = 2 / 11
    assert torch.allclose(average.state["weight"], keep * before + (1 - keep) * model.weight)
    assert int(average.state["num_batches_tracked"]) == 5


def test_training_with_ema_saves_the_average_and_trains_the_same(tmp_path):
    saved = {}
    for ema in (0.0, 0.5):
        torch.manual_seed(0)
        model = PixelNet(TINY.model_config(), 1)
        config = TrainConfig(iterations=6, lr=0.05, device="cpu", log_every=3, ema=ema)
        out = tmp_path / str(ema)
        saved[ema] = train(model, EdgesTask(), synthetic_batches(TINY, pin=False), config, out, out / "log.csv",
                           progress=False, timing_warmup=1)
        saved[ema]["state"] = model_from_checkpoint(out / "model.pt")[0].state_dict()
    plain, averaged = saved[0.0], saved[0.5]
    assert plain["weights"] == "last step" and averaged["weights"] == "moving average (ema 0.5)"
    assert "cpu" in averaged["machine"]
    assert averaged["final_loss"] == plain["final_loss"]  # the average does not change what training does
    changed = [k for k, v in averaged["state"].items() if v.is_floating_point() and not torch.equal(v, plain["state"][k])]
    assert changed  # only what is saved


def _record():
    edge = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)  # annotator counts
    return {"edge": edge, "meta": {"annotators": 5}}


def test_ambiguous_pixels_train_as_negatives_or_are_never_drawn():
    assert EdgesTask(consensus=3).strata(_record()).tolist() == [[0, 0, 0], [1, 1, 0]]
    assert EdgesTask(consensus=3, ambiguous="ignore").strata(_record()).tolist() == [[0, -1, -1], [1, 1, 0]]
    with pytest.raises(ValueError, match="ambiguous"):
        EdgesTask(ambiguous="drop")


def test_cpu_flags_are_read_from_cpuinfo():
    text = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\nbogomips\t: 1\n"
    assert {"avx512_bf16", "avx512f"} <= cpu_flags(text)
    assert cpu_flags("processor: 0\n") == set()

"""The GPU fast path of the training loop, exercised on the CPU where torch supports it:
bf16 autocast, channels_last, torch.compile, deferred loss checks, throughput figures, `bench train`."""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.bench.train import TrainBench, flops_per_batch, run, synthetic_batches
from pixelnet.model.pixelnet import PixelNet
from pixelnet.tasks import EdgesTask
from pixelnet.train import FastPath, TrainConfig, train

TINY = TrainBench(image_size=32, images=2, samples=50, layers=("conv1_2", "conv3_3", "fc7"), hidden=(16,), dropout=0.0,
                  width=1 / 16, steps=3, warmup=1, workers=0)


def _model(bench=TINY):
    torch.manual_seed(0)
    model = PixelNet(bench.model_config(), 1)
    model.trunk.init_gaussian()
    return model


def test_defaults_take_the_plain_path_on_cpu_and_the_fast_one_when_asked(monkeypatch):
    plain = FastPath.resolve(TrainConfig(device="cpu"))
    assert (plain.bf16, plain.channels_last, plain.compile) == (False, False, False)
    for native in (True, False):  # auto: bf16 exactly where the CPU multiplies bf16 natively
        monkeypatch.setattr("pixelnet.train.cpu_bf16_native", lambda native=native: native)
        assert FastPath.resolve(TrainConfig(device="cpu", precision="auto")).bf16 is native
    fast = FastPath.resolve(TrainConfig(device="cpu", precision="bf16", memory_format="channels_last", compile=True))
    assert (fast.bf16, fast.channels_last, fast.compile) == (True, True, True)
    with pytest.raises(ValueError, match="train.precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="train.memory_format"):
        TrainConfig(memory_format="nhwc")


def test_bf16_channels_last_training_runs_and_reports_throughput(tmp_path):
    model = _model()
    config = TrainConfig(iterations=4, lr=1e-3, device="cpu", log_every=2, precision="bf16", memory_format="channels_last")
    summary = train(model, EdgesTask(), synthetic_batches(TINY, pin=False), config, tmp_path, tmp_path / "log.csv",
                    progress=False, timing_warmup=1)
    assert summary["precision"] == "bf16" and summary["memory_format"] == "channels_last"
    t = summary["throughput"]
    assert t["steps"] == 3 and t["images_per_s"] > 0 and 0 <= t["data_wait_share"] < 1
    assert torch.isfinite(torch.tensor(summary["final_loss"]))
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr" and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    conv = model.trunk.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and conv.dtype == torch.float32  # fp32 master weights


def test_bf16_autocast_keeps_the_model_close_to_fp32():
    model = _model().eval()
    batch = next(synthetic_batches(TINY, pin=False))
    with torch.no_grad():
        ref = model(batch.images, batch.coords)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(batch.images.contiguous(memory_format=torch.channels_last), batch.coords)
    assert fast.dtype == torch.bfloat16
    assert (fast.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-6


class _NanAt:
    """EdgesTask whose loss turns non-finite at one step (counted in calls)."""

    def __init__(self, step):
        self.inner, self.step, self.calls = EdgesTask(), step, 0
        self.name, self.out_channels = "edges", 1

    def loss(self, outputs, targets, weight):
        value = self.inner.loss(outputs, targets, weight)
        self.calls += 1
        return value * float("nan") if self.calls - 1 == self.step else value


def test_a_non_finite_loss_is_caught_with_its_step_even_though_losses_are_read_in_windows(tmp_path):
    config = TrainConfig(iterations=8, lr=1e-3, device="cpu", log_every=4, checkpoint_every=0)
    with pytest.raises(FloatingPointError, match="at step 5"):
        train(_model(), _NanAt(5), synthetic_batches(TINY, pin=False), config, tmp_path, tmp_path / "log.csv", progress=False)
    assert not (tmp_path / "log.csv").exists() and not (tmp_path / "model.pt").exists()


def test_torch_compile_trains_to_the_same_loss_as_eager(tmp_path):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler")
    losses = []
    for compiled in (False, True):
        config = TrainConfig(iterations=2, lr=1e-3, device="cpu", log_every=1, compile=compiled)
        out = tmp_path / str(compiled)
        train(_model(), EdgesTask(), synthetic_batches(TINY, pin=False), config, out, out / "log.csv", progress=False)
        losses.append([float(r.split(",")[1]) for r in (out / "log.csv").read_text().splitlines()[1:]])
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)


def test_flop_count_matches_the_arithmetic_of_the_head():
    """Two heads on the same trunk differ by exactly the arithmetic of their extra hidden units."""
    task = EdgesTask()
    fast = FastPath.resolve(TrainConfig(device="cpu"))
    batch = next(synthetic_batches(TINY, pin=False))
    totals = []
    for hidden in ((16,), (32,)):
        bench = TrainBench(**{**TINY.__dict__, "hidden": hidden, "project_first": False})
        totals.append(flops_per_batch(_model(bench), task, batch, fast))
    c = _model().trunk.out_channels
    n = TINY.images * TINY.samples
    # Layers (C x h) and (h x 1): 16 more hidden units cost 2·n·(C + 1)·16 forward, and twice that
    # backward (weight gradients, and input gradients: the first layer's flow on into the trunk).
    assert totals[1] - totals[0] == 3 * 2 * n * (c + 1) * 16
    # Projecting fc7 (a 1x1 map at 32²) through the first layer before sampling saves its rows' work.
    fused = flops_per_batch(_model(TrainBench(**{**TINY.__dict__, "hidden": (16,)})), task, batch, fast)
    fc7 = _model().trunk.channels["fc7"]
    assert totals[0] - fused == 3 * 2 * (n - TINY.images * 1) * fc7 * 16


def test_bench_train_reports_both_inputs(tiny_shards, tmp_path):
    report = run(TrainBench(**{**TINY.__dict__, "shards": str(tiny_shards)}), "cpu")
    assert [r["input"] for r in report["rows"]] == ["synthetic", "shards"]
    for r in report["rows"]:
        assert r["images_per_s"] > 0 and r["flops_per_image"] > 0 and 0 < r["roofline_share"] < 1
        assert 0 <= r["data_wait_share"] < 1 and r["steps"] == TINY.steps
    assert report["peak_bf16_tflops"] > 0 and report["peak_measured"]


def test_bench_train_cli_needs_shards_for_the_shards_input(tmp_path):
    result = CliRunner().invoke(app, ["bench", "train", "--device", "cpu", "--inputs", "shards", "--out", str(tmp_path / "t.json")])
    assert result.exit_code == 2 and "--shards" in result.output and not (tmp_path / "t.json").exists()
    result = CliRunner().invoke(app, ["bench", "train", "--device", "cpu", "--inputs", "synthetic", "--image-size", "32",
                                      "--images", "2", "--samples", "20", "--layers", "conv1_2,conv2_2", "--hidden", "8",
                                      "--width", "0.0625", "--steps", "2", "--warmup", "1", "--peak-tflops", "1",
                                      "--out", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["rows"][0]["input"] == "synthetic" and not report["peak_measured"]
    assert "share of roofline" in (tmp_path / "t.md").read_text()

"""Training that survives: a SIGKILLed run resumes from its last checkpoint and ends with the same
weights as an uninterrupted run; SIGTERM saves the state first; changed settings start afresh."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from pipeline import stages
from pipeline.params import load_params


def _setup(tmp_path: Path, tiny: dict, tiny_shards: Path, iterations: int = 240) -> tuple[Path, Path]:
    tiny["train"].update(iterations=iterations, checkpoint_every=10, log_every=5, lr_steps=[iterations // 2],
                         threads=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny))
    samples = tmp_path / "samples"
    stages.sample("edges", load_params(params), tiny_shards, samples)
    return params, samples


def _cmd(params: Path, shards: Path, samples: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "train", "edges", "--shards", str(shards), "--samples", str(samples),
            "--out", str(out), "--log", str(out / "loss.csv"), "--params", str(params), "--quiet"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _kill_after_checkpoint(cmd: list[str], out: Path, sig: int) -> tuple[int, subprocess.Popen]:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = out / "last.pt"
    deadline = time.time() + 300
    while not state.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"no checkpoint appeared: {proc.communicate()}")
        time.sleep(0.002)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    step = torch.load(state, map_location="cpu", weights_only=False)["step"]
    return step, proc


def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path, tiny_params_dict, tiny_shards):
    params, samples = _setup(tmp_path, tiny_params_dict, tiny_shards)
    whole = _run(_cmd(params, tiny_shards, samples, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    step, proc = _kill_after_checkpoint(_cmd(params, tiny_shards, samples, out), out, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and 0 < step < 240
    again = _run(_cmd(params, tiny_shards, samples, out))
    assert again.returncode == 0, again.stderr
    resumed = int(again.stderr.split("resuming from step ")[1].split()[0])
    assert resumed >= step and resumed % 10 == 0
    a, b = _weights(tmp_path / "whole" / "model.pt"), _weights(out / "model.pt")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # The loss log is whole too: one row per 5 steps, as the uninterrupted run wrote it.
    assert (out / "loss.csv").read_text() == (tmp_path / "whole" / "loss.csv").read_text()


def test_sigterm_saves_the_state_and_says_how_to_resume(tmp_path, tiny_params_dict, tiny_shards):
    params, samples = _setup(tmp_path, tiny_params_dict, tiny_shards, iterations=4000)
    out = tmp_path / "run"
    _, proc = _kill_after_checkpoint(_cmd(params, tiny_shards, samples, out), out, signal.SIGTERM)
    stderr = proc.stderr.read()
    assert proc.returncode == 2 and "stopped by signal" in stderr and "re-run the same command to resume" in stderr
    saved = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert 0 < saved["step"] < 4000 and "optimizer" in saved and "rng" in saved
    assert not (out / "model.pt").exists() and not (out / "loss.csv").exists()


def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path, tiny_params_dict, tiny_shards):
    params, samples = _setup(tmp_path, tiny_params_dict, tiny_shards, iterations=30)
    out = tmp_path / "run"
    assert _run(_cmd(params, tiny_shards, samples, out)).returncode == 0
    changed = yaml.safe_load(params.read_text())
    changed["train"]["lr"] = 0.02
    params.write_text(yaml.safe_dump(changed))
    again = _run(_cmd(params, tiny_shards, samples, out))
    assert again.returncode == 0 and "other settings, data or code; starting from scratch" in again.stderr
    assert "resuming" not in again.stderr


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    """Losses are read back in windows; the one that goes bad at step 6 is named, and last.pt stays at
    step 4, the checkpoint before it, with finite weights. No model.pt and no CSV are written."""
    from test_train_fastpath import TINY, _model, _NanAt

    from pixelnet.bench.train import synthetic_batches
    from pixelnet.train import TrainConfig, train

    config = TrainConfig(iterations=10, lr=1e-3, device="cpu", log_every=3, checkpoint_every=4)
    with pytest.raises(FloatingPointError, match="at step 6"):
        train(_model(), _NanAt(6), lambda start: synthetic_batches(TINY, pin=False), config, tmp_path,
              tmp_path / "loss.csv", progress=False)
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "loss.csv").exists()

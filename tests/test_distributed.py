"""Multi-process training on torch.distributed: ranks read disjoint samples that together cover the
epoch, and two gloo processes under torchrun take the same step as one process on their union batch."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys

import torch
import yaml

from conftest import REPO
from pipeline import stages
from pipeline.params import load_params
from pixelnet.batches import PixelBatches
from pixelnet.data.shards import shard_paths
from pixelnet.plan import Plan
from pixelnet.tasks import EdgesTask


def _keys(shards, plan, rank, world, batches=4):
    """Keys one rank reads in its first `batches` batches (the tiny train split has 8 images)."""
    ds = PixelBatches(shard_paths(shards, "train"), plan, EdgesTask(), 2, rank=rank, world_size=world)
    return [k for b in itertools.islice(iter(ds), batches) for k in b.keys]


def test_ranks_read_disjoint_samples_covering_each_epoch(tmp_path, tiny_params_dict, tiny_shards):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    stages.sample("edges", load_params(params), tiny_shards, tmp_path / "samples")
    plan = Plan.load(tmp_path / "samples" / "plan.npz")
    r0, r1 = _keys(tiny_shards, plan, 0, 2, batches=2), _keys(tiny_shards, plan, 1, 2, batches=2)
    assert len(r0) == len(r1) == 4 and not set(r0) & set(r1)
    assert set(r0) | set(r1) == set(plan.keys.tolist())  # one epoch: every training image exactly once
    single = _keys(tiny_shards, plan, 0, 1, batches=4)
    assert sorted(single) == sorted(r0 + r1)  # the same epoch order, dealt out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_step_like_one_process_on_the_union_batch(tmp_path, tiny_params_dict, tiny_shards):
    tiny = tiny_params_dict
    # A step whose loss is a plain mean over equally many pixels per rank, and no batch statistics:
    # then DDP's averaged gradient is exactly the union batch's gradient.
    tiny["model"].update(batch_norm=False, head_batch_norm=False, dropout=0.0)
    tiny["train"].update(iterations=1, checkpoint_every=0, log_every=1, threads=1)
    tiny["sampling"]["augment"] = {"scale": [1.0, 1.0], "flip": False, "crop": 32}
    tiny["sampling"]["strategy"]["segmentation"] = "stratified"
    runs = {}
    for world, per_rank in ((2, 2), (1, 4)):
        tiny["sampling"]["images_per_batch"] = per_rank
        params = tmp_path / f"params{world}.yaml"
        params.write_text(yaml.safe_dump(tiny))
        samples = tmp_path / f"samples{world}"
        stages.sample("segmentation", load_params(params), tiny_shards, samples)
        out = tmp_path / f"model{world}"
        train = ["-m", "pipeline", "train", "segmentation", "--shards", str(tiny_shards), "--samples", str(samples),
                 "--out", str(out), "--loss-log", str(out / "loss.csv"), "--params", str(params), "--quiet"]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                    f"--master_port={_free_port()}"] if world == 2 else [sys.executable]
        result = subprocess.run([*launcher, *train], cwd=REPO, capture_output=True, text=True, timeout=600,
                                env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        runs[world] = torch.load(out / "model.pt", map_location="cpu", weights_only=False)["model"]
    assert torch.load(tmp_path / "model2" / "model.pt", map_location="cpu", weights_only=False)["step"] == 1
    for name, value in runs[1].items():
        torch.testing.assert_close(runs[2][name], value, atol=1e-6, rtol=1e-5, msg=name)

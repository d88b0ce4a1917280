"""Tiny synthetic data shared by the tests: 32 px scenes, a few shards, a matching params file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pixelnet.data import synthetic
from pixelnet.data.shards import write_shards

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

TINY_PARAMS = {
    "datasets": ["synthetic"],
    "data": {
        "shard_size": 4,
        "synthetic": {"image_size": 32, "num_train": 8, "num_test": 3, "seed": 1, "noise_std": 0.03, "max_objects": 3},
    },
    "tasks": {
        "edges": {"dataset": "synthetic", "consensus": 3},
        "normals": {"dataset": "synthetic", "loss": "cosine", "train": {"clip_grad_norm": 1.0}},
        "segmentation": {"dataset": "synthetic"},
    },
    "sampling": {
        "pixels_per_image": 64, "images_per_batch": 2, "draws": 2, "seed": 0, "positive_fraction": 0.5,
        "strategy": {"edges": "edge_biased", "normals": "uniform", "segmentation": "stratified"},
        "augment": {"crop": 32, "scale": [0.8, 1.25], "flip": True},
    },
    "model": {
        "layers": ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "fc7"], "batch_norm": True,
        "width": 0.0625, "head": "mlp", "hidden": [16], "dropout": 0.0, "head_batch_norm": False, "init": "scratch",
    },
    "train": {
        "iterations": 3, "lr": 0.01, "lr_steps": [2], "lr_gamma": 0.1, "momentum": 0.9, "weight_decay": 0.0005,
        "seed": 0, "device": "cpu", "checkpoint_every": 2, "log_every": 1, "num_workers": 0, "threads": 0,
    },
    "evaluate": {
        "scales": [1.0], "flip": False, "chunk_pixels": 300, "thresholds": 9, "max_dist": 0.0075, "thin": True,
        "grid_images": 2, "max_images": 0,
    },
}


@pytest.fixture()
def tiny_params_dict() -> dict:
    import copy

    return copy.deepcopy(TINY_PARAMS)


@pytest.fixture()
def tiny_params_file(tmp_path: Path, tiny_params_dict: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict))
    return path


def _records(config: synthetic.SyntheticConfig, split: str):
    for i in range(config.count(split)):
        key = f"synthetic-{split}-{i:05d}"
        yield {"key": key, **synthetic.render(config, split, i), "meta": {"annotators": 1, "split": split}}


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """Shards of 8 train + 3 test scenes at 32 px (three shards of up to 4 for train)."""
    cfg = synthetic.SyntheticConfig(**TINY_PARAMS["data"]["synthetic"])
    out = tmp_path_factory.mktemp("shards") / "synthetic"
    write_shards({s: _records(cfg, s) for s in ("train", "test")}, out, "synthetic", list(synthetic.CLASSES), shard_size=4)
    return out

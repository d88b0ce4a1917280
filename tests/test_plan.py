"""The sampling plan: every planned pixel lands in its window, the loader applies the plan exactly,
a window with too few valid pixels pads instead of failing, and the kernel matches its NumPy twin."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from pipeline import stages
from pipeline.params import parse_params
from pixelnet.batches import PixelBatches
from pixelnet.data.shards import read_shards, shard_paths, write_shards
from pixelnet.data.transforms import warp
from pixelnet.plan import (AugmentConfig, Plan, auto_draws, draw_affine, inside, move, plan_image, window_strata,
                           window_strata_numpy)
from pixelnet.sampling import SamplingConfig
from pixelnet.tasks import EdgesTask, NormalsTask, SegmentationTask
from pixelnet.tasks.edges import positives

AUGMENT = AugmentConfig(crop=24, scale=(0.6, 1.5), flip=True, rotate=180.0)


@pytest.mark.parametrize("shape", [(75, 101), (32, 32), (17, 40)])
def test_window_kernel_matches_its_numpy_twin(shape):
    rng = np.random.default_rng(sum(shape))
    strata = rng.integers(-1, 3, size=shape).astype(np.int32)
    for _ in range(20):
        m, *_ = draw_affine(*shape, AUGMENT, rng)
        np.testing.assert_array_equal(window_strata(strata, m, AUGMENT.crop), window_strata_numpy(strata, m, AUGMENT.crop))


@pytest.mark.parametrize("strategy", ["uniform", "stratified", "edge_biased"])
def test_every_planned_pixel_is_valid_distinct_and_inside_its_window(strategy):
    rng = np.random.default_rng(1)
    strata = rng.integers(-1, 2 if strategy == "edge_biased" else 5, size=(75, 101)).astype(np.int32)
    config = SamplingConfig(strategy=strategy, pixels_per_image=150, draws=1, seed=3)
    part = plan_image(strata, "key-1", config, AUGMENT, draws=12)
    assert (part["counts"] == 150).mean() > 0.5  # most windows of 24² hold 150 valid pixels
    for k in range(12):
        available = (window_strata_numpy(strata, part["affine"][k], AUGMENT.crop) >= 0).sum()
        assert part["counts"][k] == min(150, available)  # all of them when fewer
        pixels = part["pixels"][k, : part["counts"][k]].astype(np.int64)
        assert len(np.unique(pixels)) == len(pixels) and (strata.ravel()[pixels] >= 0).all()
        assert inside(move(pixels, 101, part["affine"][k]), AUGMENT.crop).all()
    again = plan_image(strata, "key-1", config, AUGMENT, draws=12)
    other = plan_image(strata, "key-2", config, AUGMENT, draws=12)
    for f in part:
        np.testing.assert_array_equal(part[f], again[f])  # deterministic from (seed, key)
    assert not np.array_equal(part["pixels"], other["pixels"])
    assert len(np.unique(part["angle"])) == 12 and part["flip"].any() and not part["flip"].all()


def test_edge_biased_takes_its_positive_share_inside_the_window():
    strata = np.zeros((64, 64), np.int32)
    strata[::4] = 1  # a quarter of the rows are edges
    config = SamplingConfig(strategy="edge_biased", pixels_per_image=100, draws=1, positive_fraction=0.5, seed=0)
    part = plan_image(strata, "k", config, AugmentConfig(crop=32, scale=(1.0, 1.0), flip=False), draws=5)
    for k in range(5):
        assert (strata.ravel()[part["pixels"][k].astype(np.int64)] == 1).sum() == 50


def test_too_few_valid_pixels_in_the_window_pads_instead_of_failing():
    strata = np.full((40, 40), -1, np.int32)
    strata[10:14, 10:14] = 0  # 16 valid pixels in all
    config = SamplingConfig(strategy="uniform", pixels_per_image=50, draws=1, seed=0)
    part = plan_image(strata, "sparse", config, AugmentConfig(crop=40, scale=(1.0, 1.0), flip=True), draws=4)
    assert (part["counts"] <= 16).all() and (part["counts"] > 0).any()
    for k in range(4):
        real = part["pixels"][k, : part["counts"][k]].astype(np.int64)
        assert (strata.ravel()[real] == 0).all() and len(np.unique(real)) == len(real)


def test_padding_rows_reach_the_loss_as_neutral_targets(tmp_path):
    """A padding row (beyond `counts`) points at flat index 0; whatever label pixel 0 holds (here 100:
    not a class of K = 6 and not 255 = ignore), the row must not reach cross-entropy as a target."""
    label = np.full((32, 32), 255, np.uint8)
    label[10:14, 10:14] = 2  # 16 valid pixels in all: fewer than N, so every draw pads
    label[0, 0] = 100
    record = {"key": "pad-0", "image": np.zeros((32, 32, 3), np.uint8), "label": label, "meta": {"annotators": 1}}
    write_shards({"train": [record]}, tmp_path / "shards", "padding", ["c"] * 6, shard_size=4)
    task = SegmentationTask(num_classes=6)
    config = SamplingConfig(strategy="uniform", pixels_per_image=50, draws=1, seed=0)
    augment = AugmentConfig(crop=32, scale=(1.0, 1.0), flip=False)
    part = plan_image(task.strata(record), "pad-0", config, augment, draws=1)
    plan = Plan.stack(["pad-0"], [(32, 32)], [part], np.arange(1), augment.crop)
    batch = next(iter(PixelBatches(shard_paths(tmp_path / "shards", "train"), plan, task, images_per_batch=1)))
    real = batch.weight[0] > 0  # (N,)
    assert int(real.sum()) == 16 and (batch.targets[0][real] == 2).all()
    outputs = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)  # (N, K)
    loss = task.loss(outputs, batch.targets[0], batch.weight[0])  # raised IndexError: target 100 is out of bounds
    loss.backward()
    assert torch.isfinite(loss) and not outputs.grad[~real].any()  # padding rows carry no gradient
    expected = torch.nn.functional.cross_entropy(outputs[real], batch.targets[0][real])
    torch.testing.assert_close(loss, expected)
    assert not batch.targets[0][~real].any()  # padding rows: zero targets, whatever pixel 0 holds


def test_auto_draws_cover_the_run():
    assert auto_draws(900, 16, 400) == 36
    assert auto_draws(1000, 5, 300) == 17
    assert auto_draws(1, 1, 1000) == 1


def _task(name: str):
    return {"edges": EdgesTask(consensus=1), "normals": NormalsTask(), "segmentation": SegmentationTask(num_classes=6)}[name]


def _target_map(name: str, record: dict) -> np.ndarray:
    if name == "edges":
        return positives(record, 1).astype(np.float32)  # (H, W)
    return record["normal"] if name == "normals" else record["label"]


@pytest.mark.parametrize("name,strategy", [("edges", "edge_biased"), ("normals", "uniform"), ("segmentation", "stratified")])
def test_the_loader_applies_the_plan_exactly(name, strategy, tiny_shards):
    """Must-show 2a: for random plans (scale, rotation, flip, crop) every planned pixel's moved
    coordinate is inside the window; the image there shows that source pixel; the target is the
    source pixel's, normals turned with the image."""
    task = _task(name)
    records = {r["key"]: r for r in read_shards(shard_paths(tiny_shards, "train"))}
    config = SamplingConfig(strategy=strategy, pixels_per_image=200, draws=1, seed=7)
    keys = sorted(records)
    parts = [plan_image(task.strata(records[k]), k, config, AUGMENT, draws=3) for k in keys]
    plan = Plan.stack(keys, [records[k]["image"].shape[:2] for k in keys], parts, np.arange(3), AUGMENT.crop)
    stream = iter(PixelBatches(shard_paths(tiny_shards, "train"), plan, task, images_per_batch=1))
    checked = 0
    for step in range(3 * len(keys)):
        batch = next(stream)
        key, k = batch.keys[0], step // len(keys)  # one image per batch: epoch = step // images
        record, i = records[key], plan.rows[key]
        h, w = record["image"].shape[:2]
        m = plan.affine[i, k]
        valid = batch.weight[0].numpy() > 0
        assert valid.sum() == plan.counts[i, k]
        coords = batch.coords[0].numpy().astype(np.float64)[valid]  # (n, 2)
        assert inside(coords, AUGMENT.crop).all()
        np.testing.assert_array_equal(batch.images[0].permute(1, 2, 0).numpy(), warp(record["image"], m, AUGMENT.crop))
        # Back through the map: each row's coordinate comes from exactly its planned source pixel.
        src = np.linalg.solve(np.vstack([m, [0, 0, 1]]), np.vstack([coords.T, np.ones(len(coords))]))[:2].T  # (n, 2)
        rows, cols = np.rint(src[:, 1]).astype(int), np.rint(src[:, 0]).astype(int)
        assert np.abs(src - np.stack([cols, rows], 1)).max() < 1e-3
        np.testing.assert_array_equal(rows * w + cols, plan.pixels[i, k, : plan.counts[i, k]])
        # The warped image, read at the coordinate, shows that pixel (a ramp decodes its place; away
        # from the source border, where the zero fill outside the image bleeds into a bilinear read,
        # and from the window's outer half pixel, which a bilinear read cannot reach).
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        ramp = warp(np.stack([xx, yy], -1), m, AUGMENT.crop)
        deep = (cols > 1) & (cols < w - 2) & (rows > 1) & (rows < h - 2) & (coords >= 0).all(1) & (coords <= AUGMENT.crop - 1).all(1)
        read = np.stack([map_coordinates(ramp[..., c], [coords[deep, 1], coords[deep, 0]], order=1, mode="nearest")
                         for c in range(2)], axis=1)
        assert np.abs(read - np.stack([cols[deep], rows[deep]], 1)).max() < 0.1
        # The target is the source pixel's, as the augmented picture shows it.
        want = _target_map(name, record)[rows, cols]
        got = batch.targets[0].numpy()[valid]
        if name == "normals":
            a = np.radians(plan.angle[i, k])
            want = np.stack([np.cos(a) * want[:, 0] - np.sin(a) * want[:, 1],
                             np.sin(a) * want[:, 0] + np.cos(a) * want[:, 1], want[:, 2]], 1)
            if plan.flip[i, k]:
                want[:, 0] = -want[:, 0]
            np.testing.assert_allclose(got, want, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, want)
        checked += int(valid.sum())
    assert checked > 3 * len(keys) * 100


def test_sample_stage_reports_rows_inside_and_padding(tmp_path, tiny_params_dict, tiny_shards):
    """Must-show 1 and 2f: the summary counts rows inside the window (all real ones) and padded rows
    separately; an image with fewer valid pixels in the window than N is padded, not fatal."""
    # Magnified 1-2x, a 32² window holds 256-1,024 of a 32² image's pixels: some draws have fewer than N.
    tiny_params_dict["sampling"].update(pixels_per_image=400, draws="auto")
    tiny_params_dict["sampling"]["augment"] = {"crop": 32, "scale": [1.0, 2.0], "flip": True, "rotate": 30}
    params = parse_params(tiny_params_dict)
    summary = stages.sample("normals", params, tiny_shards, tmp_path / "normals", progress=False)
    rows = summary["rows"]
    assert rows["inside_window"] == rows["real"] and rows["inside_window_share_of_real"] == 1.0
    assert rows["padded"] > 0 and rows["planned"] == rows["real"] + rows["padded"]
    assert 0 < rows["draws_with_padding"] < summary["images"] * summary["draws"]
    assert summary["draws"] == auto_draws(3, 2, 8) and summary["epochs"]["reused"] is False
    plan = Plan.load(tmp_path / "normals" / "plan.npz")
    assert int(plan.counts.sum()) == rows["real"] and plan.pixels.shape == (8, summary["draws"], 400)
    assert dataclasses.asdict(params.augment["normals"]) == summary["augment"]

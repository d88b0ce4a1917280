"""Dense inference (chunked, multi-scale, flipped) and the task losses."""

import dataclasses

import numpy as np
import pytest
import torch

from pixelnet.infer import InferConfig, predict
from pixelnet.model.pixelnet import ModelConfig, build_model
from pixelnet.tasks import EdgesTask, NormalsTask, SegmentationTask

# Kaiming hidden layers: with the paper's σ = 1e-3 everywhere a random model's outputs are nearly
# constant, and these comparisons would test little.
CFG = ModelConfig(layers=("conv1_2", "conv2_2", "conv3_3"), width=0.0625, hidden=(8,), dropout=0.0, head_init="kaiming")


@pytest.mark.parametrize("task", [EdgesTask(), NormalsTask(), SegmentationTask(num_classes=4)])
def test_chunking_does_not_change_predictions(task):
    torch.manual_seed(0)
    model = build_model(CFG, task.out_channels)
    image = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    whole = predict(model, task, image, InferConfig(chunk_pixels=10**6))
    chunked = predict(model, task, image, InferConfig(chunk_pixels=97))
    assert whole.shape[:2] == (37, 29)
    np.testing.assert_allclose(whole, chunked, atol=1e-5)


def test_prediction_matches_training_forward_at_pixels():
    """The dense path and the sparse training path agree at the same pixels (one inference path)."""
    torch.manual_seed(0)
    task = SegmentationTask(num_classes=3)
    model = build_model(CFG, 3).eval()
    image = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    dense = predict(model, task, image, InferConfig())
    rows, cols = np.array([0, 5, 23, 11]), np.array([3, 0, 23, 17])
    coords = torch.tensor(np.stack([cols, rows], 1), dtype=torch.float32)[None]
    with torch.no_grad():
        sparse = model(torch.from_numpy(image).permute(2, 0, 1)[None], coords)[0].argmax(1).numpy()
    np.testing.assert_array_equal(dense[rows, cols], sparse)


def test_flip_averaging_of_normals_is_mirror_consistent():
    """Averaging over a flip: predicting on a mirrored image gives the mirrored normals."""
    torch.manual_seed(0)
    task = NormalsTask()
    model = build_model(CFG, 3)
    image = np.random.default_rng(2).integers(0, 256, (20, 26, 3), dtype=np.uint8)
    cfg = InferConfig(scales=(1.0, 1.5), flip=True)
    a = predict(model, task, image, cfg)
    b = predict(model, task, np.ascontiguousarray(image[:, ::-1]), cfg)
    mirrored = b[:, ::-1] * np.array([-1, 1, 1], dtype=np.float32)
    np.testing.assert_allclose(a, mirrored, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1, atol=1e-5)


def test_edge_loss_balances_positives_and_negatives():
    task = EdgesTask()
    targets = torch.tensor([1.0] + [0.0] * 99)
    weight = torch.ones(100)
    # Predict everything negative with the same confidence: the lone positive carries half the loss.
    logits = torch.full((100, 1), -2.0)
    loss = task.loss(logits, targets, weight)
    pos = torch.nn.functional.softplus(torch.tensor(2.0))   # -log sigmoid(-2)
    neg = torch.nn.functional.softplus(torch.tensor(-2.0))  # -log(1 - sigmoid(-2))
    torch.testing.assert_close(loss, 0.5 * pos + 0.5 * neg)


def test_weights_drop_padding_rows():
    task = SegmentationTask(num_classes=2)
    logits = torch.tensor([[5.0, -5.0], [-5.0, 5.0]])
    targets = torch.tensor([0, 0])
    only_first = task.loss(logits, targets, torch.tensor([1.0, 0.0]))
    assert only_first < 1e-3  # the wrong second pixel is ignored


def test_normals_loss_is_zero_for_exact_and_ignores_invalid():
    gt = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # second is invalid
    assert NormalsTask(loss_kind="cosine").loss(torch.tensor([[0.0, 0.0, 3.0], [1.0, 0.0, 0.0]]), gt, torch.ones(2)) < 1e-6
    assert NormalsTask(loss_kind="l2").loss(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), gt, torch.ones(2)) < 1e-6
    assert NormalsTask(loss_kind="l2").loss(torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]), gt, torch.ones(2)) > 1


def _edge_records(n: int) -> list[dict]:
    rng = np.random.default_rng(3)
    records = []
    for i in range(n):
        boundaries = rng.random((2, 24, 30)) > 0.9  # (A, H, W) two annotators
        records.append({"key": f"im{i}", "edge": boundaries.sum(0).astype(np.uint8), "boundaries": boundaries,
                        "meta": {"annotators": 2}})
    return records


def test_edge_meter_pool_and_nms_use_the_benchmark_core():
    from pixelnet.metrics.edges import BoundaryConfig, image_counts
    from pixelnet.metrics.nms import edge_nms
    from pixelnet.tasks.edges import annotations

    config = BoundaryConfig(thresholds=9)
    records = _edge_records(3)
    preds = [np.random.default_rng(i).random((24, 30)) for i in range(3)]
    serial, pooled, nms = (EdgesTask(boundary=dataclasses.replace(config, nms=n), workers=w).meter()
                           for n, w in ((False, 1), (False, 2), (True, 1)))
    for pred, record in zip(preds, records):
        for meter in (serial, pooled, nms):
            meter.update(pred, record)
    assert serial.compute() == pooled.compute()
    # NMS is applied before counting: the same figures as doing it by hand
    by_hand = [image_counts(edge_nms(p), annotations(r), config) for p, r in zip(preds, records)]
    nms.result()
    assert all(np.array_equal(a, b) for a, b in zip(nms._pending, by_hand))
    assert not all(np.array_equal(a, b) for a, b in zip(serial._pending, by_hand))


def test_edge_annotations_refuse_a_multi_annotator_record_without_its_maps():
    """Scoring against the union of annotators would inflate recall silently: a record whose dataset has
    several annotators must carry each one's map; single-annotator (synthetic) data keeps the count map."""
    from pixelnet.tasks.edges import annotations

    record = _edge_records(1)[0]
    assert len(annotations(record)) == 2
    del record["boundaries"]
    with pytest.raises(ValueError, match="im0"):
        annotations(record)
    single = {"key": "one", "edge": (record["edge"] > 0).astype(np.uint8), "meta": {"annotators": 1}}
    assert [a.sum() for a in annotations(single)] == [(record["edge"] > 0).sum()]
    assert len(annotations({"key": "bare", "edge": single["edge"], "meta": {}})) == 1

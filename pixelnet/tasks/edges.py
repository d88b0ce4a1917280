"""Edge detection: one sigmoid output, class-balanced BCE, the BSDS boundary benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pixelnet.data.shards import Record
from pixelnet.metrics.edges import BoundaryConfig, BoundaryResult, collect, thresholds_for
from pixelnet.metrics.edges_io import counts_with_nms


def positives(record: Record, consensus: int) -> np.ndarray:
    """(H, W) bool: at least `consensus` annotators marked the pixel (capped at how many there were)."""
    annotators = int(record["meta"].get("annotators", 1))
    return record["edge"] >= min(consensus, annotators)


AMBIGUOUS = ("negative", "ignore")  # what pixels marked by fewer annotators than the consensus train as


def strata(record: Record, consensus: int, ambiguous: str = "negative") -> np.ndarray:
    """(H, W) int32: 1 for a positive, 0 for a negative, and -1 (never drawn) for a pixel some annotators
    marked but fewer than the consensus, when `ambiguous` is "ignore"."""
    positive = positives(record, consensus)
    out = positive.astype(np.int32)
    if ambiguous == "ignore":
        out[(record["edge"] > 0) & ~positive] = -1
    return out


def annotations(record: Record) -> list[np.ndarray]:
    """Each annotator's boundary map, as the benchmark matches against them one by one.

    A record of a dataset with several annotators must carry them (`boundaries`): the count map alone
    is their union, against which recall would be scored too high. With one annotator (synthetic
    data, a user's folder) the count map is that annotator's map.
    """
    if "boundaries" in record:
        return [b.astype(bool) for b in record["boundaries"]]
    annotators = int(record.get("meta", {}).get("annotators", 1))
    if annotators > 1:
        raise ValueError(f"{record.get('key', '?')}: {annotators} annotators but no per-annotator boundaries "
                         f"to score against (re-shard the dataset: its shards predate them)")
    return [record["edge"] > 0]


class EdgeMeter:
    """The BSDS benchmark over a stream of (prediction, record): the same `image_counts` and `collect`
    as `pixelnet evaluate-edges`. With workers > 1 the counts run in a process pool while the caller
    goes on predicting the next image."""

    def __init__(self, config: BoundaryConfig, nms: bool = False, workers: int = 1) -> None:
        self.config = config
        self.nms = nms
        self.workers = workers
        self.keys: list[str] = []
        self._pending: list = []  # np.ndarray or AsyncResult, in update order
        self._pool = None

    def update(self, prediction: np.ndarray, record: Record) -> None:
        args = (np.asarray(prediction, dtype=np.float64), annotations(record), self.config, self.nms)
        self.keys.append(str(record.get("key", len(self.keys))))
        if self.workers <= 1:
            self._pending.append(counts_with_nms(*args))
            return
        if self._pool is None:
            import multiprocessing

            self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
        self._pending.append(self._pool.apply_async(counts_with_nms, args))

    def result(self) -> BoundaryResult:
        counts = [c if isinstance(c, np.ndarray) else c.get() for c in self._pending]
        self._pending = counts
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
        return collect(counts, thresholds_for(self.config.thresholds))

    def compute(self) -> dict[str, float]:
        r = self.result()
        return {"ods": float(r.ods["f"]), "ois": float(r.ois["f"]), "ap": float(r.ap)}


class SobelBaseline:
    """Gradient magnitude of the grey image, scaled to [0, 1] per image."""

    name = "sobel"

    def fit(self, records) -> None:  # nothing to learn
        pass

    def predict(self, record: Record) -> np.ndarray:
        grey = cv2.cvtColor(record["image"], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
        mag = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
        return mag / max(float(mag.max()), 1e-6)


@dataclass
class EdgesTask:
    consensus: int = 3
    ambiguous: str = "negative"   # or "ignore": pixels below the consensus but marked are never drawn
    boundary: BoundaryConfig = field(default_factory=BoundaryConfig)
    nms: bool = False    # the edges toolbox's non-maximum suppression before thresholding
    workers: int = 1     # benchmark processes
    name: str = "edges"
    field: str = "edge"
    out_channels: int = 1

    def __post_init__(self) -> None:
        if self.ambiguous not in AMBIGUOUS:
            raise ValueError(f"ambiguous must be one of {', '.join(AMBIGUOUS)}, got {self.ambiguous!r}")

    def strata(self, record: Record) -> np.ndarray:
        return strata(record, self.consensus, self.ambiguous)

    def gather(self, record: Record, indices: np.ndarray) -> np.ndarray:
        return positives(record, self.consensus).ravel()[indices].astype(np.float32)  # (N,)

    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        return targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # Positives and negatives each carry half the loss, whatever their counts (HED's balancing).
        bce = F.binary_cross_entropy_with_logits(outputs[:, 0], targets, reduction="none")  # (M,)
        pos = weight * targets
        neg = weight * (1 - targets)
        return 0.5 * (bce * pos).sum() / pos.sum().clamp(min=1) + 0.5 * (bce * neg).sum() / neg.sum().clamp(min=1)

    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs)

    def unflip(self, activated: torch.Tensor) -> torch.Tensor:
        return activated

    def finalize(self, activated: np.ndarray) -> np.ndarray:
        return activated[..., 0]  # (H, W) edge probability

    def meter(self) -> EdgeMeter:
        return EdgeMeter(self.boundary, self.nms, self.workers)

    def baseline(self) -> SobelBaseline:
        return SobelBaseline()

    def visualize(self, array: np.ndarray) -> np.ndarray:
        if array.dtype == np.uint8 and array.max() > 1:  # annotator counts
            array = array / array.max()
        grey = (255 * (1 - np.clip(array.astype(np.float32), 0, 1))).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)

"""Edge detection: one sigmoid output, class-balanced BCE, the BSDS boundary benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from pixelnet.atomic import write_json, write_npy, write_png
from pixelnet.tasks.base import BaselineCheck, ReportContext, TaskContext, checked_channels

if TYPE_CHECKING:
    import torch

    from pixelnet.data.shards import Record
    from pixelnet.inputs import OutputConfig
    from pixelnet.metrics.edges import BoundaryConfig, BoundaryResult


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


def edge_map(edges: np.ndarray, outputs: OutputConfig) -> np.ndarray:
    """(H, W) edge probabilities -> the (H, W) float32 map `pixelnet predict` writes: as predicted, or
    with `outputs.nms` thinned by the edges toolbox's NMS exactly as the benchmark runs it
    (`pixelnet.metrics.nms.edge_nms` with its defaults: one-pixel-wide ridges keeping their smoothed
    probabilities, zero elsewhere); with `outputs.thin` the ridges >= `outputs.threshold` are then
    thinned as the benchmark thins each binarised map and keep their probabilities, the rest is zero."""
    if not outputs.nms:
        return np.clip(edges, 0, 1).astype(np.float32)
    # Imported here: numba's import and first compile cost seconds that a plain prediction skips.
    from pixelnet.metrics.nms import edge_nms

    thinned = np.clip(edge_nms(edges), 0, 1)  # (H, W) float64, the defaults the benchmark uses
    if outputs.thin:
        from pixelnet.metrics.thinning import thin

        thinned = np.where(thin(thinned >= outputs.threshold), thinned, 0)  # as edges.py binarises: >=
    return thinned.astype(np.float32)


class EdgeMeter:
    """The BSDS benchmark over a stream of (prediction, record): the same `image_counts` and `collect`
    as `pixelnet evaluate-edges`. With workers > 1 the counts run in a process pool while the caller
    goes on predicting the next image."""

    def __init__(self, config: BoundaryConfig, workers: int = 1) -> None:
        self.config = config
        self.workers = workers
        self.keys: list[str] = []
        self._pending: list = []  # np.ndarray or AsyncResult, in update order
        self._pool = None

    def update(self, prediction: np.ndarray, record: Record) -> None:
        from pixelnet.metrics.edges import image_counts

        args = (np.asarray(prediction, dtype=np.float64), annotations(record), self.config)
        self.keys.append(str(record.get("key", len(self.keys))))
        if self.workers <= 1:
            self._pending.append(image_counts(*args))
            return
        if self._pool is None:
            import multiprocessing

            self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
        self._pending.append(self._pool.apply_async(image_counts, args))

    def result(self) -> BoundaryResult:
        from pixelnet.metrics.edges import collect, thresholds_for

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
        import cv2

        grey = cv2.cvtColor(record["image"], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
        mag = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
        return mag / max(float(mag.max()), 1e-6)


@dataclass(frozen=True)
class EdgesSettings:
    """tasks.edges.* in params.yaml."""

    consensus: int = 3           # annotators needed for a positive (capped at how many there were)
    ambiguous: str = "negative"  # pixels marked by fewer annotators than the consensus train as negatives,
                                 # or "ignore": never drawn (RCF leaves them out of the loss)

    def __post_init__(self) -> None:
        if self.consensus < 1:
            raise ValueError(f"consensus: must be >= 1, got {self.consensus}")
        if self.ambiguous not in AMBIGUOUS:
            raise ValueError(f"ambiguous: must be one of {', '.join(AMBIGUOUS)}, got {self.ambiguous!r}")


def _official_boundary() -> BoundaryConfig:
    from pixelnet.metrics.edges import BoundaryConfig

    return BoundaryConfig()


@dataclass
class EdgesTask:
    consensus: int = 3
    ambiguous: str = "negative"   # or "ignore": pixels below the consensus but marked are never drawn
    boundary: BoundaryConfig = field(default_factory=_official_boundary)  # the benchmark, NMS included
    workers: int = 1     # benchmark processes
    name: str = "edges"
    field: str = "edge"
    out_channels: int = 1

    Settings: ClassVar[type] = EdgesSettings
    output_suffixes: ClassVar[dict[str, tuple[str, ...]]] = {"png": ("_edges.png",), "npy": ("_edges.npy",)}
    thin_edges: ClassVar[bool] = True
    baseline_check: ClassVar[BaselineCheck] = BaselineCheck("ods", "higher", "ODS", "Sobel", ".3f")
    pr_curve: ClassVar[str | None] = "eval_bdry_thr.txt"

    def __post_init__(self) -> None:
        EdgesSettings(consensus=self.consensus, ambiguous=self.ambiguous)  # one home for the checks

    @classmethod
    def from_settings(cls, settings: EdgesSettings, context: TaskContext) -> EdgesTask:
        boundary = context.boundary if context.boundary is not None else _official_boundary()
        return cls(consensus=settings.consensus, ambiguous=settings.ambiguous, boundary=boundary,
                   workers=context.workers)

    @classmethod
    def from_checkpoint(cls, payload: dict, out_channels: int, where: Path) -> tuple[EdgesTask, list[str]]:
        task = cls()
        checked_channels(task, out_channels, where)
        return task, []

    def strata(self, record: Record) -> np.ndarray:
        return strata(record, self.consensus, self.ambiguous)

    def gather(self, record: Record, indices: np.ndarray) -> np.ndarray:
        return positives(record, self.consensus).ravel()[indices].astype(np.float32)  # (N,)

    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        return targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        # Positives and negatives each carry half the loss, whatever their counts (HED's balancing).
        bce = F.binary_cross_entropy_with_logits(outputs[:, 0], targets, reduction="none")  # (M,)
        pos = weight * targets
        neg = weight * (1 - targets)
        return 0.5 * (bce * pos).sum() / pos.sum().clamp(min=1) + 0.5 * (bce * neg).sum() / neg.sum().clamp(min=1)

    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.sigmoid(outputs)

    def unflip(self, activated: torch.Tensor) -> torch.Tensor:
        return activated

    def finalize(self, activated: np.ndarray) -> np.ndarray:
        return activated[..., 0]  # (H, W) edge probability

    def meter(self) -> EdgeMeter:
        return EdgeMeter(self.boundary, self.workers)

    def baseline(self) -> SobelBaseline:
        return SobelBaseline()

    def visualize(self, array: np.ndarray) -> np.ndarray:
        if array.dtype == np.uint8 and array.max() > 1:  # annotator counts
            array = array / array.max()
        grey = (255 * (1 - np.clip(array.astype(np.float32), 0, 1))).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)

    def report(self, meters: dict[str, EdgeMeter], out_dir: Path, context: ReportContext) -> None:
        """pr_curve.png (the model's and the baseline's curves), eval_bdry*.txt as the official benchmark
        (and evaluate-edges) writes them, and per_image.json: each image's best F by name (eval_bdry_img.txt
        numbers them), what a model card quotes per image."""
        from pixelnet.metrics.edges import plot_pr
        from pixelnet.metrics.edges_io import metrics_dict, write_official
        from pixelnet.metrics.published import load_published

        result = meters["model"].result()
        # The field's published curves are on BSDS500's test images: drawn beside ours only when we score test too.
        published = load_published() if context.dataset == "bsds500" and context.split == "test" else None
        plot_pr({"PixelNet": result, context.baseline: meters["baseline"].result()}, out_dir / "pr_curve.png", published)
        write_official(result, out_dir)
        per_image = metrics_dict(result, meters["model"].keys, self.boundary)["per_image"]
        write_json(out_dir / "per_image.json", {"images": per_image})

    def write_outputs(self, prediction: np.ndarray, paths: Sequence[Path], classes: Sequence[str],
                      outputs: OutputConfig) -> None:
        edges = edge_map(prediction, outputs)  # (H, W) float32 in [0, 1]
        if outputs.format == "npy":
            write_npy(paths[0], edges)
        else:
            write_png(paths[0], np.round(edges * 255).astype(np.uint8))  # (H, W) white on black

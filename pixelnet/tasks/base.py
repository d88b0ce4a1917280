"""The Task protocol: everything that differs between edges, normals and segmentation.

A task is the one plug-in point: training, dense inference, the stages, `pixelnet predict` and the
ablation report never branch on a task's name, they call these methods and read these attributes.
A new task is one module in `pixelnet/tasks/` and one line in `pixelnet.tasks.TASKS`.

Task modules import torch, OpenCV and the benchmark code inside the methods that use them, so that
`pixelnet predict` can read a task's outputs (`output_suffixes`, `thin_edges`) and check a request
before it starts torch (`pixelnet.inputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from pixelnet.data.shards import Record
    from pixelnet.inputs import OutputConfig
    from pixelnet.metrics.edges import BoundaryConfig


class Meter(Protocol):
    def update(self, prediction: np.ndarray, record: Record) -> None: ...
    def compute(self) -> dict[str, float]: ...


class Baseline(Protocol):
    name: str
    def fit(self, records: Any) -> None: ...
    def predict(self, record: Record) -> np.ndarray: ...


@dataclass(frozen=True)
class TaskContext:
    """What a Task class may be built from besides its own settings (tasks.<task>.*): the stage layer
    fills it from params and the shards, so the library never reads params.yaml."""

    classes: tuple[str, ...] | None = None   # the dataset's class names (the shard manifest); None: unknown
    boundary: BoundaryConfig | None = None   # the edge benchmark's protocol (evaluate.*); None: its defaults
    workers: int = 1                         # processes a metric may use (evaluate.workers)


@dataclass(frozen=True)
class ReportContext:
    """What `Task.report` knows of the evaluation it reports on."""

    dataset: str                  # the shard manifest's dataset name
    split: str                    # the split scored: "test", else "val"
    classes: tuple[str, ...]      # the dataset's class names
    baseline: str                 # the trivial baseline's name, as the plots label it


@dataclass(frozen=True)
class BaselineCheck:
    """The metric a run must not lose on to its task's trivial baseline (the ablation report's rule)."""

    metric: str       # a key of metrics.json's `model` and `baseline` blocks
    better: str       # higher | lower
    label: str        # the metric, as the report names it
    baseline: str     # the trivial predictor the evaluate stage scores
    fmt: str


class Task(Protocol):
    name: str
    field: str            # the Record field holding the target
    out_channels: int

    # Class-level facts, read before a task is built (params, `pixelnet predict`'s torch-free checks).
    Settings: ClassVar[type]  # frozen dataclass of the task's own keys under tasks.<task> in params.yaml
    output_suffixes: ClassVar[dict[str, tuple[str, ...]]]  # per --format: what predict writes, <stem><suffix>
    thin_edges: ClassVar[bool]  # its map is an edge map that NMS thins (predict --nms, Model.nms)
    baseline_check: ClassVar[BaselineCheck]
    pr_curve: ClassVar[str | None]  # a file `report` writes with rows threshold, recall, precision, F

    @classmethod
    def from_settings(cls, settings: Any, context: TaskContext) -> Task:
        """The task as params configure it: `settings` is a `cls.Settings`."""
    @classmethod
    def from_checkpoint(cls, payload: dict, out_channels: int, where: Path) -> tuple[Task, list[str]]:
        """The task a checkpoint (its plain entries) was trained for, and its class names (else empty);
        errors name `where`."""

    def strata(self, record: Record) -> np.ndarray:
        """(H, W) int32 map the sampler draws from: class / positive flag / 0, with -1 = never sample."""
    def gather(self, record: Record, indices: np.ndarray) -> np.ndarray:
        """Targets at flat pixel indices, (N, ...) as the loss wants them."""
    def flip_targets(self, targets: np.ndarray) -> np.ndarray:
        """Targets after a horizontal flip of the image (normals negate x)."""
    def rotate_targets(self, targets: np.ndarray, degrees: float) -> np.ndarray:
        """Targets after rotating the image `degrees` counter-clockwise as displayed (normals turn x, y)."""
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Scalar loss from (M, K) outputs, (M, ...) targets and (M,) 0/1 weights."""
    def activate(self, outputs: torch.Tensor) -> torch.Tensor:
        """(M, K) raw outputs -> the quantity averaged over test-time scales and flips."""
    def unflip(self, activated: torch.Tensor) -> torch.Tensor:
        """Undo a horizontal flip's effect on activated outputs (normals negate x)."""
    def finalize(self, activated: np.ndarray) -> np.ndarray:
        """(H, W, K) averaged activations -> the prediction map the metric reads."""
    def meter(self) -> Meter: ...
    def baseline(self) -> Baseline: ...
    def visualize(self, array: np.ndarray) -> np.ndarray:
        """A target or prediction as an (H, W, 3) uint8 picture for the report grid."""
    def report(self, meters: dict[str, Meter], out_dir: Path, context: ReportContext) -> None:
        """The evaluate stage's task-specific files in out_dir (plots, per-image figures) from the
        meters of the model ("model") and of the trivial baseline ("baseline")."""
    def write_outputs(self, prediction: np.ndarray, paths: Sequence[Path], classes: Sequence[str],
                      outputs: OutputConfig) -> None:
        """Write one image's prediction (`finalize`'s map) as the files `paths`, named by
        `output_suffixes[outputs.format]`; each appears complete or not at all."""


def checked_channels(task: Task, out_channels: int, where: Path) -> None:
    """A checkpoint's output count fits the task it names; the error names the file."""
    if task.out_channels != out_channels:
        raise ValueError(f"{where}: a {task.name} model needs {task.out_channels} outputs, this one has {out_channels}")


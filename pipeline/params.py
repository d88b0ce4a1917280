"""The one params loader: params.yaml -> typed, validated config dataclasses.

Every key the code reads is declared here through the dataclass it fills; an unknown key, a wrong
type or an out-of-range value raises ParamsError naming the dotted key. Nothing else reads
params.yaml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The typed-mapping checker shared with the ablation grid (torch-free), under this module's short names.
from pipeline.typed import ParamsError
from pipeline.typed import make as _make
from pipeline.typed import typecheck as _typecheck
from pipeline.typed import typed_fields as _fields
from pixelnet.data.registry import SOURCES
from pixelnet.infer import InferConfig
from pixelnet.metrics.edges import BoundaryConfig
from pixelnet.model.pixelnet import ModelConfig
from pixelnet.model.trunk import STRIDES
from pixelnet.plan import AugmentConfig
from pixelnet.sampling import STRATEGIES, SamplingConfig
from pixelnet.tasks import TASKS
from pixelnet.train import TrainConfig

DATASETS = tuple(SOURCES)  # synthetic, bsds500, nyud, pascal_context, voc2012, folder


def __getattr__(name: str) -> Any:
    # TASK_NAMES: the task registry's names as of now, so a task registered after import counts too.
    if name == "TASK_NAMES":
        return tuple(TASKS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class TaskParams:
    dataset: str = "synthetic"
    # The task's own keys (edges: consensus, ambiguous; normals: loss), as its class's Settings dataclass.
    settings: Any = None
    # Overrides for this task only of `train` keys (e.g. more iterations for the regression task),
    # `sampling.augment` keys (edges rotate, the others need not) and `model` keys.
    train: tuple[tuple[str, Any], ...] = ()
    augment: tuple[tuple[str, Any], ...] = ()
    model: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class EvalParams:
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    chunk_pixels: int = 8192
    precision: str = "fp32"     # fp32, or bf16 autocast (faster where the CPU multiplies bf16 natively)
    thresholds: int = 99
    max_dist: float = 0.0075
    thin: bool = True
    nms: bool = True            # edges: the edges toolbox's NMS, then thinning (the paper, HED, RCF)
    workers: int = 1            # edges: benchmark processes
    grid_images: int = 6
    max_images: int = 0         # 0: the whole test split


@dataclass(frozen=True)
class Params:
    datasets: tuple[str, ...]
    data: dict[str, Any]                  # dataset name -> its source's config (data.<name>)
    shard_size: int
    tasks: dict[str, TaskParams]
    sampling: dict[str, SamplingConfig]   # per task
    images_per_batch: int
    model: ModelConfig                    # the shared model section
    task_model: dict[str, ModelConfig]    # per task: model with tasks.<task>.model applied
    train: TrainConfig                    # the shared train section
    task_train: dict[str, TrainConfig]    # per task: train with tasks.<task>.train applied
    augment: dict[str, AugmentConfig]     # per task: sampling.augment with tasks.<task>.augment applied
    evaluate: EvalParams

    @property
    def infer(self) -> InferConfig:
        e = self.evaluate
        return InferConfig(scales=e.scales, flip=e.flip, chunk_pixels=e.chunk_pixels, precision=e.precision)

    @property
    def boundary(self) -> BoundaryConfig:
        e = self.evaluate
        return BoundaryConfig(thresholds=e.thresholds, max_dist=e.max_dist, thin=e.thin, nms=e.nms)


def _per_task(cls: type, shared: dict[str, Any], tasks: dict[str, TaskParams], section: str) -> dict[str, Any]:
    """One `cls` per task: the shared section's keys with tasks.<task>.<section> applied on top.
    The shared section is checked by the caller first, so an error here names the task's key."""
    out = {}
    for name, tp in tasks.items():
        prefix = f"tasks.{name}.{section}"
        out[name] = _make(cls, {**shared, **_fields(cls, dict(getattr(tp, section)), prefix)}, prefix)
    return out


_SECTIONS = {"datasets", "data", "tasks", "sampling", "model", "train", "evaluate"}
_AUGMENT_KEYS = tuple(f.name for f in dataclasses.fields(AugmentConfig))
_OVERRIDES = ("train", "augment", "model")  # per-task override sections under tasks.<task>
_TASK_COMMON = ("dataset", *_OVERRIDES)     # keys of every task; the rest are the task's own (its Settings)


def _task_section(name: str, section: Any) -> TaskParams:
    """tasks.<name>: the keys every task has, and the task's own keys as its class's Settings."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParamsError(f"tasks.{name}: expected a mapping, got {section!r}")
    settings_cls = TASKS[name].Settings
    own = [f.name for f in dataclasses.fields(settings_cls)]
    for key in section:
        if key not in _TASK_COMMON and key not in own:
            raise ParamsError(f"tasks.{name}.{key}: unknown key; allowed under tasks.{name}: "
                              f"{', '.join(('dataset', *own, *_OVERRIDES))}")
    settings = _make(settings_cls, _fields(settings_cls, {k: v for k, v in section.items() if k in own},
                                           f"tasks.{name}"), f"tasks.{name}")
    common = {k: v for k, v in section.items() if k in _TASK_COMMON}
    tp = _make(TaskParams, _fields(TaskParams, {k: v for k, v in common.items() if k not in _OVERRIDES},
                                   f"tasks.{name}", skip=("settings", *_OVERRIDES)), f"tasks.{name}")
    tp = dataclasses.replace(tp, settings=settings)
    for key in _OVERRIDES:
        value = common.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ParamsError(f"tasks.{name}.{key}: expected a mapping of {key} keys, got {value!r}")
        tp = dataclasses.replace(tp, **{key: tuple(value.items())})
    return tp


def parse_params(raw: Any) -> Params:
    """Validate a loaded params mapping; raises ParamsError naming the first bad dotted key."""
    if not isinstance(raw, dict):
        raise ParamsError("params: the file must hold a mapping of sections")
    for key in raw:
        if key not in _SECTIONS:
            raise ParamsError(f"{key}: unknown section; allowed: {', '.join(sorted(_SECTIONS))}")
    datasets = _typecheck(raw.get("datasets", ["synthetic"]), tuple[str, ...], "datasets")
    for i, name in enumerate(datasets):
        if name not in DATASETS:
            raise ParamsError(f"datasets[{i}]: unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")

    data = dict(raw.get("data") or {})
    for key in data:
        if key not in ("shard_size", *DATASETS):
            raise ParamsError(f"data.{key}: unknown key; allowed under data: shard_size, {', '.join(DATASETS)}")
    shard_size = _typecheck(data.get("shard_size", 100), int, "data.shard_size")
    if shard_size < 1:
        raise ParamsError(f"data.shard_size: must be >= 1, got {shard_size}")
    configs = {name: _make(src.config, _fields(src.config, data.get(name), f"data.{name}"), f"data.{name}")
               for name, src in SOURCES.items()}

    tasks_raw = raw.get("tasks") or {}
    if not isinstance(tasks_raw, dict):
        raise ParamsError("tasks: expected a mapping of task name to settings")
    tasks: dict[str, TaskParams] = {}
    for name, section in tasks_raw.items():
        if name not in TASKS:
            raise ParamsError(f"tasks.{name}: unknown task; allowed: {', '.join(TASKS)}")
        tp = _task_section(name, section)
        if tp.dataset not in datasets:
            raise ParamsError(f"tasks.{name}.dataset: {tp.dataset!r} is not in datasets {list(datasets)}")
        tasks[name] = tp

    sampling_raw = dict(raw.get("sampling") or {})
    strategies = sampling_raw.pop("strategy", {}) or {}
    if not isinstance(strategies, dict):
        raise ParamsError("sampling.strategy: expected a mapping of task name to strategy")
    images_per_batch = _typecheck(sampling_raw.pop("images_per_batch", 5), int, "sampling.images_per_batch")
    if images_per_batch < 1:
        raise ParamsError(f"sampling.images_per_batch: must be >= 1, got {images_per_batch}")
    augment_raw = sampling_raw.pop("augment", None)
    common = _fields(SamplingConfig, sampling_raw, "sampling", skip=("strategy",))
    sampling: dict[str, SamplingConfig] = {}
    for name in strategies:
        if name not in TASKS:
            raise ParamsError(f"sampling.strategy.{name}: unknown task; allowed: {', '.join(TASKS)}")
    for name in tasks:
        strategy = _typecheck(strategies.get(name, "uniform"), str, f"sampling.strategy.{name}")
        if strategy not in STRATEGIES:
            raise ParamsError(f"sampling.strategy.{name}: {strategy!r} is not one of {', '.join(STRATEGIES)}")
        sampling[name] = _make(SamplingConfig, {**common, "strategy": strategy}, "sampling")
    shared_augment = _fields(AugmentConfig, augment_raw, "sampling.augment")
    _make(AugmentConfig, shared_augment, "sampling.augment")
    augment = _per_task(AugmentConfig, shared_augment, tasks, "augment")

    model_raw = _fields(ModelConfig, raw.get("model"), "model")
    model = _make(ModelConfig, model_raw, "model")
    task_model = _per_task(ModelConfig, model_raw, tasks, "model")

    train_raw = dict(raw.get("train") or {})
    train_hints = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in train_raw:
        if key in _AUGMENT_KEYS:
            raise ParamsError(f"train.{key}: augmentation is decided by the sample stage now; set sampling.augment.{key} "
                              f"(all tasks) or tasks.<task>.augment.{key}")
        if key not in train_hints:
            raise ParamsError(f"train.{key}: unknown key; allowed under train: {', '.join(train_hints)}")
    shared_train = _fields(TrainConfig, train_raw, "train")
    train = _make(TrainConfig, shared_train, "train")
    task_train = _per_task(TrainConfig, shared_train, tasks, "train")

    for name in tasks:
        deepest = max(STRIDES[layer] for layer in task_model[name].layers)
        if augment[name].crop < deepest:
            key = f"tasks.{name}.augment.crop" if dict(tasks[name].augment).get("crop") else "sampling.augment.crop"
            raise ParamsError(f"{key}: {augment[name].crop} px is smaller than the stride {deepest} of the deepest tap "
                              f"in model.layers")

    evaluate = _make(EvalParams, _fields(EvalParams, raw.get("evaluate"), "evaluate"), "evaluate")
    _make(InferConfig, {"scales": evaluate.scales, "flip": evaluate.flip, "chunk_pixels": evaluate.chunk_pixels,
                        "precision": evaluate.precision}, "evaluate")
    _make(BoundaryConfig, {"thresholds": evaluate.thresholds, "max_dist": evaluate.max_dist, "thin": evaluate.thin,
                           "nms": evaluate.nms}, "evaluate")
    if evaluate.workers < 1:
        raise ParamsError(f"evaluate.workers: must be >= 1, got {evaluate.workers}")
    if evaluate.grid_images < 0 or evaluate.max_images < 0:
        raise ParamsError("evaluate.grid_images and evaluate.max_images must be >= 0")

    return Params(
        datasets=datasets, data=configs, shard_size=shard_size, tasks=tasks, sampling=sampling,
        images_per_batch=images_per_batch, model=model, task_model=task_model, train=train, task_train=task_train,
        augment=augment,
        evaluate=evaluate,
    )


def load_params(path: Path) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from err
    return parse_params(raw)

"""Stage bodies: load params, read the paths dvc.yaml names, call the library, write outputs.

Every output is written under a temporary name and renamed into place, so a failed stage leaves
the previous output (or nothing) behind, never half of a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.deps import TRAIN_CODE
from pipeline.params import Params
from pixelnet.atomic import atomic_dir
from pixelnet.data import fetch
from pixelnet.data.registry import SOURCES
from pixelnet.batches import PixelBatches, batch_loader
from pixelnet.data.shards import read_manifest, read_shards, shard_paths, write_shards
from pixelnet.infer import predict
from pixelnet.model.pixelnet import build_model, model_from_checkpoint
from pixelnet.report import loss_curve, picture_grid
from pixelnet.plan import PLAN_FILE, Plan, auto_draws, inside, move, plan_image
from pixelnet.tasks import TASKS
from pixelnet.tasks.base import ReportContext, TaskContext
from pixelnet.train import resolve_device, train


def write_json(path: Path, payload: dict) -> None:
    """JSON written under a temporary name and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def make_task(name: str, params: Params, shard_dir: Path | None = None):
    """The Task object for `name`, built by its class from its own settings (tasks.<name>) and what the
    stages know besides: the classes of the shards' manifest, the edge benchmark's protocol, workers."""
    tp = params.tasks[name] if name in params.tasks else None
    if tp is None:
        raise ValueError(f"tasks.{name}: not configured in params.yaml")
    classes = tuple(read_manifest(shard_dir)["classes"]) if shard_dir is not None else None
    context = TaskContext(classes=classes, boundary=params.boundary, workers=params.evaluate.workers)
    return TASKS[name].from_settings(tp.settings, context)


# ----------------------------------------------------------------------------- download, shard

def download(dataset: str, params: Params, out: Path) -> dict:
    """Bring `dataset` in as published (checksum-verified) into `out`, with its dataset.json."""
    source = _source(dataset)
    config = params.data[dataset]
    for key in ("source", "hed_archive"):  # local paths of bsds500 and folder, named before any work
        location = getattr(config, key, None)
        if isinstance(location, str) and not fetch.is_url(location) and not Path(location).exists():
            hint = "; set it to null to download the published archive" if dataset == "bsds500" and key == "source" else ""
            raise FileNotFoundError(f"data.{dataset}.{key}: {location} does not exist (relative to {Path.cwd()}){hint}")
    return source.install(config, out)


def _source(dataset: str):
    if dataset not in SOURCES:
        raise ValueError(f"datasets: no source {dataset!r}; known: {', '.join(SOURCES)}")
    return SOURCES[dataset]


def shard(dataset: str, params: Params, raw: Path, out: Path) -> dict:
    source = _source(dataset)
    config = params.data[dataset]
    path = Path(raw) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the download stage for {dataset} first)")
    info = json.loads(path.read_text())
    if info.get("name", dataset) != dataset:
        raise ValueError(f"{path}: holds {info.get('name')!r}, not {dataset!r}")
    splits = {s: tqdm(source.records(config, Path(raw), info, s), desc=f"shard {s}", total=n, unit="img")
              for s, n in source.counts(config, Path(raw), info).items()}
    return write_shards(splits, out, dataset, list(info["classes"]), params.shard_size)


# ----------------------------------------------------------------------------- sample

def sample(task_name: str, params: Params, shards: Path, out: Path, progress: bool = True) -> dict:
    """The sampling plan: for every training image and draw, the augmentation and N pixels inside its
    window (`pixelnet.plan`); writes out/plan.npz and out/summary.json."""
    task = make_task(task_name, params, shards)
    config = params.sampling[task_name]
    augment = params.augment[task_name]
    manifest = read_manifest(shards)
    n_images = int(manifest["splits"].get("train", {}).get("count", 0))
    if n_images == 0:
        raise ValueError(f"{shards}: the train split is empty")
    iterations = params.task_train[task_name].iterations
    epochs_needed = iterations * params.images_per_batch / n_images
    draws = auto_draws(iterations, params.images_per_batch, n_images) if config.draws == "auto" else int(config.draws)
    keys, sizes, parts = [], [], []
    per_stratum = np.zeros(256, dtype=np.int64)
    inside_rows = 0
    for record in tqdm(read_shards(shard_paths(shards, "train")), desc=f"sample {task_name}", total=n_images,
                       unit="img", disable=not progress):
        strata = task.strata(record)
        try:
            part = plan_image(strata, record["key"], config, augment, draws)
        except ValueError as err:
            raise ValueError(f"{record['key']}: {err}") from err
        flat = strata.ravel()
        for k in range(draws):  # check the plan as the loader will apply it, and count what it holds
            real = part["pixels"][k, : part["counts"][k]].astype(np.int64)
            inside_rows += int(inside(move(real, strata.shape[1], part["affine"][k]), augment.crop).sum())
            per_stratum += np.bincount(flat[real], minlength=256)[:256]
        keys.append(record["key"])
        sizes.append(strata.shape)
        parts.append(part)
    rng = np.random.default_rng([config.seed, len(keys)])
    plan = Plan.stack(keys, sizes, parts, rng.integers(2**32, size=draws, dtype=np.uint64), augment.crop)
    planned = plan.pixels.size
    real_rows = int(plan.counts.sum())
    total = max(int(per_stratum.sum()), 1)
    with atomic_dir(Path(out)) as tmp:
        plan.save(tmp / PLAN_FILE)
        summary = {
            "task": task_name, "strategy": config.strategy, "images": len(keys), "pixels_per_image": config.pixels_per_image,
            "draws": draws, "draws_setting": config.draws,
            "epochs": {"covered_by_draws": draws, "needed_by_training": round(epochs_needed, 2),
                       "reused": bool(epochs_needed > draws)},
            "augment": dataclasses.asdict(augment),
            "rows": {"planned": planned, "real": real_rows, "inside_window": inside_rows,
                     "inside_window_share_of_real": round(inside_rows / max(real_rows, 1), 6),
                     "padded": planned - real_rows, "padded_share": round((planned - real_rows) / planned, 6),
                     "draws_with_padding": int((plan.counts < config.pixels_per_image).sum()),
                     "images_with_padding": int((plan.counts < config.pixels_per_image).any(axis=1).sum())},
            "plan_mb": round((tmp / PLAN_FILE).stat().st_size / 2**20, 2),
            "share_per_stratum": {int(s): round(float(c / total), 4) for s, c in enumerate(per_stratum) if c},
        }
        write_json(tmp / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------- train

def train_stage(task_name: str, params: Params, shards: Path, samples: Path, out: Path, log: Path, progress: bool = True) -> dict:
    """Train one task; resumes from out/last.pt when it was made with the same settings and data.

    Under torchrun (WORLD_SIZE > 1) every process joins one torch.distributed group (NCCL on GPUs,
    gloo on CPUs), reads its own share of the samples, and only rank 0 writes files.
    """
    task = make_task(task_name, params, shards)
    cfg = params.task_train[task_name]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = _join_process_group(cfg)
    try:
        if world > 1 and resolve_device(cfg.device).type == "cuda":
            cfg = dataclasses.replace(cfg, device=f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}")
        torch.manual_seed(cfg.seed)
        say = (lambda msg: print(f"train {task_name}: {msg}", file=sys.stderr)) if rank == 0 else (lambda msg: None)
        model = build_model(params.task_model[task_name], task.out_channels, say=say)
        manifest = read_manifest(shards)
        plan_path = Path(samples) / PLAN_FILE
        plan = Plan.load(plan_path)
        shard_keys = {s["name"]: s["keys"] for s in manifest["splits"]["train"]["shards"] if "keys" in s}
        cuda = resolve_device(cfg.device).type == "cuda"

        def batches(start: int):
            dataset = PixelBatches(shard_paths(shards, "train"), plan, task, params.images_per_batch,
                                   start_batch=start, rank=rank, world_size=world, shard_keys=shard_keys)
            return batch_loader(dataset, cfg.num_workers, pin_memory=cuda, prefetch=cfg.prefetch)

        data_id = hashlib.sha256(_code_id().encode() + json.dumps(manifest, sort_keys=True).encode()
                                 + fetch.digests(plan_path, ("sha256",))["sha256"].encode()
                                 + str(params.images_per_batch).encode()).hexdigest()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        summary = train(model, task, batches, cfg, out, Path(log), progress=progress, data_id=data_id,
                        classes=list(manifest["classes"]))
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()
    if rank == 0:
        data = np.genfromtxt(log, delimiter=",", names=True)
        loss_curve(np.atleast_1d(data["step"]), np.atleast_1d(data["loss"]), Path(log).with_suffix(".png"), f"{task_name} training loss")
        write_json(out / "summary.json", summary)
    return summary


def _code_id() -> str:
    """A digest of the library code the train stage runs (pipeline.deps.TRAIN_CODE, dvc.yaml's train
    deps): a checkpoint made by other code is not resumed."""
    repo = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in TRAIN_CODE:
        path = repo / part
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            # Named relative to pixelnet/, as the code id always has.
            digest.update(f.relative_to(repo / "pixelnet").as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _join_process_group(cfg) -> tuple[int, int]:
    """(rank, world size): under torchrun, join the group; otherwise (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "nccl" if resolve_device(cfg.device).type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


# ----------------------------------------------------------------------------- evaluate

def evaluate(task_name: str, params: Params, shards: Path, model_path: Path, out: Path, progress: bool = True) -> dict:
    """Dense predictions on the test split; metrics for the model and a trivial baseline; pictures."""
    task = make_task(task_name, params, shards)
    model, _ = model_from_checkpoint(Path(model_path))
    if model.out_channels != task.out_channels:
        raise ValueError(f"{model_path}: model has {model.out_channels} outputs, task {task_name} needs {task.out_channels}")
    device = resolve_device(params.train.device)
    model.to(device)
    baseline = task.baseline()
    baseline.fit(read_shards(shard_paths(shards, "train")))
    meters = {"model": task.meter(), "baseline": task.meter()}
    manifest = read_manifest(shards)
    test_split = "test" if "test" in manifest["splits"] else "val"
    total = manifest["splits"][test_split]["count"]
    limit = params.evaluate.max_images or total
    grid: list[list[np.ndarray]] = []
    labels: list[str] = []
    for i, record in enumerate(tqdm(read_shards(shard_paths(shards, test_split)), desc=f"evaluate {task_name}",
                                    total=min(total, limit), unit="img", disable=not progress)):
        if i >= limit:
            break
        pred = predict(model, task, record["image"], params.infer, device)
        base = baseline.predict(record)
        meters["model"].update(pred, record)
        meters["baseline"].update(base, record)
        if len(grid) < params.evaluate.grid_images:
            grid.append([record["image"], task.visualize(record[task.field]), task.visualize(pred), task.visualize(base)])
            labels.append(record["key"])
    metrics = {name: meter.compute() for name, meter in meters.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    picture_grid(grid, ["input", "ground truth", "PixelNet", baseline.name], labels, out / "predictions.png",
                 title=f"{task_name} on {manifest['dataset']} {test_split}")
    task.report(meters, out, ReportContext(dataset=manifest["dataset"], split=test_split,
                                           classes=tuple(manifest["classes"]), baseline=baseline.name))
    write_json(out / "metrics.json", metrics)
    return metrics

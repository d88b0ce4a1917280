"""The one training loop: SGD with momentum, step schedule, any task, any batch source.

The GPU fast path lives here too, so the pipeline and `pixelnet bench train` run the same code:
bf16 autocast (`precision`), channels_last activations (`memory_format`), optional
`torch.compile`, non-blocking copies of pinned batches, and no per-step host sync — losses stay on
the device and are read back every `log_every` steps (or at a checkpoint), where a non-finite one
is reported with the step it happened at. The loop times how long it waits for each batch, so the
summary says how much of the run was spent waiting for data.
"""

from __future__ import annotations

import csv
import time
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pixelnet.data.loader import Batch
from pixelnet.model.pixelnet import PixelNet, save_checkpoint
from pixelnet.tasks.base import Task


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 1000
    lr: float = 0.01
    lr_steps: tuple[int, ...] = ()      # iterations at which the rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"                # "auto", "cpu", "cuda", "cuda:N"
    checkpoint_every: int = 0           # 0: only at the end
    log_every: int = 10
    num_workers: int = 0
    threads: int = 0                    # torch CPU threads; 0 leaves torch's default
    clip_grad_norm: float = 0.0         # clip the global gradient norm (0: off); guards early regression steps
    precision: str = "auto"             # "auto" (bf16 on CUDA, fp32 on CPU), "fp32" or "bf16" (autocast)
    memory_format: str = "auto"         # "auto" (channels_last on CUDA), "channels_last" or "contiguous"
    compile: bool = False               # torch.compile the model for training
    prefetch: int = 4                   # batches each loader worker keeps ready (num_workers > 0)
    max_skipped: int = 10               # unreadable training samples tolerated before training fails

    def __post_init__(self) -> None:
        for name in ("iterations", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"train.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if list(self.lr_steps) != sorted(self.lr_steps):
            raise ValueError(f"train.lr_steps must be increasing, got {list(self.lr_steps)}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.clip_grad_norm < 0:
            raise ValueError(f"train.clip_grad_norm must be >= 0, got {self.clip_grad_norm}")
        if self.checkpoint_every < 0 or self.num_workers < 0 or self.threads < 0:
            raise ValueError("train.checkpoint_every, train.num_workers and train.threads must be >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"train.memory_format must be one of {', '.join(MEMORY_FORMATS)}, got {self.memory_format!r}")
        if self.prefetch < 1:
            raise ValueError(f"train.prefetch must be >= 1, got {self.prefetch}")
        if self.max_skipped < 0:
            raise ValueError(f"train.max_skipped must be >= 0, got {self.max_skipped}")


PRECISIONS = ("auto", "fp32", "bf16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@dataclass(frozen=True)
class FastPath:
    """What the loop does on this device, with "auto" resolved."""
    device: torch.device
    bf16: bool
    channels_last: bool
    compile: bool

    @classmethod
    def resolve(cls, config: TrainConfig) -> "FastPath":
        device = resolve_device(config.device)
        cuda = device.type == "cuda"
        bf16 = config.precision == "bf16" or (config.precision == "auto" and cuda)
        channels_last = config.memory_format == "channels_last" or (config.memory_format == "auto" and cuda)
        return cls(device, bf16, channels_last, config.compile)

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def describe(self) -> dict:
        return {"device": str(self.device), "precision": "bf16" if self.bf16 else "fp32",
                "memory_format": "channels_last" if self.channels_last else "contiguous", "compile": self.compile}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but CUDA is not available on this machine")
    return torch.device(name)


def learning_rate(config: TrainConfig, step: int) -> float:
    return config.lr * config.lr_gamma ** sum(step >= s for s in config.lr_steps)


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; the state at the last finished step was saved for a resume."""


class TooManySkipped(RuntimeError):
    """More training samples were unreadable than train.max_skipped allows."""


# Settings that change what training computes; the others (logging, loader processes, checkpoint
# cadence, thread count) can differ between a run and its resume.
_NOT_FINGERPRINTED = ("log_every", "checkpoint_every", "num_workers", "prefetch", "threads", "max_skipped")


def fingerprint(model: PixelNet, task: Task, config: TrainConfig, data_id: str) -> str:
    """What a checkpoint must match to be resumed: model and task, training settings, data."""
    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_FINGERPRINTED}
    blob = json.dumps({"model": asdict(model.config), "out": model.out_channels, "task": task.name,
                       "train": settings, "data": data_id}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_state(path: Path, model: PixelNet, optimizer: torch.optim.Optimizer, step: int, task: Task, print_: str,
                rows: list, window: list[float], skipped_ids: set[str]) -> None:
    """Everything a resume needs, atomically (temp file, then rename): a kill never leaves half of it."""
    save_checkpoint(path, model, {"step": step, "task": task.name, "optimizer": optimizer.state_dict(),
                                  "rng": _rng_state(), "fingerprint": print_, "log": rows,
                                  "window": window, "skipped_ids": sorted(skipped_ids)})


def _resumable(path: Path, print_: str, say) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError) as err:
        say(f"{path}: unreadable checkpoint ({err}); starting from scratch")
        return None
    if state.get("fingerprint") != print_:
        say(f"{path}: made with other settings, data or code; starting from scratch")
        return None
    return state


def train(
    model: PixelNet,
    task: Task,
    batches: Iterator[Batch] | Callable[[int], Iterator[Batch]],
    config: TrainConfig,
    out_dir: Path,
    log_path: Path,
    progress: bool = True,
    timing_warmup: int = 10,
    data_id: str = "",
    classes: list[str] | None = None,
) -> dict:
    """Train for config.iterations steps; write out_dir/model.pt and a per-step loss CSV at log_path.

    `batches` is a stream, or a function from a start step to the stream from that step on; given
    the function, training resumes from out_dir/last.pt when that checkpoint was made with the same
    model, task, settings and data (`data_id`), and says so. last.pt holds the model, the optimizer,
    the step, every RNG and the log so far; it is written every `checkpoint_every` steps and when
    SIGTERM or SIGINT arrives (then TrainingInterrupted is raised). Under torch.distributed
    (initialised by the caller) the model is wrapped in DistributedDataParallel and only rank 0
    writes files.

    The summary's "throughput" covers the steps after the first `timing_warmup` (compilation and
    allocator warm-up): images/s, batches/s, and the share of wall time spent waiting for batches.
    """
    fast = FastPath.resolve(config)
    device = fast.device
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    writer_rank = rank == 0
    say = (lambda msg: tqdm.write(f"train {task.name}: {msg}", file=sys.stderr)) if writer_rank else (lambda msg: None)
    model.to(device).train()
    if fast.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    out_dir, log_path = Path(out_dir), Path(log_path)
    state_path = out_dir / "last.pt"
    print_ = fingerprint(model, task, config, data_id)
    start, rows, window = 0, [], []
    skipped_ids: set[str] = set()  # bad samples come round every epoch; they are reported and counted once
    resumable = callable(batches)
    state = _resumable(state_path, print_, say) if resumable else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        start, rows, window = int(state["step"]), list(state["log"]), list(state["window"])
        skipped_ids = set(state["skipped_ids"])
        say(f"resuming from step {start} of {config.iterations} ({state_path})")
    stream = batches(start) if resumable else batches
    net = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(net) if fast.compile else net
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_log = log_path.with_name(f".{log_path.name}.tmp")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    stop: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
    started = time.perf_counter()
    timing_warmup = min(start + timing_warmup, config.iterations - 1)  # warm-up again after a resume
    timed_from = started
    waited = 0.0
    images = 0
    pending = [torch.tensor(v, device=device) for v in window]  # this window's losses, still on the device
    window_start = start - len(window)
    value = float("nan")
    try:
        with open(tmp_log if writer_rank else os.devnull, "w", newline="") as fh:  # one writer: rank 0
            writer = csv.writer(fh)
            writer.writerow(["step", "loss", "lr"])
            writer.writerows(rows)
            bar = tqdm(range(start, config.iterations), desc=f"train {task.name}", disable=not (progress and writer_rank),
                       unit="it", initial=start, total=config.iterations)
            for step in bar:
                if step == timing_warmup:
                    sync()
                    timed_from, waited, images = time.perf_counter(), 0.0, 0
                lr = learning_rate(config, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                t0 = time.perf_counter()
                batch = next(stream)
                for line in batch.skipped:
                    sample_id = ": ".join(line.split(": ")[:2])  # "<shard>: <key>": each bad sample counts once
                    if sample_id not in skipped_ids:
                        skipped_ids.add(sample_id)
                        say(f"skipped {line}")
                if len(skipped_ids) > config.max_skipped:
                    raise TooManySkipped(f"{len(skipped_ids)} training samples could not be read, more than train.max_skipped="
                                         f"{config.max_skipped} (the last: {batch.skipped[-1]})")
                batch = batch.to(device)
                if fast.channels_last:
                    batch.images = batch.images.contiguous(memory_format=torch.channels_last)
                waited += time.perf_counter() - t0
                images += batch.images.shape[0]
                with fast.autocast():
                    outputs = forward(batch.images, batch.coords, batch.weight > 0)  # (B, N, K); padding rows are not valid
                b, n, k = outputs.shape
                loss = task.loss(
                    outputs.reshape(b * n, k).float(),
                    batch.targets.reshape(b * n, *batch.targets.shape[2:]),
                    batch.weight.reshape(b * n),
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
                optimizer.step()
                pending.append(loss.detach())
                last = step + 1 == config.iterations
                log_now = (step + 1) % config.log_every == 0 or last
                checkpoint_now = (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0) or bool(stop)
                if log_now or checkpoint_now:
                    values = torch.stack(pending).float().cpu().numpy()  # the only host sync
                    bad = np.flatnonzero(~np.isfinite(values))
                    if bad.size:
                        raise FloatingPointError(
                            f"train: non-finite loss {values[bad[0]]} at step {window_start + int(bad[0])} (lower train.lr?); "
                            f"the last good checkpoint is kept")
                    value = float(values[-1])
                    if log_now:
                        mean = float(values.mean())
                        row = [step + 1, f"{mean:.6f}", f"{lr:.6g}"]
                        rows.append(row)
                        writer.writerow(row)
                        fh.flush()  # so the log can be followed while training runs
                        bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2g}")
                        pending, window_start = [], step + 1
                    if checkpoint_now and writer_rank:
                        window = [float(v) for v in values] if pending else []  # losses not yet in a log row
                        _save_state(state_path, model, optimizer, step + 1, task, print_, rows, window, skipped_ids)
                if stop:
                    raise TrainingInterrupted(f"stopped by signal {stop[0]} after step {step + 1}; "
                                              f"state saved to {state_path}: re-run the same command to resume")
    except BaseException:
        if writer_rank:
            tmp_log.unlink(missing_ok=True)  # the log so far lives on in last.pt; no half-written CSV
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sync()
    ended = time.perf_counter()
    if writer_rank:
        tmp_log.replace(log_path)
    seconds = ended - started
    timed = ended - timed_from
    steps_timed = max(config.iterations - timing_warmup, 0)
    summary = {"task": task.name, "iterations": config.iterations, "seconds": round(seconds, 2),
               **fast.describe(), "final_loss": value, "resumed_from": start, "skipped_samples": len(skipped_ids),
               "throughput": {"steps": steps_timed, "seconds": round(timed, 3),
                              "images_per_s": round(images / max(timed, 1e-9), 2),
                              "batches_per_s": round(steps_timed / max(timed, 1e-9), 3),
                              "data_wait_share": round(waited / max(timed, 1e-9), 4)}}
    if writer_rank:
        save_checkpoint(out_dir / "model.pt", model.cpu(), {"step": config.iterations, "task": task.name,
                                                             "summary": summary, "classes": classes})
    return summary

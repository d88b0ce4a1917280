"""The one training loop: SGD with momentum, step schedule, any task, any batch source.

The GPU fast path lives here too, so the pipeline and `pixelnet bench train` run the same code:
bf16 autocast (`precision`), channels_last activations (`memory_format`), optional
`torch.compile`, non-blocking copies of pinned batches, and no per-step host sync — losses stay on
the device and are read back every `log_every` steps (or at a checkpoint), where a non-finite one
is reported with the step it happened at. The loop times how long it waits for each batch, so the
summary says how much of the run was spent waiting for data.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pixelnet.batches import Batch
from pixelnet.device import cpu_bf16_native, cpu_model, resolve_device
from pixelnet.model.pixelnet import PixelNet, save_checkpoint
from pixelnet.tasks.base import Task


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 1000
    lr: float = 0.01
    lr_steps: tuple[int, ...] = ()      # iterations at which the rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    schedule: str = "step"              # "step" (lr_steps, lr_gamma) or "cosine" (lr down to 0 over the run)
    ema: float = 0.0                    # decay of an exponential moving average of the weights saved as
                                        # model.pt (e.g. 0.999); 0: off, the last weights are saved
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"                # "auto", "cpu", "cuda", "cuda:N"
    checkpoint_every: int = 0           # 0: only at the end
    log_every: int = 10
    num_workers: int = 0
    threads: int = 0                    # torch CPU threads; 0 leaves torch's default
    clip_grad_norm: float = 0.0         # clip the global gradient norm (0: off); guards early regression steps
    precision: str = "fp32"             # "fp32", "bf16" (autocast) or "auto": bf16 on CUDA and on a CPU that
                                        # multiplies bf16 natively (AMX, AVX512-BF16), else fp32
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
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.schedule == "cosine" and self.lr_steps:
            raise ValueError(f"train.lr_steps must be empty with train.schedule cosine, got {list(self.lr_steps)}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"train.ema must be in [0, 1) (0 = off), got {self.ema}")
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
SCHEDULES = ("step", "cosine")
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
        bf16 = config.precision == "bf16" or (config.precision == "auto" and (cuda or cpu_bf16_native()))
        channels_last = config.memory_format == "channels_last" or (config.memory_format == "auto" and cuda)
        return cls(device, bf16, channels_last, config.compile)

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def describe(self) -> dict:
        return {"device": str(self.device), "precision": "bf16" if self.bf16 else "fp32",
                "memory_format": "channels_last" if self.channels_last else "contiguous", "compile": self.compile}



def learning_rate(config: TrainConfig, step: int) -> float:
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.iterations))
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
                rows: list, window: list[float], skipped_ids: set[str], average: "WeightAverage | None") -> None:
    """Everything a resume needs, atomically (temp file, then rename): a kill never leaves half of it."""
    save_checkpoint(path, model, {"step": step, "task": task.name, "optimizer": optimizer.state_dict(),
                                  "rng": _rng_state(), "fingerprint": print_, "log": rows,
                                  "window": window, "skipped_ids": sorted(skipped_ids),
                                  "average": average.state_dict() if average else None})


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


class WeightAverage:
    """An exponential moving average of the model's weights and buffers (train.ema), updated after
    every optimizer step with decay min(ema, (1 + t) / (10 + t)), so the first steps do not keep the
    random initialisation; model.pt holds the average. Integer buffers (BN's step count) are copied."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        keep = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for key, value in model.state_dict().items():
            average = self.state[key]
            if average.is_floating_point():
                average.lerp_(value.detach(), 1 - keep)
            else:
                average.copy_(value)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "state": self.state}

    def load_state_dict(self, saved: dict) -> None:
        self.steps = int(saved["steps"])
        for key, value in saved["state"].items():
            self.state[key].copy_(value)


class SkipLedger:
    """Unreadable training samples: each named once (bad samples come round every epoch) and counted
    against train.max_skipped."""

    def __init__(self, limit: int, say: Callable[[str], None], seen: list[str] = ()) -> None:
        self.limit, self.say, self.ids = limit, say, set(seen)

    def record(self, lines: list[str]) -> None:
        for line in lines:
            sample_id = ": ".join(line.split(": ")[:2])  # "<shard>: <key>"
            if sample_id not in self.ids:
                self.ids.add(sample_id)
                self.say(f"skipped {line}")
        if len(self.ids) > self.limit:
            raise TooManySkipped(f"{len(self.ids)} training samples could not be read, more than train.max_skipped="
                                 f"{self.limit} (the last: {lines[-1]})")


class LossLog:
    """Per-step losses stay on the device; `read` brings the pending ones back in one host sync (and
    refuses a non-finite one, naming its step); `row` turns them into a CSV row of their mean."""

    def __init__(self, rows: list, window: list[float], start: int, device: torch.device) -> None:
        self.rows = list(rows)
        self.pending = [torch.tensor(v, device=device) for v in window]  # losses not yet in a row
        self.window_start = start - len(window)
        self.last = float("nan")

    def add(self, loss: torch.Tensor) -> None:
        self.pending.append(loss.detach())

    def read(self) -> np.ndarray:
        values = torch.stack(self.pending).float().cpu().numpy()  # the only host sync
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise FloatingPointError(
                f"train: non-finite loss {values[bad[0]]} at step {self.window_start + int(bad[0])} (lower train.lr?); "
                f"the last good checkpoint is kept")
        self.last = float(values[-1])
        return values

    def row(self, step: int, lr: float, values: np.ndarray) -> list:
        row = [step, f"{float(values.mean()):.6f}", f"{lr:.6g}"]
        self.rows.append(row)
        self.pending, self.window_start = [], step
        return row

    def window(self, values: np.ndarray) -> list[float]:
        """What a checkpoint keeps of the losses not yet in a row."""
        return [float(v) for v in values] if self.pending else []


@contextlib.contextmanager
def _signals_to(stop: list[int]):
    """SIGTERM and SIGINT append to `stop` (the loop then saves and stops) instead of killing the run."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _restore(state: dict, model: PixelNet, optimizer: torch.optim.Optimizer,
             average: WeightAverage | None) -> tuple[int, list, list[float], list[str]]:
    """Load a resumable checkpoint into the run; (start step, log rows, losses not yet in a row, skipped ids)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if average is not None:
        average.load_state_dict(state["average"])
    _set_rng_state(state["rng"])
    return int(state["step"]), state["log"], state["window"], state["skipped_ids"]


def _throughput(steps: int, seconds: float, images: int, waited: float) -> dict:
    """The timed steps' speed and the share of their wall time spent waiting for batches."""
    return {"steps": steps, "seconds": round(seconds, 3), "images_per_s": round(images / max(seconds, 1e-9), 2),
            "batches_per_s": round(steps / max(seconds, 1e-9), 3), "data_wait_share": round(waited / max(seconds, 1e-9), 4)}


def _machine(device: torch.device) -> dict:
    """What trained the weights: the model card quotes it."""
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device)}
    return {"cpu": cpu_model(), "bf16_native": cpu_bf16_native(), "threads": torch.get_num_threads()}


def _forward(model: PixelNet, fast: FastPath, distributed: bool) -> Callable:
    """The model as the loop calls it: wrapped for DistributedDataParallel, compiled when asked."""
    net = model
    if distributed:
        device = fast.device
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(net) if fast.compile else net


def _next_batch(stream: Iterator[Batch], ledger: SkipLedger, fast: FastPath) -> tuple[Batch, float]:
    """The next batch on the device, and the seconds spent waiting for it."""
    t0 = time.perf_counter()
    batch = next(stream)
    ledger.record(batch.skipped)
    batch = batch.to(fast.device)
    if fast.channels_last:
        batch.images = batch.images.contiguous(memory_format=torch.channels_last)
    return batch, time.perf_counter() - t0


def _step(forward: Callable, task: Task, batch: Batch, optimizer: torch.optim.Optimizer, fast: FastPath,
          config: TrainConfig, model: PixelNet) -> torch.Tensor:
    """One SGD step; the loss stays on the device."""
    with fast.autocast():
        outputs = forward(batch.images, batch.coords, batch.weight > 0)  # (B, N, K); padding rows are not valid
    b, n, k = outputs.shape
    loss = task.loss(outputs.reshape(b * n, k).float(), batch.targets.reshape(b * n, *batch.targets.shape[2:]),
                     batch.weight.reshape(b * n))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
    optimizer.step()
    return loss


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
    the weight average, the step, every RNG and the log so far; it is written every
    `checkpoint_every` steps and when SIGTERM or SIGINT arrives (then TrainingInterrupted is
    raised). Under torch.distributed (initialised by the caller) the model is wrapped in
    DistributedDataParallel and only rank 0 writes files.

    The summary's "throughput" covers the steps after the first `timing_warmup` (compilation and
    allocator warm-up): images/s, batches/s, and the share of wall time spent waiting for batches.
    """
    fast = FastPath.resolve(config)
    device = fast.device
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    writer_rank = (torch.distributed.get_rank() if distributed else 0) == 0
    say = (lambda msg: tqdm.write(f"train {task.name}: {msg}", file=sys.stderr)) if writer_rank else (lambda msg: None)
    model.to(device).train()
    if fast.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    average = WeightAverage(model, config.ema) if config.ema else None
    out_dir, log_path = Path(out_dir), Path(log_path)
    state_path = out_dir / "last.pt"
    print_ = fingerprint(model, task, config, data_id)
    resumable = callable(batches)
    state = _resumable(state_path, print_, say) if resumable else None
    start, rows, window, skipped = _restore(state, model, optimizer, average) if state else (0, [], [], [])
    if state is not None:
        say(f"resuming from step {start} of {config.iterations} ({state_path})")
    ledger = SkipLedger(config.max_skipped, say, skipped)
    losses = LossLog(rows, window, start, device)
    stream = batches(start) if resumable else batches
    forward = _forward(model, fast, distributed)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_log = log_path.with_name(f".{log_path.name}.tmp")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    stop: list[int] = []
    started = time.perf_counter()
    timing_warmup = min(start + timing_warmup, config.iterations - 1)  # warm-up again after a resume
    timed_from, waited, images = started, 0.0, 0
    try:
        with _signals_to(stop), open(tmp_log if writer_rank else os.devnull, "w", newline="") as fh:  # one writer: rank 0
            writer = csv.writer(fh)
            writer.writerow(["step", "loss", "lr"])
            writer.writerows(losses.rows)
            bar = tqdm(range(start, config.iterations), desc=f"train {task.name}", disable=not (progress and writer_rank),
                       unit="it", initial=start, total=config.iterations)
            for step in bar:
                if step == timing_warmup:
                    sync()
                    timed_from, waited, images = time.perf_counter(), 0.0, 0
                lr = learning_rate(config, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch, wait = _next_batch(stream, ledger, fast)
                waited += wait
                images += batch.images.shape[0]
                losses.add(_step(forward, task, batch, optimizer, fast, config, model))
                if average is not None:
                    average.update(model)
                log_now = (step + 1) % config.log_every == 0 or step + 1 == config.iterations
                checkpoint_now = (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0) or bool(stop)
                if log_now or checkpoint_now:
                    values = losses.read()
                    if log_now:
                        row = losses.row(step + 1, lr, values)
                        writer.writerow(row)
                        fh.flush()  # so the log can be followed while training runs
                        bar.set_postfix(loss=row[1], lr=f"{lr:.2g}")
                    if checkpoint_now and writer_rank:
                        _save_state(state_path, model, optimizer, step + 1, task, print_, losses.rows,
                                    losses.window(values), ledger.ids, average)
                if stop:
                    raise TrainingInterrupted(f"stopped by signal {stop[0]} after step {step + 1}; "
                                              f"state saved to {state_path}: re-run the same command to resume")
    except BaseException:
        if writer_rank:
            tmp_log.unlink(missing_ok=True)  # the log so far lives on in last.pt; no half-written CSV
        raise
    sync()
    ended = time.perf_counter()
    seconds, timed = ended - started, ended - timed_from
    steps_timed = max(config.iterations - timing_warmup, 0)
    summary = {"task": task.name, "iterations": config.iterations, "seconds": round(seconds, 2),
               **fast.describe(), "final_loss": losses.last, "resumed_from": start, "skipped_samples": len(ledger.ids),
               "weights": f"moving average (ema {config.ema})" if average else "last step", "machine": _machine(device),
               "throughput": _throughput(steps_timed, timed, images, waited)}
    if writer_rank:
        tmp_log.replace(log_path)
        if average is not None:
            model.load_state_dict(average.state)
        save_checkpoint(out_dir / "model.pt", model.cpu(), {"step": config.iterations, "task": task.name,
                                                             "summary": summary, "classes": classes})
    return summary

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
import math
import time
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
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


def train(
    model: PixelNet,
    task: Task,
    batches: Iterator[Batch],
    config: TrainConfig,
    out_dir: Path,
    log_path: Path,
    progress: bool = True,
    timing_warmup: int = 10,
) -> dict:
    """Train for config.iterations steps; write out_dir/model.pt and a per-step loss CSV at log_path.

    The summary's "throughput" covers the steps after the first `timing_warmup` (compilation and
    allocator warm-up): images/s, batches/s, and the share of wall time spent waiting for batches.
    """
    fast = FastPath.resolve(config)
    device = fast.device
    model.to(device).train()
    if fast.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if fast.compile else model
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_log = log_path.with_name(f".{log_path.name}.tmp")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    started = time.perf_counter()
    timing_warmup = min(timing_warmup, config.iterations - 1)
    timed_from = started
    waited = 0.0
    images = 0
    pending: list[torch.Tensor] = []  # this window's losses, still on the device
    window_start = 0
    value = float("nan")
    with open(tmp_log, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "lr"])
        bar = tqdm(range(config.iterations), desc=f"train {task.name}", disable=not progress, unit="it")
        for step in bar:
            if step == timing_warmup:
                sync()
                timed_from, waited, images = time.perf_counter(), 0.0, 0
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            batch = next(batches).to(device)
            if fast.channels_last:
                batch.images = batch.images.contiguous(memory_format=torch.channels_last)
            waited += time.perf_counter() - t0
            images += batch.images.shape[0]
            with fast.autocast():
                outputs = forward(batch.images, batch.coords)  # (B, N, K)
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
            checkpoint_now = config.checkpoint_every and (step + 1) % config.checkpoint_every == 0
            if log_now or checkpoint_now:
                values = torch.stack(pending).float().cpu().numpy()  # the only host sync
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    raise FloatingPointError(
                        f"train: non-finite loss {values[bad[0]]} at step {window_start + int(bad[0])} (lower train.lr?)")
                value = float(values[-1])
                if log_now:
                    mean = float(values.mean())
                    writer.writerow([step + 1, f"{mean:.6f}", f"{lr:.6g}"])
                    fh.flush()  # so the log can be followed while training runs
                    bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2g}")
                    pending, window_start = [], step + 1
                if checkpoint_now:
                    save_checkpoint(Path(out_dir) / "last.pt", model, {"step": step + 1, "task": task.name})
    sync()
    ended = time.perf_counter()
    tmp_log.replace(log_path)
    seconds = ended - started
    timed = ended - timed_from
    steps_timed = config.iterations - timing_warmup
    summary = {"task": task.name, "iterations": config.iterations, "seconds": round(seconds, 2),
               **fast.describe(), "final_loss": value,
               "throughput": {"steps": steps_timed, "seconds": round(timed, 3),
                              "images_per_s": round(images / timed, 2), "batches_per_s": round(steps_timed / timed, 3),
                              "data_wait_share": round(waited / timed, 4)}}
    save_checkpoint(Path(out_dir) / "model.pt", model.cpu(), {"step": config.iterations, "task": task.name, "summary": summary})
    return summary

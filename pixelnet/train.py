"""The one training loop: SGD with momentum, step schedule, any task, any batch source."""

from __future__ import annotations

import csv
import math
import time
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
) -> dict:
    """Train for config.iterations steps; write out_dir/model.pt and a per-step loss CSV at log_path."""
    device = resolve_device(config.device)
    model.to(device).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_log = log_path.with_name(f".{log_path.name}.tmp")
    started = time.perf_counter()
    recent: list[float] = []
    with open(tmp_log, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "lr"])
        bar = tqdm(range(config.iterations), desc=f"train {task.name}", disable=not progress, unit="it")
        for step in bar:
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = next(batches).to(device)
            outputs = model(batch.images, batch.coords)  # (B, N, K)
            b, n, k = outputs.shape
            loss = task.loss(
                outputs.reshape(b * n, k).float(),
                batch.targets.reshape(b * n, *batch.targets.shape[2:]),
                batch.weight.reshape(b * n),
            )
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"train: non-finite loss {value} at step {step} (lower train.lr?)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            recent.append(value)
            if (step + 1) % config.log_every == 0 or step + 1 == config.iterations:
                mean = float(np.mean(recent))
                writer.writerow([step + 1, f"{mean:.6f}", f"{lr:.6g}"])
                fh.flush()  # so the log can be followed while training runs
                bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2g}")
                recent = []
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
                save_checkpoint(Path(out_dir) / "last.pt", model, {"step": step + 1, "task": task.name})
    tmp_log.replace(log_path)
    seconds = time.perf_counter() - started
    summary = {"task": task.name, "iterations": config.iterations, "seconds": round(seconds, 2),
               "device": str(device), "final_loss": float(value)}
    save_checkpoint(Path(out_dir) / "model.pt", model.cpu(), {"step": config.iterations, "task": task.name, "summary": summary})
    return summary

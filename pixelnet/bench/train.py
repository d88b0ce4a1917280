"""Training throughput of the one training loop (`pixelnet.train.train`) at the paper's full configuration.

The model is the paper's: VGG-16 taps conv1_2…conv5_3 + fc7 (5,568 features), an MLP 4096-4096 with
dropout 0.5, 5 images × 2,000 sampled pixels at 224², trained from scratch. The batches come from
either

* ``synthetic``: a few random batches made up front (pinned on a GPU) and cycled, so the figure is
  the model's own speed, or
* ``shards``: the real loader (`PixelBatches` in DataLoader workers, decoding, augmenting and
  gathering targets) over a shard folder, with edge-biased pixel indices drawn by the Numba kernel
  first, so the figure includes everything a real run does.

It reports images/s and batches/s after warm-up, the share of wall time the loop spent waiting for
a batch, the floating-point work per image (counted by `torch.utils.flop_counter` on a real
forward+backward step), the device's measured bf16 matrix-multiply peak, and the share of the
roofline that training reached. The roofline is the peak divided by the textbook step's work per
image (every hypercolumn through the whole head, the issue's ~600 GFLOP at the paper's settings);
`project_first` does less work than that, so the table also gives the FLOP/s actually computed.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixelnet.bench.measure import describe_device, in_child, peak_rss_mb, rss_mb
from pixelnet.batches import Batch, PixelBatches, batch_loader
from pixelnet.data.shards import read_shards, shard_paths
from pixelnet.model.pixelnet import ModelConfig, PixelNet
from pixelnet.model.trunk import LAYERS
from pixelnet.plan import AugmentConfig, Plan, plan_image
from pixelnet.sampling import SamplingConfig
from pixelnet.tasks import EdgesTask
from pixelnet.train import MEMORY_FORMATS, PRECISIONS, FastPath, TrainConfig, train

INPUTS = ("synthetic", "shards")


@dataclass(frozen=True)
class TrainBench:
    image_size: int = 224
    images: int = 5                       # per batch
    samples: int = 2000                   # per image
    layers: tuple[str, ...] = LAYERS      # conv1_2 … conv5_3 + fc7
    hidden: tuple[int, ...] = (4096, 4096)
    dropout: float = 0.5
    width: float = 1.0
    batch_norm: bool = False
    gather: str = "bag"
    project_first: bool = True            # deep taps through the first layer before sampling (exact)
    precision: str = "bf16"
    memory_format: str = "channels_last"
    compile: bool = False
    steps: int = 50                       # timed steps
    warmup: int = 10                      # untimed steps first (compilation, allocator, cuDNN autotuning)
    workers: int = 8                      # loader processes for real shards
    prefetch: int = 4
    shards: str | None = None             # shard folder (its train split) for the "shards" input
    peak_tflops: float = 0.0              # the device's bf16 peak; 0 = measure it
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.images < 1 or self.samples < 1:
            raise ValueError("--image-size must be >= 32, --images and --samples >= 1")
        if self.steps < 1 or self.warmup < 1:
            raise ValueError("--steps and --warmup must be >= 1")
        if self.precision not in PRECISIONS[1:]:
            raise ValueError(f"--precision must be fp32 or bf16, got {self.precision!r}")
        if self.memory_format not in MEMORY_FORMATS[1:]:
            raise ValueError(f"--memory-format must be channels_last or contiguous, got {self.memory_format!r}")
        if self.workers < 0 or self.prefetch < 1:
            raise ValueError("--workers must be >= 0 and --prefetch >= 1")

    def model_config(self) -> ModelConfig:
        return ModelConfig(layers=self.layers, batch_norm=self.batch_norm, width=self.width, head="mlp",
                           hidden=self.hidden, dropout=self.dropout, gather=self.gather,
                           project_first=self.project_first)

    def train_config(self, device: str) -> TrainConfig:
        # A small rate: random targets must not blow up the from-scratch net mid-measurement.
        return TrainConfig(iterations=self.warmup + self.steps, lr=1e-4, device=device, log_every=self.warmup + self.steps,
                           checkpoint_every=0, num_workers=self.workers, precision=self.precision,
                           memory_format=self.memory_format, compile=self.compile, prefetch=self.prefetch,
                           seed=self.seed)


def synthetic_batches(bench: TrainBench, pin: bool, distinct: int = 4) -> Iterator[Batch]:
    """`distinct` random batches, made once and cycled: edge targets, integer pixel coordinates."""
    g = torch.Generator().manual_seed(bench.seed)
    s, b, n = bench.image_size, bench.images, bench.samples
    made = []
    for _ in range(distinct):
        flat = torch.stack([torch.randperm(s * s, generator=g)[:n] for _ in range(b)])  # (B, N)
        batch = Batch(
            images=torch.randint(0, 256, (b, 3, s, s), generator=g, dtype=torch.uint8),
            coords=torch.stack([flat % s, flat // s], dim=-1).float(),  # (B, N, 2)
            targets=(torch.rand(b, n, generator=g) < 0.25).float(),  # (B, N) a quarter positives
            weight=torch.ones(b, n),
            keys=[f"synthetic-{i}" for i in range(b)],
        )
        made.append(batch.pin_memory() if pin else batch)
    return itertools.cycle(made)


def shard_batches(bench: TrainBench, task: EdgesTask, pin: bool) -> Iterator[Batch]:
    """The real loader over bench.shards' train split, with an edge-biased plan (one draw) made here first."""
    folder = Path(bench.shards or "")
    paths = shard_paths(folder, "train")
    config = SamplingConfig(strategy="edge_biased", pixels_per_image=bench.samples, draws=1, seed=bench.seed)
    augment = AugmentConfig(crop=bench.image_size, scale=(0.8, 1.25), flip=True)
    keys, sizes, parts = [], [], []
    for record in read_shards(paths):
        strata = task.strata(record)
        keys.append(record["key"])
        sizes.append(strata.shape)
        parts.append(plan_image(strata, record["key"], config, augment, draws=1))
    plan = Plan.stack(keys, sizes, parts, np.array([bench.seed]), augment.crop)
    dataset = PixelBatches(paths, plan, task, bench.images)
    return batch_loader(dataset, bench.workers, pin_memory=pin, prefetch=bench.prefetch)


def flops_per_batch(model: PixelNet, task: EdgesTask, batch: Batch, fast: FastPath) -> int:
    """Floating-point operations of one forward+backward step, as torch's FLOP counter counts them
    (2 per multiply-add, convolutions and matrix products)."""
    batch = batch.to(fast.device)
    counter = FlopCounterMode(display=False)
    with counter:
        with fast.autocast():
            out = model(batch.images, batch.coords)  # (B, N, 1)
        b, n, k = out.shape
        task.loss(out.reshape(b * n, k).float(), batch.targets.reshape(b * n), batch.weight.reshape(b * n)).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def measure_peak_tflops(device: torch.device, size: int | None = None, seconds: float = 2.0) -> float:
    """The device's bf16 matrix-multiply throughput: the best of repeated size³ products."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best, started = 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync()
        best = max(best, 10 * 2 * size**3 / (time.perf_counter() - t0))
    return best / 1e12


def measure_input(bench: TrainBench, source: str, device_name: str) -> dict:
    """One training run of warmup + steps on `source` batches, in this process."""
    torch.manual_seed(bench.seed)
    config = bench.train_config(device_name)
    fast = FastPath.resolve(config)
    pin = fast.device.type == "cuda"
    task = EdgesTask()
    model = PixelNet(bench.model_config(), task.out_channels)
    model.trunk.init_gaussian()
    batches = synthetic_batches(bench, pin) if source == "synthetic" else shard_batches(bench, task, pin)
    first = next(batches)
    model.to(fast.device)
    flops = flops_per_batch(model, task, first, fast)
    configured = model.config
    model.config = dataclasses.replace(configured, project_first=False)  # the textbook formulation's work
    standard = flops_per_batch(model, task, first, fast)
    model.config = configured
    if fast.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(fast.device)
    base = rss_mb()
    with tempfile.TemporaryDirectory(prefix="pixelnet-bench-train-") as tmp:
        summary = train(model, task, itertools.chain([first], batches), config, Path(tmp), Path(tmp) / "log.csv",
                        progress=False, timing_warmup=bench.warmup)
    t = summary["throughput"]
    peak_mb = (torch.cuda.max_memory_allocated(fast.device) / 2**20 if fast.device.type == "cuda"
               else peak_rss_mb() - base)
    return {"input": source, **t, "flops_per_image": flops / bench.images, "standard_flops_per_image": standard / bench.images,
            "peak_memory_mb": round(peak_mb, 1),
            "fast_path": {k: v for k, v in summary.items() if k in ("precision", "memory_format", "compile")}}


def run(bench: TrainBench, device_name: str, inputs: tuple[str, ...] = INPUTS) -> dict:
    """Each input in a fresh process; the report `pixelnet bench train` writes."""
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device_name}: CUDA is not available on this machine")
    if "shards" in inputs:
        shard_paths(Path(bench.shards or ""), "train")  # fail before any work when the folder is wrong
    peak = bench.peak_tflops or measure_peak_tflops(device)
    rows = []
    for source in inputs:
        row = in_child(measure_input, bench, source, device_name)
        # The roofline is the textbook step's work at the peak (the issue's ~1,300 images/s on an H100);
        # projecting first does less work, so it can pass shares a textbook step could not reach.
        roofline = peak * 1e12 / row["standard_flops_per_image"]
        achieved = row["images_per_s"] * row["flops_per_image"] / 1e12  # TFLOP/s actually computed
        row.update(roofline_images_per_s=round(roofline, 1), roofline_share=_sig(row["images_per_s"] / roofline),
                   achieved_tflops=_sig(achieved), hardware_share=_sig(achieved / peak))
        rows.append(row)
    return {"device": describe_device(device), "peak_bf16_tflops": round(peak, 1),
            "peak_measured": not bench.peak_tflops, "settings": asdict(bench), "rows": rows,
            "torch": torch.__version__}


def _sig(x: float) -> float:
    """Four significant digits: a tiny model's share of a big GPU's peak must not round to 0."""
    return float(f"{x:.4g}")


def table(report: dict) -> str:
    lines = ["| input | images/s | batches/s | data wait | GFLOP/image (textbook) | roofline images/s | share of roofline "
             "| TFLOP/s computed (share of peak) | peak memory MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['input']} | {r['images_per_s']:.1f} | {r['batches_per_s']:.2f} | {100 * r['data_wait_share']:.1f}% | "
                     f"{r['flops_per_image'] / 1e9:.3g} ({r['standard_flops_per_image'] / 1e9:.3g}) | "
                     f"{r['roofline_images_per_s']:.0f} | {100 * r['roofline_share']:.1f}% | "
                     f"{r['achieved_tflops']:.2f} ({100 * r['hardware_share']:.1f}%) | {r['peak_memory_mb']:,.0f} |")
    return "\n".join(lines)


def describe(report: dict) -> str:
    s = report["settings"]
    return (f"{s['images']} images x {s['samples']} samples at {s['image_size']}², taps {'+'.join(s['layers'])}, "
            f"MLP {'-'.join(map(str, s['hidden']))}, width {s['width']}, {s['precision']}, {s['memory_format']}, "
            f"compile {s['compile']}, gather {s['gather']}, project_first {s['project_first']}, {s['warmup']} warm-up + {s['steps']} timed steps; "
            f"bf16 peak {report['peak_bf16_tflops']} TFLOP/s ({'measured' if report['peak_measured'] else 'given'})")


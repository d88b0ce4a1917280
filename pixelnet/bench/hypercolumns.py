"""Sparse versus dense hypercolumns, measured: the paper's Table 3 on this machine.

One trunk (VGG-16, fc6/fc7 as convolutions) and one head, wired three ways:

* ``pixelnet-sparse``: bilinear values of each tapped map at the sampled pixels only (the gather
  of `pixelnet.model.hypercolumn`, at each tap's stride-true positions), head on those rows.
* ``fcn-sampling``: every tap upsampled to the image by its stride and concatenated (FCN's learned
  deconvolution, or bilinear interpolation), then the head on the sampled pixels' rows only.
* ``fcn-dense``: the same dense hypercolumns, the head on every pixel, the loss on the sampled
  pixels ("FCN/Deconvolution": the outputs of all other pixels are masked out).

All three compute the same hypercolumns at the sampled pixels (the tests check it), so the time and
memory they cost are the price of the same work. A step is zero_grad, forward, softmax
cross-entropy at the sampled pixels, backward — the forward/backward passes the paper times. Each
variant runs in its own process so its peak memory is its own.
"""

from __future__ import annotations

import time
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelnet.bench.measure import (
    available_mb,
    describe_device,
    in_child,
    is_out_of_memory,
    limit_address_space,
    median,
    peak_rss_mb,
    rss_mb,
    timed_repeats,
)
from pixelnet.model.dense import INT_MAX, UPSAMPLES, DenseHypercolumns, deconv_weight_elements
from pixelnet.model.hypercolumn import GATHERS, sample_hypercolumns
from pixelnet.model.pixelnet import ModelConfig, PixelNet
from pixelnet.model.trunk import LAYERS, STRIDES, VGGTrunk

METHODS = ("pixelnet-sparse", "fcn-sampling", "fcn-dense")
HEADS = ("linear", "mlp")
PRECISIONS = ("fp32", "bf16")
TABLE3_LAYERS = ("conv1_2", "conv3_3", "conv5_3")  # the paper's "more forgiving setting" for Table 3


@dataclass(frozen=True)
class HypercolumnBench:
    image_size: int = 224
    images: int = 1
    samples: int = 2000                   # per image
    layers: tuple[str, ...] = TABLE3_LAYERS  # the rows "with fc7" add fc7
    hidden: tuple[int, ...] = (4096, 4096)
    dropout: float = 0.5
    classes: int = 21
    width: float = 1.0                    # channel multiplier (1.0: VGG-16 itself; tests use less)
    batch_norm: bool = False              # the paper's VGG-16 has none
    upsample: str = "deconv"              # how the dense variants upsample: FCN's "deconv" or "bilinear"
    precision: str = "fp32"
    gather: str = "bag"
    warmup: int = 1
    repeats: int = 5
    max_seconds: float = 120.0            # per variant: stop repeating after this, once 3 repeats are in
    memory_mb: float = 0.0                # budget per variant; 0 = the device's free memory
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(f"--image-size must be a positive multiple of 32 (the deepest stride), got {self.image_size}")
        if self.images < 1 or self.samples < 1 or self.classes < 2:
            raise ValueError("--images and --samples must be >= 1 and --classes >= 2")
        if self.samples > self.image_size**2:
            raise ValueError(f"--samples {self.samples} exceeds the {self.image_size**2} pixels of an image")
        unknown = [t for t in self.layers if t not in LAYERS or t == "fc7"]
        if unknown or not self.layers:
            raise ValueError(f"--layers: unknown {unknown or 'empty'}; choose from {list(LAYERS[:-1])} (fc7 rows add fc7)")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"--upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.gather not in GATHERS:
            raise ValueError(f"--gather must be one of {GATHERS}, got {self.gather!r}")
        if self.warmup < 0 or self.repeats < 1:
            raise ValueError("--warmup must be >= 0 and --repeats >= 1")


@dataclass(frozen=True)
class Variant:
    method: str
    head: str
    fc7: bool

    def layers(self, bench: HypercolumnBench) -> tuple[str, ...]:
        return tuple(bench.layers) + (("fc7",) if self.fc7 else ())


def all_variants() -> list[Variant]:
    """The paper's table order: dense first, then sampling, then ours; linear before MLP; fc7 last."""
    return [Variant(m, h, fc7) for fc7 in (False, True) for m in reversed(METHODS) for h in HEADS]


class BenchNet(nn.Module):
    """A PixelNet trunk and head, wired as `variant.method` says; forward gives (B, N, K) at the samples."""

    def __init__(self, variant: Variant, bench: HypercolumnBench) -> None:
        super().__init__()
        if variant.method not in METHODS or variant.head not in HEADS:
            raise ValueError(f"unknown variant {variant}")
        self.method = variant.method
        layers = variant.layers(bench)
        config = ModelConfig(layers=layers, batch_norm=bench.batch_norm, width=bench.width, head=variant.head,
                             hidden=bench.hidden, dropout=bench.dropout, gather=bench.gather)
        self.net = PixelNet(config, bench.classes)
        self.net.trunk.init_gaussian()
        taps = self.net.trunk.taps
        self.dense = None if self.method == "pixelnet-sparse" else DenseHypercolumns(
            [self.net.trunk.channels[t] for t in taps], [STRIDES[t] for t in taps], bench.upsample)

    def hypercolumns(self, images: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """(B, N, C) hypercolumns at integer pixel coords (B, N, 2), as this variant builds them."""
        feats = self.net.features(images)
        size = tuple(images.shape[-2:])
        if self.dense is None:
            return sample_hypercolumns(feats, coords, self.net.strides, self.net.config.gather)
        return _pick(self.dense(feats, size), coords)  # (B, N, C)

    def forward(self, images: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        if self.method != "fcn-dense":
            columns = self.hypercolumns(images, coords)  # (B, N, C)
            b, n, c = columns.shape
            return self.net.head(columns.reshape(b * n, c)).view(b, n, -1)  # (B, N, K)
        dense = self.dense(self.net.features(images), tuple(images.shape[-2:]))  # (B, H, W, C)
        b, h, w, c = dense.shape
        every = self.net.head(dense.reshape(b * h * w, c)).view(b, h, w, -1)  # (B, H, W, K): every pixel
        return _pick(every, coords)  # (B, N, K): the loss sees the sampled pixels only


def _pick(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Rows of a (B, H, W, C) map at integer pixel coords (B, N, 2) -> (B, N, C)."""
    b, h, w, c = dense.shape
    xy = coords.round().long()
    flat = xy[..., 1] * w + xy[..., 0] + (torch.arange(b, device=coords.device) * (h * w))[:, None]  # (B, N)
    return dense.reshape(b * h * w, c).index_select(0, flat.reshape(-1)).view(b, -1, c)


def make_inputs(bench: HypercolumnBench, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random images (B, 3, S, S) in [0, 255], distinct integer pixel coords (B, N, 2), class targets (B, N)."""
    g = torch.Generator().manual_seed(bench.seed)
    s = bench.image_size
    images = torch.randint(0, 256, (bench.images, 3, s, s), generator=g).float()
    flat = torch.stack([torch.randperm(s * s, generator=g)[: bench.samples] for _ in range(bench.images)])  # (B, N)
    coords = torch.stack([flat % s, flat // s], dim=-1).float()  # (B, N, 2) x, y
    targets = torch.randint(0, bench.classes, (bench.images, bench.samples), generator=g)
    return images.to(device), coords.to(device), targets.to(device)


def parameter_mb(model: nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def fit_problem(variant: Variant, bench: HypercolumnBench, budget_mb: float) -> str | None:
    """Why the variant cannot be built, found before trying: a weight array beyond INT_MAX elements,
    or parameters and their gradients alone beyond the memory budget. None if it may fit."""
    layers = variant.layers(bench)
    with torch.device("meta"):  # shapes only, no memory
        trunk = VGGTrunk(layers, batch_norm=bench.batch_norm, width=bench.width)
    channels = trunk.channels
    params = sum(p.numel() for p in trunk.parameters())
    c = sum(channels[t] for t in layers)
    head = c * bench.classes if variant.head == "linear" else sum(
        a * b for a, b in zip((c, *bench.hidden), (*bench.hidden, bench.classes)))
    params += head
    if variant.method != "pixelnet-sparse" and bench.upsample == "deconv":
        for t in layers:
            n = deconv_weight_elements(channels[t], STRIDES[t])
            if n > INT_MAX:
                return (f"does not fit: the {t} deconvolution ({channels[t]}x{channels[t]}x{2 * STRIDES[t]}x"
                        f"{2 * STRIDES[t]}) has {n:.3g} weights, more than INT_MAX ({n * 4 / 2**30:.0f} GiB in fp32)")
            params += n
    need = params * 4 * 2 / 2**20  # fp32 weights and their gradients
    if need > budget_mb:
        return f"does not fit: weights and gradients alone need {need:,.0f} MB, the budget is {budget_mb:,.0f} MB"
    return None


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def measure_variant(variant: Variant, bench: HypercolumnBench, device_name: str, budget_mb: float) -> dict:
    """Build, warm up and time one variant in this process (meant to run in a fresh one: `in_child`)."""
    device = torch.device(device_name)
    torch.manual_seed(bench.seed)
    images, coords, targets = make_inputs(bench, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2**20
    else:
        limit_address_space(budget_mb)
        base = rss_mb()
    row = {"status": "ok"}
    try:
        model = BenchNet(variant, bench).to(device).train()
        row["model_mb"] = parameter_mb(model)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bench.precision == "bf16"):
                out = model(images, coords)  # (B, N, K)
            loss = F.cross_entropy(out.float().flatten(0, 1), targets.flatten())
            loss.backward()

        times = timed_repeats(step, _sync(device), bench.warmup, bench.repeats, bench.max_seconds)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20 - base
        else:
            peak = peak_rss_mb() - base
        row.update(peak_memory_mb=round(peak, 1), batches_per_s=1.0 / median(times),
                   median_ms=round(median(times) * 1e3, 2), repeats=len(times))
    except Exception as err:  # noqa: BLE001 — only running out of memory is a result; the rest re-raise
        if not is_out_of_memory(err):
            raise
        row.update(status=f"does not fit: out of memory ({str(err).splitlines()[0][:160]})",
                   peak_memory_mb=None, batches_per_s=None)
    return row


def run(bench: HypercolumnBench, device_name: str, variants: Sequence[Variant] | None = None,
        on_row: Callable[[dict], None] | None = None) -> dict:
    """Every variant, each in a fresh process; the report as `pixelnet bench hypercolumns` writes it."""
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device_name}: CUDA is not available on this machine")
    if bench.memory_mb:
        budget = bench.memory_mb
    elif device.type == "cuda":
        budget = torch.cuda.mem_get_info(device)[0] / 2**20
    else:
        budget = 0.9 * available_mb()
    rows = []
    for variant in variants or all_variants():
        layers = variant.layers(bench)
        with torch.device("meta"):  # shapes only, no memory
            trunk_channels = VGGTrunk(layers, batch_norm=False, width=bench.width).channels
        row = {"method": variant.method, "head": variant.head, "layers": list(layers),
               "features": sum(trunk_channels[t] for t in layers), "samples": bench.samples * bench.images}
        problem = fit_problem(variant, bench, budget)
        if problem:
            row.update(peak_memory_mb=None, batches_per_s=None, status=problem)
        else:
            started = time.perf_counter()
            try:
                row.update(in_child(measure_variant, variant, bench, device_name, budget))
            except BrokenProcessPool:  # killed from outside: on Linux, the OOM killer
                row.update(peak_memory_mb=None, batches_per_s=None,
                           status="does not fit: the measuring process was killed (out of memory?)")
            row["wall_s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        if on_row:
            on_row(row)
    return {
        "device": describe_device(device),
        "image_size": bench.image_size,
        "images": bench.images,
        "rows": rows,
        "settings": {**asdict(bench), "memory_budget_mb": round(budget)},
        "ratios": ratios(rows),
        "torch": torch.__version__,
    }


def ratios(rows: list[dict]) -> list[dict]:
    """For each head and layer set: how many times less memory and more batches/s sparse gets than each
    dense method (None where the dense one did not fit)."""
    out = []
    sparse = {(r["head"], tuple(r["layers"])): r for r in rows if r["method"] == "pixelnet-sparse" and r["batches_per_s"]}
    for r in rows:
        s = sparse.get((r["head"], tuple(r["layers"])))
        if r["method"] == "pixelnet-sparse" or s is None:
            continue
        fits = r["batches_per_s"] is not None
        out.append({"versus": r["method"], "head": r["head"], "layers": r["layers"],
                    "memory_x": r["peak_memory_mb"] / s["peak_memory_mb"] if fits else None,
                    "speed_x": s["batches_per_s"] / r["batches_per_s"] if fits else None})
    return out


def table(report: dict) -> str:
    """The report as a Markdown table in the paper's layout."""
    head = ("| method | head | layers | features | samples | memory MB | model MB | batches/s | status |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---|")
    lines = [head]
    for r in report["rows"]:
        mem = f"{r['peak_memory_mb']:,.0f}" if r["peak_memory_mb"] is not None else "—"
        bps = f"{r['batches_per_s']:.3g}" if r["batches_per_s"] is not None else "—"
        model = f"{r['model_mb']:,.0f}" if r.get("model_mb") is not None else "—"
        layers = "+".join(t.replace("conv", "") for t in r["layers"])
        lines.append(f"| {r['method']} | {r['head']} | {layers} | {r['features']:,} | {r['samples']:,} | "
                     f"{mem} | {model} | {bps} | {r['status']} |")
    summary = []
    for x in report["ratios"]:
        mem = "—" if x["memory_x"] is None else f"{x['memory_x']:.1f}x"
        speed = "—" if x["speed_x"] is None else f"{x['speed_x']:.1f}x"
        layers = "+".join(t.replace("conv", "") for t in x["layers"])
        summary.append(f"* pixelnet-sparse against {x['versus']} ({x['head']}, {layers}): {mem} less memory, {speed} more batches/s")
    return "\n".join(lines) + ("\n\n" + "\n".join(summary) if summary else "")

"""`pixelnet bench ...`: timings of our code against reference implementations, as commands.

Each command parses its options, calls its benchmark in `pixelnet.bench` (what is built and timed
lives there), prints a table and writes a JSON report with a Markdown page beside it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import friendly

bench_app = typer.Typer(
    help="Benchmarks: time pixelnet against reference implementations; print a table, write bench.json and bench.md.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_SHARED_BSDS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "BSR" / "BSDS500" / "data"
DEFAULT_GROUND_TRUTH = _SHARED_BSDS / "groundTruth" / "test"


@bench_app.command("evaluate-edges")
@friendly("pixelnet bench", errors=(ValueError, FileNotFoundError, RuntimeError))
def evaluate_edges(
    ground_truth: Annotated[Path, typer.Option("--ground-truth", help="Folder of BSDS <id>.mat ground truth (default: the shared BSDS500 test split).")] = DEFAULT_GROUND_TRUTH,
    images: Annotated[Path | None, typer.Option("--images", help="Images to make soft predictions from (default: images/ beside the ground truth).")] = None,
    predictions: Annotated[Path | None, typer.Option("--predictions", help="Existing 8-bit <id>.png edge maps instead of generated ones.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="First N images by id (0 = all).")] = 0,
    reference_limit: Annotated[int | None, typer.Option("--reference-limit", help="Run pyEdgeEval on the first N of them only (default: all; 0 = skip it and time pixelnet alone).")] = None,
    thresholds: Annotated[int, typer.Option("--thresholds", help="Number of thresholds in (0, 1); the official protocol uses 99.")] = 99,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes, the same for both tools.")] = 2,
    out: Annotated[Path, typer.Option("--out", help="Folder for bench.json, bench.md, each tool's result files and generated predictions.")] = Path("reports/bench/evaluate_edges"),
) -> None:
    """Time the BSDS500 boundary benchmark (ODS / OIS / AP) of pixelnet and pyEdgeEval on the same files."""
    from pixelnet.bench.evaluate_edges import EdgeBench, run

    bench = EdgeBench(ground_truth=ground_truth, images=images, predictions=predictions, limit=limit,
                      reference_limit=reference_limit, thresholds=thresholds, workers=workers)
    report, table = run(bench, out, command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    typer.echo(table)
    cmp = report.get("comparison")
    if cmp:
        typer.echo(f"speed-up {cmp['speedup']:.1f}x on {cmp['images']} images; ODS diff {cmp['ods_diff']:+.4f}, "
                   f"OIS diff {cmp['ois_diff']:+.4f}, AP diff {cmp['ap_diff']:+.4f} (AP definitions differ, see bench.md)")
    typer.echo(f"→ {out / 'bench.json'}")


# ----------------------------------------------------------------------------- hypercolumns

def _csv(value: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise ValueError(f"{option}: unknown {bad or 'empty list'}; choose from {', '.join(allowed)}")
    return items


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _command_line() -> str:
    return shlex.join(["pixelnet", *sys.argv[1:]])


def _save_report(out: Path, report: dict, title: str, details: list[str], table_text: str) -> None:
    """The report, stamped with the command and date, as JSON at `out` and a Markdown page beside it."""
    from pixelnet.atomic import atomic_write_text

    report.update(command=_command_line(), date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    page = [f"# {title}", "", f"* command: `{report['command']}`", f"* date: {report['date']}",
            *(f"* {d}" for d in details), "", table_text, ""]
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), "\n".join(page))
    typer.echo(table_text)
    typer.echo(f"→ {out}")


@bench_app.command("hypercolumns")
def hypercolumns(
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda when available).")] = None,
    image_size: Annotated[int, typer.Option("--image-size", help="Square input side in pixels (a multiple of 32); the paper's Table 3 uses 224.")] = 224,
    images: Annotated[int, typer.Option("--images", help="Images per batch (Table 3: 1).")] = 1,
    samples: Annotated[int, typer.Option("--samples", help="Sampled pixels per image (Table 3: 2,000).")] = 2000,
    layers: Annotated[str, typer.Option("--layers", help="Tapped layers, comma-separated; rows 'with fc7' add fc7. Default: Table 3's conv1_2,conv3_3,conv5_3.")] = "conv1_2,conv3_3,conv5_3",
    hidden: Annotated[str, typer.Option("--hidden", help="MLP hidden sizes, comma-separated (the paper: 4096,4096).")] = "4096,4096",
    classes: Annotated[int, typer.Option("--classes", help="Outputs per pixel; the loss is softmax cross-entropy on random labels.")] = 21,
    batch_norm: Annotated[bool, typer.Option("--batch-norm/--no-batch-norm", help="VGG-16-BN instead of the paper's plain VGG-16.")] = False,
    upsample: Annotated[str, typer.Option("--upsample", help="How the dense variants upsample: 'deconv' (FCN's learned deconvolution, as the paper compares) or 'bilinear' (F.interpolate, no weights).")] = "deconv",
    precision: Annotated[str, typer.Option("--precision", help="fp32 (as the paper) or bf16 autocast.")] = "fp32",
    gather: Annotated[str, typer.Option("--gather", help="Sparse gather: 'bag' (fused embedding_bag) or 'grid_sample'.")] = "bag",
    methods: Annotated[str, typer.Option("--methods", help="Subset of pixelnet-sparse,fcn-sampling,fcn-dense.")] = "pixelnet-sparse,fcn-sampling,fcn-dense",
    heads: Annotated[str, typer.Option("--heads", help="Subset of linear,mlp.")] = "linear,mlp",
    fc7: Annotated[str, typer.Option("--fc7", help="Rows without fc7, with it, or both: without | with | both.")] = "both",
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps before timing each variant.")] = 1,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed steps per variant; the median is reported.")] = 5,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Stop timing a variant after this long once 3 steps are in.")] = 120.0,
    memory_mb: Annotated[float, typer.Option("--memory-mb", help="Memory budget per variant in MB; a variant beyond it is reported as not fitting (0: the device's free memory).")] = 0.0,
    out: Annotated[Path | None, typer.Option("--out", help="JSON report (default reports/bench/hypercolumns/<cpu|cuda>.json); a .md table is written beside it.")] = None,
) -> None:
    """Table 3, measured: forward+backward batches/s and peak memory of on-demand sparse hypercolumns
    against FCN's dense upsampling (head on every pixel, or on the sampled pixels only), for linear
    and MLP heads, with and without fc7. Each variant runs in its own process; a dense variant that
    cannot fit is reported as such."""
    from pixelnet.bench.hypercolumns import HEADS, METHODS, HypercolumnBench, Variant, run, table
    from pixelnet.model.trunk import LAYERS

    try:
        bench = HypercolumnBench(
            image_size=image_size, images=images, samples=samples,
            layers=_csv(layers, LAYERS[:-1], "--layers"),
            hidden=tuple(int(h) for h in hidden.split(",") if h.strip()),
            classes=classes, batch_norm=batch_norm, upsample=upsample, precision=precision, gather=gather,
            warmup=warmup, repeats=repeats, max_seconds=max_seconds, memory_mb=memory_mb,
        )
        if fc7 not in ("without", "with", "both"):
            raise ValueError(f"--fc7 must be without, with or both, got {fc7!r}")
        chosen_methods, chosen_heads = _csv(methods, METHODS, "--methods"), _csv(heads, HEADS, "--heads")
        fc7_flags = {"without": (False,), "with": (True,), "both": (False, True)}[fc7]
        variants = [Variant(m, h, f) for f in fc7_flags for m in reversed(METHODS) for h in HEADS
                    if m in chosen_methods and h in chosen_heads]
        device = device or _default_device()
        out = out or Path("reports/bench/hypercolumns") / f"{device.split(':')[0]}.json"

        def show(row: dict) -> None:
            took = f" in {row['wall_s']:.0f} s" if "wall_s" in row else ""
            value = (f"{row['peak_memory_mb']:,.0f} MB, {row['batches_per_s']:.3g} batches/s" if row["batches_per_s"]
                     else row["status"])
            typer.echo(f"  {row['method']:<16} {row['head']:<6} {'+'.join(row['layers'])}: {value}{took}", err=True)

        report = run(bench, device, variants, on_row=show)
    except (ValueError, RuntimeError) as err:
        typer.echo(f"pixelnet bench hypercolumns: error: {err}", err=True)
        raise typer.Exit(2) from None
    _save_report(out, report, f"Sparse vs dense hypercolumns on {report['device']}",
                 [f"torch {report['torch']}, {bench.precision}, {bench.image_size}² input, {bench.images} image(s) x "
                  f"{bench.samples} samples, dense upsampling: {bench.upsample}"], table(report))


# ----------------------------------------------------------------------------- sampling

@bench_app.command("sampling")
def sampling(
    classes: Annotated[str, typer.Option("--classes", help="Class counts for the stratified rows, comma-separated.")] = "21,59,150",
    pixels: Annotated[int, typer.Option("--pixels", help="Pixels drawn per image (the paper: 2,000).")] = 2000,
    draws: Annotated[int, typer.Option("--draws", help="Draws per call (the sample stage makes sampling.draws of them).")] = 1,
    repeats: Annotated[int, typer.Option("--repeats", help="Timing repeats; the median is reported.")] = 5,
    out: Annotated[Path, typer.Option("--out", help="JSON report; a .md table is written beside it.")] = Path("reports/bench/sampling.json"),
) -> None:
    """Numba sampling kernels against their NumPy twins on 481x321 maps: microseconds per image for
    uniform, edge-biased and class-stratified sampling."""
    from pixelnet.bench.sampling import SamplingBench, run, table

    try:
        bench = SamplingBench(classes=tuple(int(c) for c in classes.split(",") if c.strip()), pixels=pixels,
                              draws=draws, repeats=repeats)
        report = run(bench)
    except ValueError as err:
        typer.echo(f"pixelnet bench sampling: error: {err}", err=True)
        raise typer.Exit(2) from None
    report["machine"] = {"cpu_count": os.cpu_count(), "processor": _cpu_name()}
    _save_report(out, report, "Sampling kernels: Numba against NumPy",
                 [f"machine: {report['machine']['processor']}, one thread",
                  f"{report['pixels']} pixels x {report['draws']} draw(s) per call on {report['image'][1]}x{report['image'][0]} maps"],
                 table(report))


def _cpu_name() -> str:
    import torch

    from pixelnet.bench.measure import describe_device

    return describe_device(torch.device("cpu")).removeprefix("cpu: ").split(" (")[0]


# ----------------------------------------------------------------------------- train

@bench_app.command("train")
def train_speed(
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda when available).")] = None,
    inputs: Annotated[str, typer.Option("--inputs", help="Batch sources, comma-separated: synthetic (random batches in memory: the model's own speed) and/or shards (the real loader over --shards).")] = "synthetic,shards",
    shards: Annotated[Path | None, typer.Option("--shards", help="Shard folder whose train split feeds the 'shards' input, e.g. data/shards/bsds500.")] = None,
    image_size: Annotated[int, typer.Option("--image-size", help="Training crop side (the paper: 224).")] = 224,
    images: Annotated[int, typer.Option("--images", help="Images per batch (the paper: 5).")] = 5,
    samples: Annotated[int, typer.Option("--samples", help="Sampled pixels per image (the paper: 2,000).")] = 2000,
    layers: Annotated[str, typer.Option("--layers", help="Tapped layers, comma-separated (the paper: conv1_2..conv5_3 and fc7).")] = "conv1_2,conv2_2,conv3_3,conv4_3,conv5_3,fc7",
    hidden: Annotated[str, typer.Option("--hidden", help="MLP hidden sizes (the paper: 4096,4096).")] = "4096,4096",
    width: Annotated[float, typer.Option("--width", help="Channel multiplier; 1.0 is VGG-16.")] = 1.0,
    batch_norm: Annotated[bool, typer.Option("--batch-norm/--no-batch-norm", help="VGG-16-BN (what from-scratch training uses) instead of plain VGG-16.")] = False,
    precision: Annotated[str, typer.Option("--precision", help="bf16 (autocast) or fp32.")] = "bf16",
    memory_format: Annotated[str, typer.Option("--memory-format", help="channels_last or contiguous activations.")] = "channels_last",
    compile_: Annotated[bool, typer.Option("--compile/--no-compile", help="torch.compile the model.")] = False,
    gather: Annotated[str, typer.Option("--gather", help="Hypercolumn gather: bag or grid_sample.")] = "bag",
    project_first: Annotated[bool, typer.Option("--project-first/--no-project-first", help="Run the deep taps through the head's first layer before sampling (exact; about a third less arithmetic at the paper's settings).")] = True,
    steps: Annotated[int, typer.Option("--steps", help="Timed training steps.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps first.")] = 10,
    workers: Annotated[int, typer.Option("--workers", help="Loader worker processes for the shards input.")] = 8,
    prefetch: Annotated[int, typer.Option("--prefetch", help="Batches each loader worker keeps ready.")] = 4,
    peak_tflops: Annotated[float, typer.Option("--peak-tflops", help="The device's bf16 peak in TFLOP/s for the roofline (0: measure it with a large matmul).")] = 0.0,
    out: Annotated[Path | None, typer.Option("--out", help="JSON report (default reports/bench/train/<cpu|cuda>.json); a .md table is written beside it.")] = None,
) -> None:
    """Training speed of the one training loop at the paper's full configuration: images/s, batches/s,
    share of time waiting for data, and share of the bf16 roofline, on synthetic batches and on real shards."""
    from pixelnet.bench.train import INPUTS, TrainBench, describe, run, table
    from pixelnet.model.trunk import LAYERS

    try:
        chosen = _csv(inputs, INPUTS, "--inputs")
        if "shards" in chosen and shards is None:
            raise ValueError("--inputs shards needs --shards DIR (e.g. data/shards/bsds500), or use --inputs synthetic")
        bench = TrainBench(
            image_size=image_size, images=images, samples=samples, layers=_csv(layers, LAYERS, "--layers"),
            hidden=tuple(int(h) for h in hidden.split(",") if h.strip()), width=width, batch_norm=batch_norm,
            gather=gather, project_first=project_first, precision=precision, memory_format=memory_format, compile=compile_, steps=steps,
            warmup=warmup, workers=workers, prefetch=prefetch, shards=str(shards) if shards else None,
            peak_tflops=peak_tflops,
        )
        device = device or _default_device()
        out = out or Path("reports/bench/train") / f"{device.split(':')[0]}.json"
        report = run(bench, device, chosen)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        typer.echo(f"pixelnet bench train: error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(describe(report))
    _save_report(out, report, f"Training speed on {report['device']}", [f"torch {report['torch']}; {describe(report)}"],
                 table(report))


# ----------------------------------------------------------------------------- predict

@bench_app.command("predict")
def predict_speed(
    model: Annotated[str, typer.Option("--model", help="A shipped model's name or a model.pt path.")] = "bsds500-edges",
    image: Annotated[Path | None, typer.Option("--image", help="The photo to time (e.g. a 481x321 BSDS500 test image); default: a generated 481x321 picture.")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed calls per setting (the median is reported).")] = 10,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls first.")] = 2,
    large: Annotated[str, typer.Option("--large", help="H,W of a large generated photo predicted as `pixelnet predict` does (tiled), with its peak memory; 0,0 skips it.")] = "4000,6000",
    startup: Annotated[bool, typer.Option("--startup/--no-startup", help="Also time fresh `pixelnet` processes: --help, an input error, one image.")] = True,
    out: Annotated[Path | None, typer.Option("--out", help="JSON report (default reports/bench/predict/<cpu model>.json); a .md table beside it.")] = None,
) -> None:
    """Prediction speed of a shipped model on this CPU: seconds per image single- and multi-scale, fp32
    and bf16, the sparse path of before, OpenCV Canny and kornia's DexiNed on the same image, a 24 MP
    photo's time and peak memory, and start-up."""
    from pixelnet.bench.predict import PredictBench, default_out, describe, run, table

    try:
        sides = tuple(int(v) for v in large.split(","))
        if len(sides) != 2:
            raise ValueError
    except ValueError:
        typer.echo(f"pixelnet bench predict: error: --large: expected H,W (e.g. 4000,6000), got {large!r}", err=True)
        raise typer.Exit(2) from None
    try:
        if image is not None and not image.is_file():
            raise FileNotFoundError(f"--image {image}: no such file")
        bench = PredictBench(model=model, image=str(image) if image else None, repeats=repeats, warmup=warmup,
                             large=sides, startup=startup)
        out = out or default_out(Path("reports/bench/predict"))
        report = run(bench)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        typer.echo(f"pixelnet bench predict: error: {err}", err=True)
        raise typer.Exit(2) from None
    _save_report(out, report, f"Prediction speed on {report['machine']['cpu']}", [describe(report)], table(report))

"""The `pixelnet` command: one Typer app holding the DVC stages and the tools around them.

Stages (download, shard, sample, train, evaluate; ship and card in recipes/) are what `dvc repro`
runs, with the paths dvc.yaml names; run one by hand the same way, e.g.
``uv run pixelnet sample edges --shards data/shards/synthetic --out data/samples/edges``.
Tools (predict, export, evaluate-*, bench, ablations) are for people: no dvc.yaml runs them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import friendly

# The help's panels: what each command is. Stages are run by dvc.yaml with the paths it names and
# read params.yaml; tools are run by people on their own files.
STAGES = "Pipeline stages (dvc repro runs these; knobs in params.yaml)"
RECIPE_STAGES = "Shipping a model (stages of recipes/<model>/dvc.yaml)"
USE = "Use a model on your images"
SCORE = "Score any model's outputs (the protocols evaluate uses)"
MEASURE = "Benchmarks and the paper's ablations"

app = typer.Typer(
    help=(
        "PixelNet: sparse hypercolumns + MLP head for edges, surface normals and semantic segmentation. "
        "Edges of your photo: pixelnet predict --model bsds500-edges photo.jpg --out edges/. "
        "The pipeline stages (download → shard → sample → train → evaluate) are what dvc repro runs, "
        "every knob in params.yaml; predict, export, evaluate-*, bench and ablations are tools you run yourself."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    """--version: the installed distribution's version (pyproject.toml's), read without importing torch."""
    if value:
        from importlib.metadata import version

        typer.echo(f"pixelnet {version('pixelnet')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the installed pixelnet version and exit.")] = False,
) -> None:
    """Options before any command: --version."""


ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml holding every knob (see README).")]
TaskArg = Annotated[str, typer.Argument(help="Task: edges, normals or segmentation.")]
DatasetArg = Annotated[str, typer.Argument(help="Dataset name, e.g. synthetic (the embedded default).")]
ShardsOpt = Annotated[Path, typer.Option("--shards", help="Shard folder of the task's dataset (data/shards/<dataset>).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


_friendly = friendly("pixelnet")  # expected failures: one line on stderr, exit code 2 (pipeline/errors.py)


def _scales(text: str) -> tuple[float, ...]:
    """--scales "0.5,1,1.5" -> (0.5, 1.0, 1.5); every scale positive and finite."""
    try:
        scale_list = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"--scales: expected comma-separated numbers, got {text!r}") from None
    if not all(0 < s < float("inf") for s in scale_list):  # also rejects nan
        raise ValueError(f"--scales: every scale must be positive, got {text!r}")
    return scale_list


def _precision(text: str) -> str:
    """--precision fp32 | bf16, checked before torch is imported."""
    if text not in ("fp32", "bf16"):
        raise ValueError(f"--precision must be fp32 or bf16, got {text!r}")
    return text


def _params(path: Path):
    from pipeline.params import load_params

    return load_params(path)


def _check_task(task: str, params) -> None:
    from pipeline.params import TASK_NAMES

    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASK_NAMES)}")
    if task not in params.tasks:
        raise ValueError(f"tasks.{task}: not configured in params.yaml")


@app.command(rich_help_panel=STAGES, short_help="Bring a dataset in as published (checksum-verified), or render the synthetic scenes.")
@_friendly
def download(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the dataset as published (data/raw/<dataset>).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Bring a dataset in as published (checksum-verified), or render the synthetic scenes (no network)."""
    from pipeline import stages

    p = _params(params)
    if dataset not in p.datasets:
        raise ValueError(f"datasets: {dataset!r} is not listed in {params} (have {list(p.datasets)})")
    info = stages.download(dataset, p, out)
    typer.echo(f"{dataset}: {info.get('counts')} → {out}")


@app.command(rich_help_panel=STAGES, short_help="Pack a dataset into WebDataset tar shards with a manifest.")
@_friendly
def shard(
    dataset: DatasetArg,
    raw: Annotated[Path, typer.Option("--raw", help="The download stage's folder (data/raw/<dataset>).")],
    out: Annotated[Path, typer.Option("--out", help="Shard folder to write (data/shards/<dataset>).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Pack a dataset into WebDataset tar shards with a manifest (counts, sizes, class histogram, SHA-256)."""
    from pipeline import stages

    p = _params(params)
    manifest = stages.shard(dataset, p, raw, out)
    counts = {s: v["count"] for s, v in manifest["splits"].items()}
    typer.echo(f"{dataset}: {counts} samples in {sum(len(v['shards']) for v in manifest['splits'].values())} shards → {out}")


@app.command(rich_help_panel=STAGES, short_help="Plan training: each image's augmentation and the N pixels it trains on.")
@_friendly
def sample(
    task: TaskArg,
    shards: ShardsOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for plan.npz and summary.json (data/samples/<task>).")],
    report: Annotated[Path | None, typer.Option("--report", help="Also write the summary here (reports/<task>/sampling.json, a DVC metric).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    quiet: QuietOpt = False,
) -> None:
    """Plan training: for every training image and draw, the augmentation (rescale, rotation, flip, crop
    window; sampling.augment, tasks.<task>.augment) and N pixels drawn by the task's strategy (uniform,
    stratified, edge_biased; Numba) among the pixels inside that window. Prints the summary: rows
    inside the window, padded rows, epochs the draws cover, plan size."""
    from pipeline import stages

    p = _params(params)
    _check_task(task, p)
    summary = stages.sample(task, p, shards, out, progress=not quiet)
    if report is not None:
        stages.write_json(report, summary)
    typer.echo(json.dumps(summary, indent=2))


@app.command(rich_help_panel=STAGES, short_help="Train PixelNet on one task from the sampling plan.")
@_friendly
def train(
    task: TaskArg,
    shards: ShardsOpt,
    samples: Annotated[Path, typer.Option("--samples", help="The sample stage's folder for this task.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for model.pt (data/models/<task>).")],
    log: Annotated[Path, typer.Option("--log", "--loss-log", help="CSV of step, loss, lr for `dvc plots` (a PNG is written beside it). Under torchrun spell it --loss-log: torchrun takes --log for an abbreviation of its own options.")],
    params: ParamsOpt = Path("params.yaml"),
    quiet: QuietOpt = False,
) -> None:
    """Train PixelNet on one task with SGD (momentum, weight decay, step schedule) from the sampled pixels."""
    from pipeline import stages

    p = _params(params)
    _check_task(task, p)
    summary = stages.train_stage(task, p, shards, samples, out, log, progress=not quiet)
    typer.echo(json.dumps(summary))


@app.command(rich_help_panel=STAGES, short_help="Score a trained model on the test split against a trivial baseline; pictures.")
@_friendly
def evaluate(
    task: TaskArg,
    shards: ShardsOpt,
    model: Annotated[Path, typer.Option("--model", help="A model.pt written by the train stage.")],
    out: Annotated[Path, typer.Option("--out", help="Report folder: metrics.json, predictions.png, plots (reports/<task>).")],
    scales: Annotated[str | None, typer.Option("--scales", help="Comma-separated test scales whose predictions are averaged (e.g. 0.5,1,1.5, the edge literature's multi-scale); default: evaluate.scales.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 or bf16 (autocast); default: evaluate.precision.")] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Also average the prediction of the mirrored image (or not); default: evaluate.flip.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    quiet: QuietOpt = False,
) -> None:
    """Dense inference on the test split; the task's metrics for the model and a trivial baseline, and pictures."""
    from pipeline import stages

    p = _params(params)
    _check_task(task, p)
    if scales is not None:
        p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, scales=_scales(scales)))
    if precision is not None:
        p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, precision=_precision(precision)))
    if flip is not None:
        p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, flip=flip))
    metrics = stages.evaluate(task, p, shards, model, out, progress=not quiet)
    typer.echo(json.dumps(metrics))


@app.command("evaluate-edges", rich_help_panel=SCORE, short_help="BSDS benchmark (ODS / OIS / AP) of any edge maps, e.g. predict's output.")
@_friendly
def evaluate_edges(
    predictions: Annotated[Path, typer.Option("--predictions", help="Folder of edge maps, one per ground-truth <id>: <id>.png (8/16-bit), <id>.npy (float in [0, 1]), <id>.mat (official ucm2), or <id>_edges.png / <id>_edges.npy as `pixelnet predict` writes them.")],
    ground_truth: Annotated[Path, typer.Option("--ground-truth", help="Folder of BSDS <id>.mat ground truth (e.g. BSDS500/data/groundTruth/test).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for eval_bdry*.txt (official format), metrics.json and pr_curve.png.")],
    thresholds: Annotated[int, typer.Option("--thresholds", help="Number of thresholds in (0, 1); the official protocol uses 99.")] = 99,
    nms: Annotated[bool, typer.Option("--nms/--no-nms", help="Thin each soft map first with the edges toolbox's non-maximum suppression, then thinning: the protocol of the evaluate stage (evaluate.nms), the model card, HED and RCF. --no-nms scores the maps as they are (already thin maps, official ucm2).")] = True,
    thin: Annotated[bool, typer.Option("--thin/--no-thin", help="Morphologically thin each binarised map, as the official benchmark does.")] = True,
    max_dist: Annotated[float, typer.Option("--max-dist", help="Matching tolerance as a fraction of the image diagonal.")] = 0.0075,
    workers: Annotated[int, typer.Option("--workers", help="Processes evaluating images in parallel.")] = 1,
    published: Annotated[bool, typer.Option("--published/--no-published", help="Draw the published BSDS500 test curves of Sobel, Canny, gPb-UCM, SE, OEF, HED and RCF beside yours in pr_curve.png (meaningful when you score the 200 test images).")] = False,
    subset: Annotated[bool, typer.Option("--subset", help="Score only the ground-truth images that have a prediction (and say how many); by default every one must have one.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """BSDS boundary benchmark (ODS / OIS / AP) of any edge detector's maps against BSDS .mat ground truth,
    e.g. of `pixelnet predict`'s output folder as it is."""
    from pixelnet.metrics.edges import BoundaryConfig
    from pixelnet.metrics.edges_io import evaluate_directory, ground_truth_files

    config = BoundaryConfig(thresholds=thresholds, max_dist=max_dist, thin=thin, nms=nms)
    res = evaluate_directory(predictions, ground_truth, out, config, workers=workers, progress=not quiet,
                             published=published, subset=subset)
    typer.echo(
        f"ODS F={res.ods['f']:.4f} (R={res.ods['recall']:.4f} P={res.ods['precision']:.4f} t={res.ods['threshold']:.4f})  "
        f"OIS F={res.ois['f']:.4f}  AP={res.ap:.4f}  ({len(res.per_image)} images) → {out}"
    )
    if subset:
        typer.echo(f"scored {len(res.per_image)} of {len(ground_truth_files(ground_truth))} ground-truth images (--subset)")


@app.command("evaluate-normals", rich_help_panel=SCORE, short_help="Angular error (NYUDv2 protocol) of any predicted normals.")
@_friendly
def evaluate_normals(
    predictions: Annotated[Path, typer.Option("--predictions", help="Folder of <stem>.npy predicted normals, (H, W, 3) float; need not be unit length.")],
    ground_truth: Annotated[Path, typer.Option("--ground-truth", help="Folder of <stem>.npy ground-truth normals, (H, W, 3); non-finite or all-zero vectors are invalid pixels.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.json (mean, median, rmse, within_11_25/22_5/30) and error_cdf.png.")],
    quiet: QuietOpt = False,
) -> None:
    """Surface-normal angular error of any model's predictions (NYUDv2 protocol): both vectors
    normalised, the dot product clamped, errors pooled over every valid pixel of all images."""
    from pixelnet.metrics.dense_io import evaluate_normals_directory

    m = evaluate_normals_directory(predictions, ground_truth, out, progress=not quiet)
    typer.echo(f"mean {m['mean']:.2f}°  median {m['median']:.2f}°  rmse {m['rmse']:.2f}°  "
               f"<11.25° {m['within_11_25']:.1f}%  <22.5° {m['within_22_5']:.1f}%  <30° {m['within_30']:.1f}%  "
               f"({m['images']} images, {m['valid_pixels']} valid pixels) → {out}")


@app.command("evaluate-segmentation", rich_help_panel=SCORE, short_help="mIoU and pixel accuracy of any predicted label maps.")
@_friendly
def evaluate_segmentation(
    predictions: Annotated[Path, typer.Option("--predictions", help="Folder of <stem>.png predicted class ids (one channel: palette or grey).")],
    ground_truth: Annotated[Path, typer.Option("--ground-truth", help="Folder of <stem>.png ground-truth class ids; 255 is ignored (VOC's palette PNGs work as they are).")],
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (ids 0..N-1), e.g. 21 for VOC, 59 for PASCAL-Context.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.json (miou, pixel_accuracy, mean_class_accuracy), confusion.npy and confusion.png.")],
    names: Annotated[Path | None, typer.Option("--names", help="Optional text file of class names, one per line, for the confusion plot.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Semantic segmentation scores of any model's label maps from one confusion matrix over all
    images: mIoU over the classes present in the ground truth or the predictions, pixel accuracy,
    mean class accuracy."""
    from pixelnet.metrics.dense_io import evaluate_segmentation_directory

    class_names = None
    if names is not None:
        if not names.is_file():
            raise FileNotFoundError(f"--names {names}: no such file")
        class_names = [line.strip() for line in names.read_text().splitlines() if line.strip()]
    m = evaluate_segmentation_directory(predictions, ground_truth, classes, out, class_names, progress=not quiet)
    typer.echo(f"mIoU {m['miou']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f}  mean class accuracy "
               f"{m['mean_class_accuracy']:.4f}  ({m['images']} images) → {out}")


@app.command(rich_help_panel=USE, short_help="Edges, normals or segmentation of your own images with a shipped or trained model.")
@_friendly
def predict(
    images: Annotated[list[Path], typer.Argument(help="Images, or folders of them (.jpg .jpeg .png .bmp .tif .tiff .webp .gif, any case; hidden files skipped), in any format PIL reads: JPEG, PNG, grey, RGBA with alpha dropped, 16-bit scaled to 8, float TIFF in [0, 1] or [0, 255], EXIF-rotated JPEG predicted as displayed; not animations or multi-page files. All are checked before torch starts and before anything is written: each must decode and be at least the model's deepest stride (e.g. 16 px) on each side at every scale. Outputs are named by the stem, which must differ between inputs.")],
    model: Annotated[str, typer.Option("--model", help="A shipped model's name (bsds500-edges: edges trained on BSDS500, see pixelnet/zoo/) or the path of a model.pt written by the train stage; its task (edges, normals or segmentation) decides the outputs.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the outputs, created once every input has passed: <stem>_edges.png (white edges on black); <stem>_normals.png and .npy; <stem>_labels.png (class ids), _segmentation.png (colours) and _legend.png. Not read as input by --recursive.")],
    scales: Annotated[str, typer.Option("--scales", help="Comma-separated test scales whose predictions are averaged, e.g. 0.5,1,1.5.")] = "1.0",
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Also average the prediction of the mirrored image.")] = False,
    tile: Annotated[int, typer.Option("--tile", help="Tile side in pixels: an image with a longer side is predicted in overlapping tiles blended without seams, bounding memory; 0 never tiles.")] = 1024,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")] = "auto",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also read the images in a folder's subfolders (stems must still differ across all of them).")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip an image whose output files all exist already (resume an interrupted run); the summary counts them.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="png (default): the pictures above. npy: float32 arrays instead: <stem>_edges.npy (H, W) probabilities; <stem>_normals.npy alone. Segmentation models: png only (the label PNG is lossless).")] = "png",
    nms: Annotated[bool, typer.Option("--nms", help="Edges models: thin the map with the edges toolbox's non-maximum suppression, exactly as the benchmark runs it: one-pixel-wide edges keeping their (smoothed) probabilities, zero elsewhere.")] = False,
    thin: Annotated[bool, typer.Option("--thin", help="Edges models: after --nms (implied), keep only the edges >= --threshold, morphologically thinned as the benchmark thins each binarised map; they keep their probabilities.")] = False,
    threshold: Annotated[float | None, typer.Option("--threshold", help="With --thin: the probability at which a pixel is an edge (default 0.5).")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32, or bf16 autocast: faster where the CPU multiplies bf16 natively (0.31 s against 0.39 s per 481x321 image on a 2-core AMD EPYC: reports/bench/predict/); for bsds500-edges the same ODS/OIS/AP on the 200 BSDS500 test images (.767/.779/.804), each image's best F within .003.")] = "fp32",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars (the one line per image stays).")] = False,
) -> None:
    """Predict edges, surface normals or segmentation for your own images with a shipped or trained
    model, e.g. `pixelnet predict --model bsds500-edges photo.jpg --out edges/`. Prints one line per
    image with the files written, then a summary; each file appears complete or not at all."""
    # Inputs are checked before torch is imported (seconds): a bad file is reported at once.
    from pixelnet.inputs import OutputConfig, check_request
    from pixelnet.zoo import resolve

    if threshold is not None and not thin:
        raise ValueError("--threshold applies to --thin only")
    precision = _precision(precision)
    outputs = OutputConfig(format=fmt, nms=nms or thin, thin=thin, threshold=0.5 if threshold is None else threshold)
    checkpoint = resolve(model)
    checked = check_request(checkpoint, images, _scales(scales), outputs, out, recursive)

    from pixelnet.infer import InferConfig
    from pixelnet.predict import TileConfig, predict_files

    skipped: list[Path] = []
    written = predict_files(checkpoint, checked, out, InferConfig(scales=checked.scales, flip=flip, precision=precision), TileConfig(size=tile),
                            device, progress=not quiet, outputs=outputs, skip_existing=skip_existing,
                            on_image=lambda image, paths: typer.echo(f"{image} → {', '.join(map(str, paths))}"),
                            on_skip=lambda image, paths: skipped.append(image))
    noun = "image" if len(written) == 1 else "images"
    typer.echo(f"{len(written)} {noun} predicted" + (f", {len(skipped)} skipped (outputs exist)" if skip_existing else "")
               + f" → {out}")


@app.command(rich_help_panel=USE, short_help="Export a model as one ONNX or TorchScript graph.")
@_friendly
def export(
    out: Annotated[Path, typer.Argument(help="The file to write (e.g. edges.onnx); written under a temporary name, then renamed. Not a folder.")],
    model: Annotated[str, typer.Option("--model", help="A shipped model's name (e.g. bsds500-edges) or the path of a model.pt written by the train stage (any task).")],
    fmt: Annotated[str, typer.Option("--format", help="onnx (onnxruntime, TensorRT...) or torchscript (torch.jit.load, LibTorch).")] = "onnx",
) -> None:
    """Export a model as one graph: (N, 3, H, W) float32 RGB in 0-255 -> the task's activated map
    (N, K, H, W) at a single scale (edges: sigmoid probabilities), H and W dynamic, e.g.
    `pixelnet export --model bsds500-edges --format onnx edges.onnx`. Prints what was written."""
    from pixelnet.inputs import check_export_target
    from pixelnet.zoo import resolve

    check_export_target(out, fmt)
    checkpoint = resolve(model)

    from pixelnet.export import export as export_model
    from pixelnet.predict import load_model

    net, task, _ = load_model(checkpoint, "cpu")
    typer.echo(json.dumps(export_model(net, task, out, fmt)))


@app.command(rich_help_panel=RECIPE_STAGES, short_help="Ship trained weights into pixelnet/zoo/ (float16, no optimizer state).")
@_friendly
def ship(
    checkpoint: Annotated[Path, typer.Argument(help="A model.pt written by the train stage.")],
    out: Annotated[Path, typer.Option("--out", help="Where the shipped weights go: pixelnet/zoo/<name>/model.pt makes them `--model <name>`.")],
) -> None:
    """Ship trained weights: the model, its config, task and training summary (no optimizer or RNG
    state), floating tensors as float16, and the machine they were shipped from."""
    from pixelnet.zoo import ship as ship_weights

    typer.echo(json.dumps(ship_weights(checkpoint, out)))


@app.command(rich_help_panel=RECIPE_STAGES, short_help="Render a shipped model's card from the recipe's outputs.")
@_friendly
def card(
    name: Annotated[str, typer.Argument(help="The shipped model's name (its folder under pixelnet/zoo/).")],
    single: Annotated[Path, typer.Option("--single", help="The single-scale evaluate report folder (metrics.json, per_image.json, pictures).")],
    multi: Annotated[Path, typer.Option("--multi", help="The multi-scale evaluate report folder.")],
    dataset: Annotated[Path, typer.Option("--dataset", help="The download stage's dataset.json (the data's source and checksum).")],
    notes: Annotated[Path, typer.Option("--notes", help="Markdown appended to the card: the recipe experiments and what was left.")],
    command: Annotated[str, typer.Option("--command", help="The one command that reproduces the model, quoted in the card.")],
    sampling: Annotated[Path, typer.Option("--sampling", help="The sample stage's sampling.json: the positive share as drawn.")],
    seeds: Annotated[list[Path], typer.Option("--seeds", help="A seed run's report folder (metrics.json) on val; two or more give the expected spread.")],
    bench_edges: Annotated[Path, typer.Option("--bench-edges", help="`pixelnet bench evaluate-edges`'s folder: the benchmark against pyEdgeEval.")] = Path("reports/bench/evaluate_edges"),
    fixture: Annotated[Path, typer.Option("--fixture", help="The official benchmark's test case (png/, groundTruth/, test_2/), scored again for the card.")] = Path("../shared/fixtures/bsds500-bench"),
    bench_predict: Annotated[Path, typer.Option("--bench-predict", help="`pixelnet bench predict`'s JSON report of this model: the speed in the speed-quality plot.")] = Path("reports/bench/predict/amd-epyc.json"),
    earlier: Annotated[list[str] | None, typer.Option("--earlier", help="NAME=FOLDER: a superseded shipped model and its single-scale report folder, drawn in the speed-quality plot.")] = None,
    plain: Annotated[Path | None, typer.Option("--plain", help="The single-scale report without flip (needed when evaluate.flip is true: the published rows' protocol).")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Render a shipped model's card (pixelnet/zoo/<name>/README.md) from the recipe's outputs and the
    measurements it quotes: the drawn positive share, the seed spread, the benchmark's agreement with
    the official test case and pyEdgeEval, and the speed-quality plot."""
    from pipeline.card import Evidence, render
    from pixelnet.zoo import ZOO, WEIGHTS

    pairs = []
    for item in earlier or []:
        n, sep, folder_ = item.partition("=")
        if not sep or not n or not folder_:
            raise ValueError(f"--earlier {item!r}: expected NAME=FOLDER (e.g. bsds500-edges-v1=reports/bsds500-edges-v1/test)")
        pairs.append((n, Path(folder_)))
    evidence = Evidence(sampling=sampling, seeds=list(seeds), bench_edges=bench_edges, fixture=fixture,
                        bench_predict=bench_predict, earlier=pairs, plain=plain)
    folder = ZOO / name
    render(name, folder / WEIGHTS, single, multi, dataset, _params(params), notes, command, evidence, folder / "README.md")
    typer.echo(f"{folder / 'README.md'}")


from pipeline.bench import bench_app  # noqa: E402  (a sub-app: `pixelnet bench ...`)

app.add_typer(bench_app, name="bench", rich_help_panel=MEASURE,
              short_help="Time pixelnet against reference implementations; write bench.json and bench.md.")
from pipeline.ablations import ablations_app  # noqa: E402  (a sub-app: `pixelnet ablations ...`)
app.add_typer(ablations_app, name="ablations", rich_help_panel=MEASURE,
              short_help="The paper's ablation tables as DVC experiments: queue, collect, render.")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

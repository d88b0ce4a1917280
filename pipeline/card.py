"""A shipped model's card, rendered from the files its recipe wrote (nothing in it is typed by hand
except the recipe notes it includes): the weights' payload (config, training summary, machine), the
evaluate stages' metrics.json and per_image.json, the dataset's dataset.json and the recipe's params
(read through `pipeline.params`, as every stage reads them).

The card's pictures (PR curve, predictions) are copied next to it so the folder stands alone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.params import Params
from pixelnet.atomic import atomic_write_text
from pixelnet.metrics.published import load_published
from pixelnet.model.pixelnet import load_checkpoint

SHOWN_IMAGES = 3  # per-image best F quoted for the first images of the test split (tests check them)
TASK, DATASET = "edges", "bsds500"  # the card describes an edge model trained on BSDS500
PICTURES = ("pr_curve.png", "predictions.png")


def _read_json(path: Path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing (run the recipe's evaluate stages first)")
    return json.loads(Path(path).read_text())


def _fmt(x: float) -> str:
    """A score as the card prints it: .767, or 1.000."""
    return f"{x:.3f}".lstrip("0") if 0 <= x < 1 else f"{x:.3f}"


def _num(x: float) -> str:
    """A params number as params.yaml writes it: 15 for 15.0, 0.0005 as it is."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def per_image_table(per_image: dict, n: int = SHOWN_IMAGES) -> list[tuple[str, float, float]]:
    """(image, best F, its threshold) of the first n images of an evaluate stage's per_image.json."""
    rows = per_image["images"][:n]
    return [(r["image"], r["f"], r["threshold"]) for r in rows]


def parse_card_per_image(text: str) -> dict[str, float]:
    """The per-image best F a card quotes (the rows of its per-image table): {image: F}."""
    out = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("| image | best F"):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0].startswith("---"):
                continue
            out[cells[0].strip("`")] = float(cells[1])
    return out


@dataclass(frozen=True)
class CardInputs:
    """Everything a card quotes, read once from the recipe's outputs."""

    name: str
    weights: Path
    state: dict[str, Any]        # the shipped checkpoint's payload
    single: dict[str, Any]       # metrics.json of the single-scale evaluate stage
    multi: dict[str, Any]        # metrics.json of the multi-scale one
    images: list[tuple[str, float, float]]
    data: dict[str, Any]         # the download stage's dataset.json
    params: Params
    notes: str
    command: str

    @property
    def summary(self) -> dict[str, Any]:
        return self.state.get("summary") or {}

    @property
    def machine(self) -> dict[str, Any]:
        return self.state.get("machine") or {}


def read_inputs(name: str, weights: Path, single: Path, multi: Path, dataset: Path, params: Params, notes: Path,
                command: str) -> CardInputs:
    """The card's inputs; a missing evaluate output is named with the stage to run."""
    if TASK not in params.tasks:
        raise ValueError(f"tasks.{TASK}: not configured in the recipe's params (the card describes an edge model)")
    return CardInputs(
        name=name, weights=Path(weights), state=load_checkpoint(weights),
        single=_read_json(Path(single) / "metrics.json"), multi=_read_json(Path(multi) / "metrics.json"),
        images=per_image_table(_read_json(Path(single) / "per_image.json")), data=_read_json(dataset),
        params=params, notes=Path(notes).read_text(), command=command,
    )


def _usage(c: CardInputs) -> list[str]:
    return [
        f"# `{c.name}`: PixelNet edges, trained from scratch on BSDS500 on a 2-core CPU",
        "",
        "```bash",
        f"uv run pixelnet predict --model {c.name} photo.jpg --out edges/         # edges/photo_edges.png: probabilities",
        f"uv run pixelnet predict --model {c.name} photo.jpg --out thin/ --nms   # one-pixel-wide edges (the benchmark's NMS)",
        "```",
        "",
    ]


def _what_it_is(c: CardInputs) -> list[str]:
    cfg = c.state["model_config"]
    s, augment = c.params.sampling[TASK], c.params.augment[TASK]
    params_count = sum(v.numel() for v in c.state["model"].values() if v.is_floating_point())
    return [
        "## What it is",
        f"PixelNet (Bansal et al. 2017): a VGG-16-layout trunk at width {cfg['width']} with batch norm, "
        f"**trained from scratch** (no ImageNet), hypercolumns from {', '.join(cfg['layers'])}, "
        f"an MLP head {'-'.join(map(str, cfg['hidden']))} → 1 (edge probability). {params_count / 1e6:.2f} M "
        f"parameters, stored as float16 ({c.weights.stat().st_size / 1e6:.1f} MB). Trained with sparse "
        f"sampling: {s.pixels_per_image} pixels × {c.params.images_per_batch} images per step "
        f"({s.strategy}, {int(100 * s.positive_fraction)}% on consensus edges), "
        f"in {augment.crop}² windows (scale {_num(augment.scale[0])}–{_num(augment.scale[1])}, "
        f"{'flips, ' if augment.flip else ''}rotation ±{_num(augment.rotate)}°).",
        "",
        "Use it for: natural-image boundary maps (BSDS-style, white edges on black, 0–255 = probability); "
        "`predict --nms` writes them thinned by the edges toolbox's NMS, as the benchmark scores them "
        f"(`--thin` also binarises and thins them); in Python, `model = pixelnet.load(\"{c.name}\")`, then "
        "`edges = model(image)` and `model.nms(edges)`. Not for: "
        "anything needing ImageNet-trained quality (HED, RCF and PixelNet-ImageNet are better, below).",
        "",
    ]


def _score_row(label: str, m: dict, bold: bool = False) -> str:
    ods = f"**{_fmt(m['ods'])}**" if bold else _fmt(m["ods"])
    return f"| {label} | {ods} | {_fmt(m['ois'])} | {_fmt(m['ap'])} |"


def _metrics(c: CardInputs) -> list[str]:
    published = [f"| {label} (published) | {_fmt(p.ods['f'])} | {_fmt(p.ois['f'])} | {_fmt(p.ap)} |"
                 for label, p in load_published().items()]
    return [
        "## Metrics: all 200 BSDS500 test images",
        "The official protocol: the edges toolbox's NMS, then thinning, 99 thresholds, max_dist 0.0075, "
        "scored by the project's benchmark (equal to the official one, `reports/bench/`). Multi-scale "
        "averages the predictions at scales 0.5, 1, 1.5.",
        "",
        "| detector | ODS | OIS | AP |",
        "|---|---:|---:|---:|",
        _score_row(f"**{c.name}**, single scale", c.single["model"], bold=True),
        _score_row(f"**{c.name}**, multi-scale", c.multi["model"], bold=True),
        _score_row("Sobel (ours, same images)", c.single["baseline"]),
        *published,
        "| PixelNet (biased), ImageNet VGG-16 (paper, Table 9) | .795 | .811 | .830 |",
        "",
        "Published rows: the authors' own result files (`pixelnet/metrics/published_bsds500/`). Without deep "
        "features: Canny, gPb-UCM, SE, OEF. With ImageNet VGG-16: HED, RCF, PixelNet.",
        "",
        "![PR curve, single scale](single_pr_curve.png)",
        "",
        "Predictions on the first test images (input, ground truth, this model, Sobel):",
        "",
        "![predictions](single_predictions.png)",
        "",
        "Per-image best F, single scale (the first test images; `tests/test_zoo.py` re-scores them):",
        "",
        "| image | best F | at threshold |",
        "|---|---:|---:|",
        *[f"| `{k}` | {f:.4f} | {thr:.2f} |" for k, f, thr in c.images],
        "",
    ]


def _checksum(source: dict) -> str:
    """How the copy of the data used was verified, as dataset.json records it."""
    if source.get("sha256") or source.get("md5"):
        return source.get("sha256") or source.get("md5")
    if source.get("files_verified"):
        return f"{source.get('files_verified')} files verified against the folder's SHA256SUMS"
    return "n/a"


def _training(c: CardInputs) -> list[str]:
    t, data = c.params.task_train[TASK], c.params.data[DATASET]
    splits = list(data.train_splits)
    counts, summary, machine = c.data["counts"], c.summary, c.machine
    thru = summary.get("throughput", {})
    return [
        "## Training",
        f"* Data: BSDS500 {'+'.join(splits)} ({sum(counts.get(k, 0) for k in splits)} images; "
        f"the {counts.get('test', 0)} test images held out), the official archive "
        f"(md5 `{data.md5}`); the copy used here: {_checksum(c.data.get('source', {}))}.",
        f"* Schedule: {t.iterations} SGD steps, lr {_num(t.lr)} ×{_num(t.lr_gamma)} at {list(t.lr_steps)}, momentum "
        f"{_num(t.momentum)}, weight decay {_num(t.weight_decay)}, {t.precision} autocast, {t.memory_format}, "
        f"{t.num_workers} loader worker(s).",
        f"* Wall time of the train stage: **{summary.get('seconds', float('nan')) / 60:.1f} min** "
        f"({thru.get('images_per_s', float('nan')):.1f} images/s, data wait "
        f"{100 * thru.get('data_wait_share', float('nan')):.1f}% of the step); final loss "
        f"{summary.get('final_loss', float('nan')):.3f}.",
        f"* Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
        f"{', GPU ' + machine['gpu'] if machine.get('gpu') else ', no GPU'}; torch {machine.get('torch', '?')}.",
        "",
    ]


def _reproduce(c: CardInputs) -> list[str]:
    src = c.data.get("source", {})
    return [
        "Reproduce (everything from download to this card; training is the `train` stage):",
        "",
        "```bash",
        c.command,
        "```",
        "",
        f"This copy was made without network, by the same pipeline with `data.bsds500.source` pointing at "
        f"the dataset on disk ({src.get('origin', '?')} `{src.get('location', '?')}`); in one line:",
        "",
        "```bash",
        f"uv run dvc exp run recipes/{c.name}/dvc.yaml \\",
        f"    -S recipes/{c.name}/params.yaml:data.bsds500.source=../shared/datasets/BSR",
        "```",
        "",
    ]


def card_text(c: CardInputs) -> str:
    """The card's Markdown: usage, what it is, metrics, training, how to reproduce, the recipe notes."""
    return "\n".join([*_usage(c), *_what_it_is(c), *_metrics(c), *_training(c), *_reproduce(c), c.notes.strip(), ""])


def copy_pictures(single: Path, multi: Path, folder: Path) -> None:
    """The evaluate stages' pictures beside the card, as single_<picture> and multiscale_<picture>."""
    for src, tag in ((Path(single), "single"), (Path(multi), "multiscale")):
        for picture in PICTURES:
            if (src / picture).is_file():
                shutil.copyfile(src / picture, folder / f"{tag}_{picture}")


def render(name: str, weights: Path, single: Path, multi: Path, dataset: Path, params: Params, notes: Path,
           command: str, out: Path) -> str:
    """Write `out` (README.md of the shipped model) and copy its pictures beside it; returns the text."""
    inputs = read_inputs(name, weights, single, multi, dataset, params, notes, command)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    copy_pictures(single, multi, out.parent)
    text = card_text(inputs)
    atomic_write_text(out, text)
    return text

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
from pipeline.speed_quality import plot as plot_speed_quality
from pipeline.speed_quality import points as speed_points
from pixelnet.atomic import atomic_write_text
from pixelnet.bench.agreement import Agreement, official_fixture, pyedgeeval
from pixelnet.metrics.published import load_published
from pixelnet.model.pixelnet import load_checkpoint

SHOWN_IMAGES = 3  # per-image best F quoted for the first images of the test split (tests check them)
TASK, DATASET = "edges", "bsds500"  # the card describes an edge model trained on BSDS500
PICTURES = ("pr_curve.png", "predictions.png")
SPEED_PICTURE = "speed_quality.png"
SPEED_SETTINGS = {"single scale": "fp32, scale 1", "multi-scale": "fp32, scale multi"}  # bench predict rows


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


def parse_card_flip(text: str) -> bool:
    """Whether a card's scores average each image with its mirror (the card states evaluate.flip)."""
    return "evaluate.flip: true" in text


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
    sampling: dict[str, Any]     # the sample stage's report: the shares as drawn
    seeds: list[tuple[str, dict[str, Any]]]   # (run, metrics.json) of the recipe's seed runs on val
    agreement: list[Agreement]   # the benchmark against its references, as measured
    speed: dict[str, Any]        # `pixelnet bench predict`'s report (this model's speed on a named CPU)
    earlier: list[tuple[str, dict[str, Any]]]  # (name, single-scale metrics.json) of superseded models
    plain: dict[str, Any] | None = None  # metrics.json at single scale without flip (when evaluate.flip is on)

    @property
    def flip(self) -> bool:
        return bool(self.params.evaluate.flip)

    @property
    def summary(self) -> dict[str, Any]:
        return self.state.get("summary") or {}

    @property
    def machine(self) -> dict[str, Any]:
        return self.state.get("machine") or {}


@dataclass(frozen=True)
class Evidence:
    """The measurements a card quotes beside its own scores (paths; read by `read_inputs`)."""

    sampling: Path               # the recipe's sampling.json
    seeds: list[Path]            # folders of the seed runs (metrics.json each)
    bench_edges: Path            # `pixelnet bench evaluate-edges`'s folder (ours against pyEdgeEval)
    fixture: Path                # the official benchmark's test case (../shared/fixtures/bsds500-bench)
    bench_predict: Path          # `pixelnet bench predict`'s JSON report
    earlier: list[tuple[str, Path]]  # (name, single-scale report folder) of superseded shipped models
    plain: Path | None = None    # single scale without flip (the published rows' protocol); needed with evaluate.flip


def read_inputs(name: str, weights: Path, single: Path, multi: Path, dataset: Path, params: Params, notes: Path,
                command: str, evidence: Evidence) -> CardInputs:
    """The card's inputs; a missing evaluate output is named with the stage to run."""
    if TASK not in params.tasks:
        raise ValueError(f"tasks.{TASK}: not configured in the recipe's params (the card describes an edge model)")
    if len(evidence.seeds) < 2:
        raise ValueError(f"--seeds: {len(evidence.seeds)} seed run(s) given; the spread needs at least 2")
    if params.evaluate.flip and evidence.plain is None:
        raise ValueError("--plain: evaluate.flip is true, so the card also needs the single-scale report without flip "
                         "(the protocol of the published rows); e.g. pixelnet evaluate edges --no-flip")
    state = load_checkpoint(weights)
    for earlier, _ in evidence.earlier:
        _check_same_network(earlier, state, weights)
    return CardInputs(
        name=name, weights=Path(weights), state=state,
        single=_read_json(Path(single) / "metrics.json"), multi=_read_json(Path(multi) / "metrics.json"),
        images=per_image_table(_read_json(Path(single) / "per_image.json")), data=_read_json(dataset),
        params=params, notes=Path(notes).read_text(), command=command,
        sampling=_read_json(evidence.sampling),
        seeds=[(Path(d).name, _read_json(Path(d) / "metrics.json")) for d in evidence.seeds],
        agreement=[official_fixture(evidence.fixture), pyedgeeval(evidence.bench_edges)],
        speed=_read_json(evidence.bench_predict),
        earlier=[(n, _read_json(Path(d) / "metrics.json")) for n, d in evidence.earlier],
        plain=_read_json(Path(evidence.plain) / "metrics.json") if evidence.plain is not None else None,
    )


def _network(state: dict) -> dict:
    """A checkpoint's model config as a plain dict (defaults of keys added since it was saved filled in)."""
    from dataclasses import asdict

    from pixelnet.model.pixelnet import config_from_checkpoint

    return asdict(config_from_checkpoint(state))


def _check_same_network(name: str, state: dict, weights: Path) -> None:
    """An earlier model shares the speed measured for this one only if it is the same network."""
    from pixelnet.zoo import resolve

    if _network(load_checkpoint(resolve(name))) != _network(state):
        raise ValueError(f"--earlier {name}: not the same network as {weights}, and the speed was measured for that one only")


def _usage(c: CardInputs) -> list[str]:
    flip = " --flip" if c.flip else ""
    lines = [
        f"# `{c.name}`: PixelNet edges, trained from scratch on BSDS500 on a 2-core CPU",
        "",
        "```bash",
        f"uv run pixelnet predict --model {c.name} photo.jpg --out edges/{flip}         # edges/photo_edges.png: probabilities",
        f"uv run pixelnet predict --model {c.name} photo.jpg --out thin/ --nms{flip}   # one-pixel-wide edges (the benchmark's NMS)",
        "```",
        "",
    ]
    if c.flip:
        lines += ["`--flip` averages each map with that of the mirrored photo, as the scores below were made; without it "
                  "a prediction takes half the time and scores the single-scale no-flip row.", ""]
    return lines


def _what_it_is(c: CardInputs) -> list[str]:
    cfg = c.state["model_config"]
    s, augment = c.params.sampling[TASK], c.params.augment[TASK]
    params_count = sum(v.numel() for v in c.state["model"].values() if v.is_floating_point())
    return [
        "## What it is",
        f"PixelNet (Bansal et al. 2017): a VGG-16-layout trunk at width {cfg['width']} with batch norm, "
        f"**trained from scratch** (no ImageNet), hypercolumns from {', '.join(cfg['layers'])}, "
        f"an MLP head {'-'.join(map(str, cfg['hidden']))} → 1 (edge probability). {params_count / 1e6:.2f} M "
        f"parameters, {_storage(c.state['model'])} ({c.weights.stat().st_size / 1e6:.1f} MB). Trained with sparse "
        f"sampling: {s.pixels_per_image} pixels × {c.params.images_per_batch} images per step "
        f"({s.strategy}: {int(100 * s.positive_fraction)}% asked on consensus edges, "
        f"**{100 * drawn_positive_share(c.sampling):.1f}% drawn**{_ambiguous(c)}), "
        f"in {augment.crop}² windows (scale {_num(augment.scale[0])}–{_num(augment.scale[1])}, "
        f"{'flips, ' if augment.flip else ''}rotation ±{_num(augment.rotate)}°).",
        "",
        "Use it for: natural-image boundary maps (BSDS-style, white edges on black, 0–255 = probability); "
        "`predict --nms` writes them thinned by the edges toolbox's NMS, as the benchmark scores them "
        f"(`--thin` also binarises and thins them); in Python, `model = pixelnet.load(\"{c.name}\"{', flip=True' if c.flip else ''})`, then "
        "`edges = model(image)` and `model.nms(edges)`. Not for: "
        "anything needing ImageNet-trained quality (HED, RCF and PixelNet-ImageNet are better, below).",
        "",
    ]


def _storage(weights: dict) -> str:
    """How the shipped tensors are stored: float16 where that keeps them finite and nonzero (pixelnet.zoo)."""
    import torch

    floats = [v for v in weights.values() if v.is_floating_point()]
    half = sum(v.dtype == torch.float16 for v in floats)
    if half == len(floats):
        return "stored as float16"
    return f"stored as float16 ({half} of {len(floats)} tensors; the rest float32, where float16 would round values to 0)"


def drawn_positive_share(sampling: dict) -> float:
    """The share of positives (stratum 1) among the pixels the plan drew, from sampling.json."""
    shares = sampling.get("share_per_stratum") or {}
    if "1" not in shares:
        raise ValueError("sampling.json: no share_per_stratum['1'] (the positives drawn); re-run the sample stage")
    return float(shares["1"])


def _ambiguous(c: CardInputs) -> str:
    edges = c.params.tasks[TASK].settings
    fate = "never drawn" if edges.ambiguous == "ignore" else "drawn as negatives"
    return f"; pixels marked by fewer than {edges.consensus} annotators {fate}"


def seed_spread(seeds: list[tuple[str, dict]]) -> dict[str, float]:
    """max - min of ODS, OIS and AP over the seed runs' metrics."""
    return {k: max(m["model"][k] for _, m in seeds) - min(m["model"][k] for _, m in seeds) for k in ("ods", "ois", "ap")}


def _flip(c: CardInputs) -> str:
    return ", flip" if c.flip else ""


def _score_row(label: str, m: dict, bold: bool = False) -> str:
    ods = f"**{_fmt(m['ods'])}**" if bold else _fmt(m["ods"])
    return f"| {label} | {ods} | {_fmt(m['ois'])} | {_fmt(m['ap'])} |"


def _metrics(c: CardInputs) -> list[str]:
    published = [f"| {label} (published) | {_fmt(p.ods['f'])} | {_fmt(p.ois['f'])} | {_fmt(p.ap)} |"
                 for label, p in load_published().items()]
    return [
        "## Metrics: all 200 BSDS500 test images",
        "The official protocol: the edges toolbox's NMS, then thinning, 99 thresholds, max_dist 0.0075, "
        "scored by the project's benchmark. Multi-scale averages the predictions at scales 0.5, 1, 1.5; "
        + ("both average each prediction with that of the mirrored image (evaluate.flip: true, chosen on val); "
           "the single scale without flip is the published rows' protocol. " if c.flip else
           "neither flips the image (evaluate.flip: false). ") +
        "The benchmark's agreement with its references, as measured when this card was rendered "
        "(`pixelnet/bench/agreement.py`):",
        "",
        *[f"* {a.line()}." for a in c.agreement],
        "",
        "| detector | ODS | OIS | AP |",
        "|---|---:|---:|---:|",
        _score_row(f"**{c.name}**, single scale{_flip(c)}", c.single["model"], bold=True),
        _score_row(f"**{c.name}**, multi-scale{_flip(c)}", c.multi["model"], bold=True),
        *([_score_row(f"{c.name}, single scale, no flip", c.plain["model"])] if c.flip else []),
        *[_score_row(f"{n} (superseded), single scale", m["model"]) for n, m in c.earlier],
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
        f"Per-image best F, single scale{_flip(c)} (the first test images; `tests/test_zoo.py` re-scores them):",
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
        f"{_num(t.momentum)}, weight decay {_num(t.weight_decay)}, precision {_precision(t.precision, summary)}, {t.memory_format}, "
        f"{t.num_workers} loader worker(s).",
        f"* Wall time of the train stage: **{summary.get('seconds', float('nan')) / 60:.1f} min** "
        f"({thru.get('images_per_s', float('nan')):.1f} images/s, data wait "
        f"{100 * thru.get('data_wait_share', float('nan')):.1f}% of the step); final loss "
        f"{summary.get('final_loss', float('nan')):.3f}.",
        f"* Trained on: {_trained_on(summary)}.",
        f"* Shipped from: {machine.get('cpu', '?')}{_amx(machine)}, {machine.get('cores', '?')} cores"
        f"{', GPU ' + machine['gpu'] if machine.get('gpu') else ', no GPU'}; torch {machine.get('torch', '?')}.",
        "",
    ]


def _precision(setting: str, summary: dict) -> str:
    """The precision as params set it and, for `auto`, what the train stage resolved it to."""
    if setting == "auto":
        return f"auto (here {summary.get('precision', '?')})"
    return setting


def _amx(machine: dict) -> str:
    return {True: " (AMX)", False: " (no AMX)"}.get(machine.get("amx"), "")


def _trained_on(summary: dict) -> str:
    """The training machine as the train stage recorded it (not the machine rendering the card)."""
    m = summary.get("machine")
    if not m:
        return "not recorded by this model's train stage"
    bf16 = "multiplies bf16 natively (AMX or AVX512-BF16)" if m.get("bf16_native") else "no native bf16"
    return f"{m.get('cpu', '?')}, {m.get('threads', '?')} torch threads, {bf16}; device {summary.get('device', '?')}"


def _spread(c: CardInputs) -> list[str]:
    r = seed_spread(c.seeds)
    return [
        "## Expected spread",
        f"Measured on val at the exploring budget (train on train, 1,000 steps), over {len(c.seeds)} seeds of "
        f"the sampling plan and the initialisation ({', '.join(f'`{n}`' for n, _ in c.seeds)}): ODS range "
        f"{r['ods']:.4f}, OIS {r['ois']:.4f}, AP {r['ap']:.4f}. This model's own spread over seeds at its full "
        "length was not measured (one training fills a session).",
        "",
    ]


def _speed(c: CardInputs) -> list[str]:
    return [
        "## Speed and quality",
        f"ODS against images per second on one CPU ({c.speed.get('machine', {}).get('cpu', '?')}, "
        f"`pixelnet bench predict`, `reports/bench/predict/`); published detectors at their published ODS, "
        "a point only where their speed was measured on the same machine:",
        "",
        f"![speed and quality]({SPEED_PICTURE})",
        "",
    ]


def speed_quality_points(c: CardInputs) -> list:
    """The plot's points: this model at each setting, earlier shipped models, the published detectors.
    Every shipped model is the same network, so the bench report's rows for this one time them all."""
    method = f"pixelnet {c.speed.get('bench', {}).get('model', c.name)}"
    ours = [(f"{c.name}, single scale{_flip(c)}", c.single, method, SPEED_SETTINGS["single scale"] + _flip(c)),
            (f"{c.name}, multi-scale{_flip(c)}", c.multi, method, SPEED_SETTINGS["multi-scale"] + _flip(c))]
    if c.flip:
        ours.append((f"{c.name}, single scale, no flip", c.plain, method, SPEED_SETTINGS["single scale"]))
    ours += [(f"{n} (earlier), single scale", m, method, SPEED_SETTINGS["single scale"]) for n, m in c.earlier]
    return speed_points(c.speed, ours, load_published())


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
    return "\n".join([*_usage(c), *_what_it_is(c), *_metrics(c), *_speed(c), *_spread(c), *_training(c), *_reproduce(c),
                      c.notes.strip(), ""])


def copy_pictures(single: Path, multi: Path, folder: Path) -> None:
    """The evaluate stages' pictures beside the card, as single_<picture> and multiscale_<picture>."""
    for src, tag in ((Path(single), "single"), (Path(multi), "multiscale")):
        for picture in PICTURES:
            if (src / picture).is_file():
                shutil.copyfile(src / picture, folder / f"{tag}_{picture}")


def render(name: str, weights: Path, single: Path, multi: Path, dataset: Path, params: Params, notes: Path,
           command: str, evidence: Evidence, out: Path) -> str:
    """Write `out` (README.md of the shipped model) and copy its pictures beside it; returns the text."""
    inputs = read_inputs(name, weights, single, multi, dataset, params, notes, command, evidence)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    copy_pictures(single, multi, out.parent)
    plot_speed_quality(speed_quality_points(inputs), inputs.speed.get("machine", {}).get("cpu", "?"),
                       out.parent / SPEED_PICTURE)
    text = card_text(inputs)
    atomic_write_text(out, text)
    return text

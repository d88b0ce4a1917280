"""A shipped model's card, rendered from the files its recipe wrote (nothing in it is typed by hand
except the recipe notes it includes): the weights' payload (config, training summary, machine), the
evaluate stages' metrics.json and per_image.json, the dataset's dataset.json and the params file.

The card's pictures (PR curve, predictions) are copied next to it so the folder stands alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from pixelnet.atomic import atomic_write_text
from pixelnet.metrics.published import load_published
from pixelnet.model.pixelnet import load_checkpoint

SHOWN_IMAGES = 3  # per-image best F quoted for the first images of the test split (tests check them)


def _read_json(path: Path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing (run the recipe's evaluate stages first)")
    return json.loads(Path(path).read_text())


def _fmt(x: float) -> str:
    return f"{x:.3f}".lstrip("0") if 0 <= x < 1 else f"{x:.3f}"


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


def render(name: str, weights: Path, single: Path, multi: Path, dataset: Path, params: Path, notes: Path,
           command: str, out: Path) -> str:
    """Write `out` (README.md of the shipped model) and copy its pictures beside it; returns the text."""
    state = load_checkpoint(weights)
    cfg, summary, machine = state["model_config"], state.get("summary") or {}, state.get("machine") or {}
    m1, m3 = _read_json(Path(single) / "metrics.json"), _read_json(Path(multi) / "metrics.json")
    images = per_image_table(_read_json(Path(single) / "per_image.json"))
    data = _read_json(dataset)
    p = yaml.safe_load(Path(params).read_text())
    s, t = p["sampling"], p["train"]
    splits = list(p["data"]["bsds500"]["train_splits"])
    augment = {**s.get("augment", {}), **(p["tasks"]["edges"].get("augment") or {})}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for folder, tag in ((Path(single), "single"), (Path(multi), "multiscale")):
        for picture in ("pr_curve.png", "predictions.png"):
            if (folder / picture).is_file():
                shutil.copyfile(folder / picture, out.parent / f"{tag}_{picture}")
    published = load_published()
    thru = summary.get("throughput", {})
    src = data.get("source", {})
    checksum = src.get("sha256") or src.get("md5") or (f"{src.get('files_verified')} files verified against the "
                                                         "folder's SHA256SUMS" if src.get("files_verified") else "n/a")
    params_count = sum(v.numel() for v in state["model"].values() if v.is_floating_point())
    lines = [
        f"# `{name}`: PixelNet edges, trained from scratch on BSDS500 on a 2-core CPU",
        "",
        "```bash",
        f"uv run pixelnet predict --model {name} photo.jpg --out edges/         # edges/photo_edges.png: probabilities",
        f"uv run pixelnet predict --model {name} photo.jpg --out thin/ --nms   # one-pixel-wide edges (the benchmark's NMS)",
        "```",
        "",
        "## What it is",
        f"PixelNet (Bansal et al. 2017): a VGG-16-layout trunk at width {cfg['width']} with batch norm, "
        f"**trained from scratch** (no ImageNet), hypercolumns from {', '.join(cfg['layers'])}, "
        f"an MLP head {'-'.join(map(str, cfg['hidden']))} → 1 (edge probability). {params_count / 1e6:.2f} M "
        f"parameters, stored as float16 ({Path(weights).stat().st_size / 1e6:.1f} MB). Trained with sparse "
        f"sampling: {s['pixels_per_image']} pixels × {s['images_per_batch']} images per step "
        f"({s['strategy'].get('edges', 'edge_biased')}, {int(100 * s['positive_fraction'])}% on consensus edges), "
        f"in {augment.get('crop')}² windows (scale {augment.get('scale')[0]}–{augment.get('scale')[1]}, "
        f"{'flips, ' if augment.get('flip') else ''}rotation ±{augment.get('rotate')}°).",
        "",
        "Use it for: natural-image boundary maps (BSDS-style, white edges on black, 0–255 = probability); "
        "`predict --nms` writes them thinned by the edges toolbox's NMS, as the benchmark scores them "
        f"(`--thin` also binarises and thins them); in Python, `model = pixelnet.load(\"{name}\")`, then "
        "`edges = model(image)` and `model.nms(edges)`. Not for: "
        "anything needing ImageNet-trained quality (HED, RCF and PixelNet-ImageNet are better, below).",
        "",
        "## Metrics: all 200 BSDS500 test images",
        "The official protocol: the edges toolbox's NMS, then thinning, 99 thresholds, max_dist 0.0075, "
        "scored by the project's benchmark (equal to the official one, `reports/bench/`). Multi-scale "
        "averages the predictions at scales 0.5, 1, 1.5.",
        "",
        "| detector | ODS | OIS | AP |",
        "|---|---:|---:|---:|",
        f"| **{name}**, single scale | **{_fmt(m1['model']['ods'])}** | {_fmt(m1['model']['ois'])} | {_fmt(m1['model']['ap'])} |",
        f"| **{name}**, multi-scale | **{_fmt(m3['model']['ods'])}** | {_fmt(m3['model']['ois'])} | {_fmt(m3['model']['ap'])} |",
        f"| Sobel (ours, same images) | {_fmt(m1['baseline']['ods'])} | {_fmt(m1['baseline']['ois'])} | {_fmt(m1['baseline']['ap'])} |",
    ]
    for label, c in published.items():
        lines.append(f"| {label} (published) | {_fmt(c.ods['f'])} | {_fmt(c.ois['f'])} | {_fmt(c.ap)} |")
    lines += [
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
        *[f"| `{k}` | {f:.4f} | {thr:.2f} |" for k, f, thr in images],
        "",
        "## Training",
        f"* Data: BSDS500 {'+'.join(splits)} ({sum(data['counts'].get(k, 0) for k in splits)} images; "
        f"the {data['counts'].get('test', 0)} test images held out), the official archive "
        f"(md5 `{p['data']['bsds500']['md5']}`); the copy used here: {checksum}.",
        f"* Schedule: {t['iterations']} SGD steps, lr {t['lr']} ×{t['lr_gamma']} at {t['lr_steps']}, momentum "
        f"{t['momentum']}, weight decay {t['weight_decay']}, {t['precision']} autocast, {t['memory_format']}, "
        f"{t['num_workers']} loader worker(s).",
        f"* Wall time of the train stage: **{summary.get('seconds', float('nan')) / 60:.1f} min** "
        f"({thru.get('images_per_s', float('nan')):.1f} images/s, data wait "
        f"{100 * thru.get('data_wait_share', float('nan')):.1f}% of the step); final loss "
        f"{summary.get('final_loss', float('nan')):.3f}.",
        f"* Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
        f"{', GPU ' + machine['gpu'] if machine.get('gpu') else ', no GPU'}; torch {machine.get('torch', '?')}.",
        "",
        "Reproduce (everything from download to this card; training is the `train` stage):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"This copy was made without network, by the same pipeline with `data.bsds500.source` pointing at "
        f"the dataset on disk ({src.get('origin', '?')} `{src.get('location', '?')}`); in one line:",
        "",
        "```bash",
        f"uv run dvc exp run recipes/{name}/dvc.yaml \\",
        f"    -S recipes/{name}/params.yaml:data.bsds500.source=../shared/datasets/BSR",
        "```",
        "",
        Path(notes).read_text().strip(),
        "",
    ]
    text = "\n".join(lines)
    atomic_write_text(out, text)
    return text

"""The table of exploring runs in EXPERIMENTS.md, read from reports/bsds500/explore20/<run>/.

    uv run python recipes/bsds500-edges/explore_table.py [reports/bsds500/explore20]

One row per run folder that holds a metrics.json: the overrides (from the params header that
explore.sh writes), val ODS / OIS / AP, the share of positives as drawn (sampling.json), the train
stage's wall time and images/s, the final loss, and the CPU that trained it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())["model"]
    header = (run / "params.yaml").read_text().splitlines()[0]
    overrides = header.split("overrides: ", 1)[1] if "overrides: " in header else "?"
    summary = json.loads((run / "train_summary.json").read_text())
    shares = json.loads((run / "sampling.json").read_text()).get("share_per_stratum", {})
    drawn = f"{100 * float(shares.get('1', 0)):.1f}%"
    machine = summary.get("machine", {})
    wall = json.loads((run / "wall.json").read_text()) if (run / "wall.json").is_file() else {}
    cpu = machine.get("cpu", wall.get("cpu", "?")) + (" (bf16 native)" if machine.get("bf16_native") else "")
    t = summary["throughput"]
    reused = wall.get("model_of", run.name) != run.name
    trained = f"(`{wall['model_of']}`'s model)" if reused else f"{summary['seconds'] / 60:.1f} min"
    return (f"| `{run.name}` | {overrides} | {metrics['ods']:.4f} | {metrics['ois']:.4f} | {metrics['ap']:.4f} | {drawn} "
            f"| {trained} | {t['images_per_s']:.1f} | {summary['final_loss']:.3f} | {cpu} |")


def table(folder: Path) -> str:
    runs = sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file() and (p / "train_summary.json").is_file())
    lines = ["| run | overrides (explore.sh) | val ODS | OIS | AP | positives drawn | train wall | images/s | final loss | CPU |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    return "\n".join(lines + [row(r) for r in runs])


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bsds500/explore20")))

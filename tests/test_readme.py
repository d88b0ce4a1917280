"""The README is a short front door, and every figure in a results table is the one in reports/.

A results table is a Markdown table with the columns `PixelNet`, `baseline` and `from`: each row's
`from` names a metrics.json (a code span, a path from the repository's root) and its PixelNet and
baseline cells list figures as `label value` items separated by `·` (an optional `Name:` first says
what the baseline is). Each figure must equal that file's `model` / `baseline` value at the
rounding shown, so a table can never drift from the files when a model is retrained.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

# What a table calls a figure -> its key in metrics.json.
KEYS = {
    "ods": "ods", "ois": "ois", "ap": "ap",
    "mean": "mean", "median": "median", "rmse": "rmse",
    "within 11.25°": "within_11_25", "within 22.5°": "within_22_5", "within 30°": "within_30",
    "miou": "miou", "pixel accuracy": "pixel_accuracy", "mean class accuracy": "mean_class_accuracy",
}
NUMBER = re.compile(r"^(-?\d*\.\d+|-?\d+)(°|%)?$")
COLUMNS = {"pixelnet": "model", "baseline": "baseline"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def results_tables(text: str) -> list[list[dict[str, str]]]:
    """Every results table of a Markdown page, as rows of {column header (lower case): cell}."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        header = [h.lower() for h in _cells(line)] if line.lstrip().startswith("|") else []
        if not {"pixelnet", "from"} <= set(header) or not re.fullmatch(r"\|?[\s:|-]+", lines[i + 1].strip()):
            continue
        rows = []
        for row in lines[i + 2:]:
            if not row.lstrip().startswith("|"):
                break
            rows.append(dict(zip(header, _cells(row))))
        tables.append(rows)
    return tables


def figures(cell: str) -> list[tuple[str, str]]:
    """'Sobel: ODS .551 · OIS .587' -> [('ods', '.551'), ('ois', '.587')]; '75.9% within 22.5°' works too."""
    items = [item.strip() for item in cell.split("·") if item.strip()]
    if items and ": " in items[0] and not re.search(r"\d", items[0].split(": ", 1)[0]):
        items[0] = items[0].split(": ", 1)[1]  # drop the baseline's name
    out = []
    for item in items:
        words = item.split()
        # the value is the first or the last word, whichever leaves a known label ('within 22.5°' holds a number)
        readings = [(" ".join(words[:-1]), words[-1]), (" ".join(words[1:]), words[0])]
        found = [(label.rstrip(":").lower(), shown) for label, shown in readings
                 if NUMBER.match(shown) and label.rstrip(":").lower() in KEYS]
        assert found, f"no known figure in {item!r} (cell {cell!r}); known labels: {sorted(KEYS)}"
        label, shown = found[0]
        out.append((KEYS[label], shown))
    return out


def matches(value: float, shown: str) -> bool:
    """`shown` is `value` rounded to the decimals it shows ('.767', '17.4°', '75.9%')."""
    number = NUMBER.match(shown).group(1)
    decimals = len(number.split(".")[1]) if "." in number else 0
    return f"{value:.{decimals}f}" == f"{float(number):.{decimals}f}"


def source(row: dict[str, str]) -> Path:
    spans = re.findall(r"`([^`]+)`", row["from"])
    assert len(spans) == 1 and spans[0].startswith("reports/"), f"`from` must name one reports/ file: {row['from']!r}"
    path = REPO / spans[0]
    assert path.is_file(), f"{spans[0]} does not exist"
    return path


def test_readme_is_a_short_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text) <= 10_000, f"README.md has {len(text):,} characters; the front door keeps under 10,000"
    for command in ("uv run pixelnet predict --model bsds500-edges", "pixelnet.load(", "uv run dvc repro",
                    "uv run pytest", "pip install uv"):
        assert command in text, command


def test_readme_has_a_results_table_with_the_shipped_model():
    tables = results_tables(README.read_text(encoding="utf-8"))
    assert tables, "README.md has no results table (columns PixelNet, baseline, from)"
    sources = {source(row).relative_to(REPO).as_posix() for table in tables for row in table}
    assert "reports/bsds500-edges/test/metrics.json" in sources


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_figure_in_a_results_table_is_the_one_in_reports(page):
    for table in results_tables(page.read_text(encoding="utf-8")):
        for row in table:
            metrics = json.loads(source(row).read_text())
            checked = 0
            for column, side in COLUMNS.items():
                for key, shown in figures(row.get(column, "")):
                    value = metrics[side][key]
                    assert matches(value, shown), (
                        f"{page.name}: {row['from']} {side}.{key} is {value:.6g}, the table shows {shown}")
                    checked += 1
            assert checked, f"{page.name}: a row of a results table has no figure: {row}"


def test_the_checks_catch_a_wrong_figure():
    table = results_tables("| result | PixelNet | baseline | from |\n|---|---|---|---|\n"
                           "| x | ODS .767 · 75.9% within 22.5° | Sobel: mean 17.4° | `reports/edges/metrics.json` |\n")
    (row,) = table[0]
    assert figures(row["pixelnet"]) == [("ods", ".767"), ("within_22_5", "75.9%")]
    assert figures(row["baseline"]) == [("mean", "17.4°")]
    assert matches(0.7666, ".767") and not matches(0.7654, ".767")
    assert matches(75.914, "75.9%") and not matches(75.96, "75.9%")

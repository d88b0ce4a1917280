"""Every dataset the pipeline can download and shard, by name: one entry per source.

A source has a frozen config (its `data.<name>` section of params.yaml), `install` (bring it in as
published, checksum-verified, into the raw folder with a dataset.json), `counts` (images per output
split) and `records` (the Records of one output split). `download` and `shard` only look things up
here, so adding a dataset is one module and one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelnet.data import bsds, folder, nyud, pascal, synthetic
from pixelnet.data.shards import Record


@dataclass(frozen=True)
class Source:
    name: str
    config: type
    install: Callable[[Any, Path], dict]
    counts: Callable[[Any, Path, dict], dict[str, int]]
    records: Callable[[Any, Path, dict, str], Iterator[Record]]


def _raw_counts(config: Any, raw: Path, info: dict) -> dict[str, int]:
    """The splits as the raw folder's dataset.json counts them."""
    return {s: int(n) for s, n in info["counts"].items()}


def _synthetic_records(config: synthetic.SyntheticConfig, raw: Path, info: dict, split: str) -> Iterator[Record]:
    for key, arrays in synthetic.read_raw(raw, split):
        yield {"key": key, **arrays, "meta": {"annotators": 1, "dataset": "synthetic", "split": split}}


SOURCES: dict[str, Source] = {
    "synthetic": Source("synthetic", synthetic.SyntheticConfig, lambda c, out: synthetic.write_raw(c, out),
                        _raw_counts, _synthetic_records),
    "bsds500": Source("bsds500", bsds.BsdsConfig, lambda c, out: bsds.install(c, out),
                      bsds.shard_counts, bsds.shard_records),
    "nyud": Source("nyud", nyud.NyudConfig, lambda c, out: nyud.install(c, out),
                   _raw_counts, lambda c, raw, info, split: nyud.read_split(raw, split)),
    "pascal_context": Source("pascal_context", pascal.PascalContextConfig, lambda c, out: pascal.install_context(c, out),
                             _raw_counts, lambda c, raw, info, split: pascal.read_split(raw, split)),
    "voc2012": Source("voc2012", pascal.Voc2012Config, lambda c, out: pascal.install_voc2012(c, out),
                      _raw_counts, lambda c, raw, info, split: pascal.read_split(raw, split)),
    "folder": Source("folder", folder.FolderConfig, lambda c, out: folder.install(c, out),
                     _raw_counts, lambda c, raw, info, split: folder.read_split(raw, split)),
}

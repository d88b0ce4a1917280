"""The Numba sampling kernels against their NumPy twins, per strategy, on BSDS-sized maps.

Maps are 481×321 like BSDS500 images and made the way real targets look: label maps are
piecewise-constant regions (a Voronoi partition of random seeds, each region one class id, a
band of ignore pixels on region borders for the segmentation case), and edge maps are those
regions' boundaries (about 5% positives). Each call draws `draws` samples of `pixels` pixels from
one map; the figure is the median over repeats of the mean time per call, in microseconds,
with Numba's compilation (or cache load) done before timing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pixelnet.sampling import SamplingConfig, draw, draw_numpy, image_seed

HEIGHT, WIDTH = 321, 481


@dataclass(frozen=True)
class SamplingBench:
    classes: tuple[int, ...] = (21, 59, 150)  # stratified: VOC, PASCAL-Context, ADE-sized label sets
    pixels: int = 2000
    draws: int = 1
    maps: int = 8             # distinct maps, cycled
    regions: int = 80         # Voronoi regions per map
    repeats: int = 5
    min_seconds: float = 0.2  # each repeat runs at least this long
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pixels < 1 or self.draws < 1 or self.maps < 1 or self.repeats < 1 or self.regions < 2:
            raise ValueError("--pixels, --draws, --maps, --repeats must be >= 1 and regions >= 2")
        if any(c < 2 or c > 255 for c in self.classes):
            raise ValueError(f"--classes must lie in 2..255, got {list(self.classes)}")


def region_map(rng: np.random.Generator, regions: int) -> np.ndarray:
    """(H, W) int32 region ids: the nearest of `regions` random seed points (a Voronoi partition)."""
    seeds = np.zeros((HEIGHT, WIDTH), np.int32)
    ys, xs = rng.integers(0, HEIGHT, regions), rng.integers(0, WIDTH, regions)
    seeds[ys, xs] = np.arange(1, regions + 1)
    _, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    return seeds[iy, ix] - 1  # (H, W)


def boundaries(regions: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour is in another region."""
    edge = np.zeros(regions.shape, bool)
    edge[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    edge[:-1, :] |= regions[:-1, :] != regions[1:, :]
    return edge


def make_maps(bench: SamplingBench, strategy: str, classes: int) -> list[np.ndarray]:
    """`bench.maps` strata maps for the strategy, as the sample stage sees them (-1 = never sampled)."""
    rng = np.random.default_rng([bench.seed, classes, ("uniform", "edge_biased", "stratified").index(strategy)])
    out = []
    for _ in range(bench.maps):
        regions = region_map(rng, bench.regions)
        edge = ndi.binary_dilation(boundaries(regions))  # (H, W) about 5% of pixels, BSDS-like thickness
        if strategy == "edge_biased":
            out.append(edge.astype(np.uint8))
        elif strategy == "uniform":
            out.append(np.where(rng.random((HEIGHT, WIDTH)) < 0.02, -1, 0).astype(np.int16))  # a few invalid
        else:
            labels = rng.integers(0, classes, bench.regions)[regions].astype(np.int16)  # (H, W)
            labels[boundaries(regions)] = -1  # VOC-style ignore band on object borders
            out.append(labels)
    return out


def _per_call_us(fn: Callable[[np.ndarray, int], object], maps: list[np.ndarray], bench: SamplingBench) -> float:
    for i, m in enumerate(maps):  # compile / warm caches
        fn(m, i)
    results = []
    for _ in range(bench.repeats):
        calls, started = 0, time.perf_counter()
        while True:
            for m in maps:
                fn(m, calls)
                calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= bench.min_seconds:
                break
        results.append(elapsed / calls * 1e6)
    return float(statistics.median(results))


def run(bench: SamplingBench) -> dict:
    """Rows of {strategy, classes, numba_us, numpy_us, speedup} for uniform, edge_biased and each class count."""
    cases = [("uniform", 1), ("edge_biased", 2)] + [("stratified", c) for c in bench.classes]
    rows = []
    for strategy, classes in cases:
        maps = make_maps(bench, strategy, classes)
        config = SamplingConfig(strategy=strategy, pixels_per_image=bench.pixels, draws=bench.draws, seed=bench.seed)
        numba_us = _per_call_us(lambda m, i: draw(m, config, image_seed(bench.seed, str(i))), maps, bench)
        numpy_us = _per_call_us(lambda m, i: draw_numpy(m, config, image_seed(bench.seed, str(i))), maps, bench)
        present = int(np.mean([len(np.unique(m[m >= 0])) for m in maps]))
        rows.append({"strategy": strategy, "classes": classes, "classes_present": present,
                     "numba_us": round(numba_us, 1), "numpy_us": round(numpy_us, 1),
                     "speedup": round(numpy_us / numba_us, 1)})
    return {"image": [HEIGHT, WIDTH], "pixels": bench.pixels, "draws": bench.draws, "maps": bench.maps, "rows": rows}


def table(report: dict) -> str:
    lines = ["| strategy | classes (present per map) | Numba µs/image | NumPy µs/image | speed-up |",
             "|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['strategy']} | {r['classes']} ({r['classes_present']}) | {r['numba_us']:,.1f} | "
                     f"{r['numpy_us']:,.1f} | {r['speedup']:.1f}x |")
    return "\n".join(lines)

"""Sparse pixel sampling: K draws of N distinct flat pixel indices per image (the sampling plan,
`pixelnet.plan`, calls it once per draw on the pixels inside that draw's window).

PixelNet builds hypercolumns only at a sample of ~2,000 pixels per image, so the sample is where
diversity comes from: uniform, class-stratified (balanced over the classes present) or edge-biased
(a fixed fraction of positives, the paper's Table 15). Each strategy is a Numba kernel (`draw`)
beside a plain NumPy twin (`draw_numpy`) that the tests check it against.

Indices are `row * W + col` into a 2-D "strata" map where a value < 0 means invalid (never
sampled). Rows of the result are NOT sorted: they are grouped by stratum (ascending stratum id)
and in random order within a stratum. Both implementations compute the same per-stratum counts
for a given seed (the quota logic is deterministic and uses no generator); the pixels themselves
come from different generators and differ.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numba
import numpy as np

STRATEGIES = ("uniform", "stratified", "edge_biased")

MAX_CLASSES = 255  # stratified class ids 0..254; the caller maps ignore=255 to -1
_N_STRATA = {"uniform": 1, "stratified": MAX_CLASSES, "edge_biased": 2}
_MODE = {"uniform": 0, "stratified": 1, "edge_biased": 2}
_MASK32 = 0xFFFFFFFF
_SLACK = 16  # spare bucket slots per class, so run copies can write whole 16-id chunks


@dataclass(frozen=True)
class SamplingConfig:
    strategy: str = "uniform"
    pixels_per_image: int = 2000
    draws: int | str = "auto"  # K draws per image, one per epoch; "auto": as many as the run has epochs
    positive_fraction: float = 0.5  # edge_biased only
    seed: int = 0  # mixed with each sample key by `image_seed`

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"sampling.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if isinstance(self.draws, str) and self.draws != "auto":
            raise ValueError(f"sampling.draws must be an integer or 'auto', got {self.draws!r}")
        names = ("pixels_per_image", "seed") if self.draws == "auto" else ("pixels_per_image", "draws", "seed")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"sampling.{name} must be an integer, got {value!r}")
        if self.pixels_per_image < 1:
            raise ValueError(f"sampling.pixels_per_image must be >= 1, got {self.pixels_per_image}")
        if self.draws != "auto" and self.draws < 1:
            raise ValueError(f"sampling.draws must be >= 1, got {self.draws}")
        f = self.positive_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) or not 0 <= f <= 1:
            raise ValueError(f"sampling.positive_fraction must be in [0, 1], got {f!r}")


def image_seed(base_seed: int, key: str) -> int:
    """Per-image seed in [0, 2**32) from the config seed and the sample key: independent of image order."""
    return zlib.crc32(f"{int(base_seed)}:{key}".encode("utf-8"))


def draw(strata: np.ndarray, config: SamplingConfig, seed: int) -> np.ndarray:
    """(K, N) int32 flat indices from the Numba kernel; rows unsorted (grouped by stratum).

    `seed` is the per-image seed (`image_seed`), not `config.seed`.
    """
    _check_draws(config)
    flat = _flatten(strata)
    _check_seed(seed)
    n_strata = _N_STRATA[config.strategy]
    out, counts = _draw_kernel(
        flat,
        n_strata,
        _MODE[config.strategy],
        config.pixels_per_image,
        config.draws,
        _positive_target(config),
        seed,
    )
    _check_counts(counts, strata.shape, config)  # the kernel returns no draws when this raises
    return out  # (K, N)


def draw_numpy(strata: np.ndarray, config: SamplingConfig, seed: int) -> np.ndarray:
    """Same contract as `draw`, in plain NumPy (np.random.default_rng(seed)): the tests' reference."""
    _check_draws(config)
    flat = _flatten(strata)
    _check_seed(seed)
    n_strata = _N_STRATA[config.strategy]
    values = flat.astype(np.int64)
    if config.strategy == "uniform":
        values = np.minimum(values, 0)
    # (H*W,) stratum per pixel: S = out of range, S + 1 = invalid
    strat = np.where(values >= 0, np.minimum(values, n_strata), n_strata + 1)
    counts = np.bincount(strat, minlength=n_strata + 2)[: n_strata + 1]  # (S + 1,)
    _check_counts(counts, strata.shape, config)
    counts = counts[:n_strata]  # (S,)

    n = config.pixels_per_image
    order = np.argsort(strat, kind="stable")  # (H*W,) pixel ids grouped by stratum
    starts = np.concatenate([[0], np.cumsum(counts)])  # (S + 1,)
    rng = np.random.default_rng(seed)
    out = np.empty((config.draws, n), np.int32)  # (K, N)
    for k in range(config.draws):
        quotas = _quotas_numpy(counts, n, config.strategy, _positive_target(config), seed, k)  # (S,)
        out[k] = np.concatenate(
            [rng.choice(order[starts[s] : starts[s + 1]], size=q, replace=False) for s, q in enumerate(quotas)]
        )
    return out


# --- checks shared by both implementations -------------------------------------------------------


def _flatten(strata: np.ndarray) -> np.ndarray:
    """(H*W,) view of the map (a copy only if it is not C-contiguous)."""
    strata = np.asarray(strata)
    if strata.ndim != 2:
        raise ValueError(f"strata must be a 2-D (H, W) map, got shape {strata.shape}")
    if not np.issubdtype(strata.dtype, np.integer) or strata.dtype == np.uint64:
        # uint64 mixed with int64 makes Numba compute in float64.
        raise ValueError(f"strata must be an integer map (int8..int64 or uint8..uint32), got dtype {strata.dtype}")
    if strata.size == 0:
        raise ValueError("strata map is empty")
    return np.ascontiguousarray(strata).reshape(-1)


def _check_draws(config: SamplingConfig) -> None:
    if config.draws == "auto":
        raise ValueError("sampling.draws='auto' is resolved by the sample stage; pass an integer here")


def _check_seed(seed: int) -> None:
    # np.random.seed (and so the kernel) accepts only [0, 2**32).
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _MASK32:
        raise ValueError(f"sampling seed must be an integer in [0, 2**32) (see image_seed), got {seed!r}")


def _check_counts(counts: np.ndarray, shape: tuple[int, ...], config: SamplingConfig) -> None:
    """Reject out-of-range strata and a sample larger than the image's valid pixels."""
    n_strata = _N_STRATA[config.strategy]
    if counts[n_strata] > 0:
        top = n_strata - 1
        raise ValueError(
            f"sampling.strategy={config.strategy!r} needs strata values in -1..{top} (< 0 = invalid); "
            f"{counts[n_strata]} pixels are above {top}"
        )
    n_valid = int(counts[:n_strata].sum())
    if config.pixels_per_image > n_valid:
        raise ValueError(
            f"sampling.pixels_per_image={config.pixels_per_image} exceeds this image's "
            f"{n_valid} valid pixels (map {shape[0]}x{shape[1]})"
        )


def _positive_target(config: SamplingConfig) -> int:
    """round(f * N), half up, computed once so both implementations agree."""
    return int(config.positive_fraction * config.pixels_per_image + 0.5)


# --- quota logic, NumPy twin ---------------------------------------------------------------------


def _hash32_numpy(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & np.uint64(_MASK32)
    x = (((x >> np.uint64(16)) ^ x) * np.uint64(0x45D9F3B)) & np.uint64(_MASK32)
    x = (((x >> np.uint64(16)) ^ x) * np.uint64(0x45D9F3B)) & np.uint64(_MASK32)
    return (x >> np.uint64(16)) ^ x


def _quotas_numpy(counts: np.ndarray, n: int, strategy: str, n_pos: int, seed: int, k: int) -> np.ndarray:
    """(S,) pixels per stratum for draw k, in closed form (the kernel iterates; tests compare them)."""
    counts = counts.astype(np.int64)
    if strategy == "uniform":
        return np.array([n], np.int64)
    if strategy == "edge_biased":
        neg = min(n - min(n_pos, int(counts[1])), int(counts[0]))
        return np.array([neg, n - neg], np.int64)  # positives fill what negatives can't
    # Water-filling: the level t is the largest with sum(min(c, t)) <= n; the rest goes one each,
    # in a per-draw hash order, to the classes that still have pixels above t.
    lo, hi = 0, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(counts, mid).sum() <= n else (lo, mid - 1)
    quotas = np.minimum(counts, lo)
    classes = np.arange(counts.size, dtype=np.uint64)
    h = _hash32_numpy(_hash32_numpy(np.array([seed])) ^ np.uint64(k))
    keys = (_hash32_numpy(h ^ classes) << np.uint64(8)) | classes  # (S,) unique: class id breaks ties
    above = np.flatnonzero(counts > lo)
    quotas[above[np.argsort(keys[above])][: n - int(quotas.sum())]] += 1
    return quotas


# --- Numba kernels -------------------------------------------------------------------------------
# Unsigned positions in the hot loops let Numba skip negative-index wraparound (about 2x faster).
# The kernel's mode argument picks the strategy, so one compilation per map dtype serves all three.


@numba.njit(cache=True, nogil=True)
def _compact(flat, mode):
    """Uniform / edge maps in one pass: pixel ids of stratum s at buckets[starts[s]:starts[s] +
    counts[s]], and counts (S + 1,) whose slot S counts values >= S (rejected by the caller).

    Each stratum gets room for every pixel, so there is no counting pass first; the writes are
    branch-free (always write, advance only past a member), so noisy maps cost no mispredictions.
    """
    n = flat.size
    if mode == 0:
        buckets = np.empty(n + 1, np.int32)  # (H*W + 1,)
        a = np.uint64(0)
        for i in range(n):
            buckets[a] = i
            a += np.uint64(flat[i] >= 0)
        return buckets, np.array([0, n + 1]), np.array([np.int64(a), 0])
    n_over = 0
    for i in range(n):
        n_over += flat[i] > 1  # its own loop: this vectorises, and in the loop below it costs 30%
    buckets = np.empty(2 * (n + 1), np.int32)  # (2 * (H*W + 1),) negatives, then positives
    a = np.uint64(0)
    b = np.uint64(n + 1)
    for i in range(n):
        v = flat[i]
        buckets[a] = i
        a += np.uint64(v == 0)
        buckets[b] = i
        b += np.uint64(v == 1)
    return buckets, np.array([0, n + 1, 2 * (n + 1)]), np.array([np.int64(a), np.int64(b) - n - 1, n_over])


@numba.njit(cache=True, nogil=True)
def _runs(flat, n_strata):
    """Label maps come in runs: the run starts (R + 1,) and pixels per class (S + 1,), slot S
    counting labels >= S. Counting whole runs avoids a read-modify-write per pixel."""
    n = flat.size
    run_starts = np.empty(n + 1, np.int64)  # (R + 1,) once trimmed; untouched pages cost nothing
    run_starts[0] = 0
    n_runs = np.uint64(1)
    prev = flat[0]
    for i in range(1, n):
        v = flat[i]
        run_starts[n_runs] = i  # branch-free: kept only where the label changes
        n_runs += np.uint64(v != prev)
        prev = v
    run_starts[n_runs] = n
    run_starts = run_starts[: n_runs + np.uint64(1)]
    counts = np.zeros(n_strata + 1, np.int64)
    for r in range(run_starts.size - 1):
        v = flat[run_starts[r]]
        if v >= 0:
            counts[min(v, n_strata)] += run_starts[r + 1] - run_starts[r]
    return run_starts, counts


@numba.njit(cache=True, nogil=True)
def _bucket_runs(flat, run_starts, counts):
    """Pixel ids grouped by class: class s at buckets[starts[s]:starts[s] + counts[s]]."""
    n_strata = counts.size
    starts = np.zeros(n_strata + 1, np.int64)  # (S + 1,)
    for s in range(n_strata):
        starts[s + 1] = starts[s] + counts[s] + _SLACK
    buckets = np.empty(starts[n_strata], np.int32)  # (n_valid + S * slack,)
    # A run is a block of consecutive ids: copy it in fixed-size chunks (the slack absorbs the
    # overshoot, the class's next run overwrites it).
    fill = starts[:n_strata].copy()
    for r in range(run_starts.size - 1):
        lo = run_starts[r]
        hi = run_starts[r + 1]
        v = flat[lo]
        if v >= 0:
            p = np.uint64(fill[v])
            for i in range(lo, hi, _SLACK):
                for j in range(_SLACK):
                    buckets[p + np.uint64(j)] = i + j
                p += np.uint64(_SLACK)
            fill[v] += hi - lo
    return buckets, starts


@numba.njit(cache=True, nogil=True)
def _hash32(x):
    x = x & 0xFFFFFFFF
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    return (x >> 16) ^ x


@numba.njit(cache=True, nogil=True)
def _stratified_quotas(counts, n, seed, k, quotas, keys):
    """Quotas (S,) for draw k: equal shares, the shortfall of small classes redistributed in rounds."""
    quotas[:] = 0
    remaining = n
    while remaining > 0:
        active = 0
        for s in range(counts.size):
            active += quotas[s] < counts[s]
        share = remaining // active  # active > 0 since n <= the valid pixels
        if share == 0:
            break
        for s in range(counts.size):
            add = min(share, counts[s] - quotas[s])
            quotas[s] += add
            remaining -= add
    if remaining > 0:
        # Fewer pixels left than classes with room: one each, in a per-draw hash order.
        h = _hash32(_hash32(np.int64(seed)) ^ k)
        m = 0
        for s in range(counts.size):
            if quotas[s] < counts[s]:
                keys[m] = (_hash32(h ^ s) << 8) | s
                m += 1
        order = np.argsort(keys[:m])
        for i in range(remaining):
            quotas[keys[order[i]] & 0xFF] += 1


@numba.njit(cache=True, nogil=True)
def _randbelow(c):
    """Uniform integer in [0, c), c < 2**31: Lemire's multiply-shift with rejection (unbiased)."""
    m = np.random.randint(0, 1 << 32) * c
    low = m & 0xFFFFFFFF
    if low < c:
        threshold = ((1 << 32) - c) % c
        while low < threshold:
            m = np.random.randint(0, 1 << 32) * c
            low = m & 0xFFFFFFFF
    return m >> 32


@numba.njit(cache=True, nogil=True)
def _draw_kernel(flat, n_strata, mode, n, n_draws, n_pos, seed):
    """(K, N) int32 draws and (S + 1,) counts; no draws (0, N) when the counts fail the caller's check.

    Buckets pixel ids by stratum once (O(H*W)), then runs a partial Fisher-Yates per stratum per
    draw (O(N)).
    """
    if mode == 1:
        run_starts, counts_all = _runs(flat, n_strata)
    else:
        buckets, starts, counts_all = _compact(flat, mode)
    counts = counts_all[:n_strata]  # (S,)
    if counts_all[n_strata] > 0 or counts.sum() < n:
        return np.empty((0, n), np.int32), counts_all
    if mode == 1:
        buckets, starts = _bucket_runs(flat, run_starts, counts)

    quotas = np.zeros(n_strata, np.int64)  # (S,)
    if mode == 0:
        quotas[0] = n
    elif mode == 2:
        neg = min(n - min(n_pos, counts[1]), counts[0])
        quotas[0] = neg
        quotas[1] = n - neg  # positives fill what negatives can't
    keys = np.empty(n_strata, np.int64)

    np.random.seed(seed)  # Numba's own generator: deterministic per call
    out = np.empty((n_draws, n), np.int32)  # (K, N)
    for k in range(n_draws):
        if mode == 1:
            _stratified_quotas(counts, n, seed, k, quotas, keys)
        j = 0
        for s in range(n_strata):
            lo = starts[s]
            c = counts[s]
            # Shuffling on from where the previous draw left the bucket is still a uniform sample.
            for i in range(quotas[s]):
                r = lo + i + _randbelow(c - i)
                t = buckets[lo + i]
                buckets[lo + i] = buckets[r]
                buckets[r] = t
                out[k, j] = buckets[lo + i]
                j += 1
    return out, counts_all

"""Measuring helpers shared by the benches: device names, peak memory, one process per measurement.

Peak memory is the CUDA caching allocator's high-water mark on a GPU. On the CPU it is the
process's own accounting: the peak resident set (``ru_maxrss``) minus the resident set when the
measurement began. That needs a fresh process per measurement (``ru_maxrss`` never goes down), so
`in_child` runs a function in a spawned interpreter and returns its result.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from pixelnet.device import cpu_model


def describe_device(device: torch.device) -> str:
    """A human name for the device, e.g. 'cuda: NVIDIA H100 80GB HBM3' or 'cpu: Intel(R) Xeon(R) … (2 threads)'."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model()} ({torch.get_num_threads()} threads)"


def _proc_kib(path: str, field: str) -> int | None:
    """A "<field>: <n> kB" line of a Linux /proc file, in KiB; None where there is no such file or line."""
    try:
        with open(path) as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith(f"{field}:")), None)
    except OSError:
        return None


def rss_mb() -> float:
    """Current resident set in MiB (Linux /proc; falls back to the peak elsewhere)."""
    kib = _proc_kib("/proc/self/status", "VmRSS")
    return kib / 1024 if kib is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def available_mb() -> float:
    """Memory the OS could give us now (MemAvailable), in MiB."""
    kib = _proc_kib("/proc/meminfo", "MemAvailable")
    return kib / 1024 if kib is not None else float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 2**20


def limit_address_space(extra_mb: float) -> None:
    """Cap this process's address space at its current size plus extra_mb, so an allocation beyond the
    budget fails with an error we can report instead of the kernel's OOM killer ending the machine's work."""
    vm = _proc_kib("/proc/self/status", "VmSize")
    if vm is None:
        return  # no /proc: no cap (an allocation beyond the budget then fails however the OS fails it)
    cap = vm * 1024 + int(extra_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, MemoryError, or the CPU allocator's refusal under limit_address_space."""
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a fresh spawned interpreter (fn and args must pickle); its exceptions re-raise here."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def timed_repeats(step: Callable[[], None], sync: Callable[[], None], warmup: int, repeats: int,
                  max_seconds: float, min_repeats: int = 3) -> list[float]:
    """Seconds per call of step after `warmup` untimed calls; stops early after max_seconds once
    min_repeats are in. `sync` waits for queued device work, so each time covers the whole step."""
    for _ in range(warmup):
        step()
    sync()
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_repeats and time.perf_counter() - started > max_seconds:
            break
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))

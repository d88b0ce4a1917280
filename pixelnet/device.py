"""The one place a device name becomes a torch.device, and what the CPU can do natively.

`resolve_device` serves training, prediction, the Python API and the benchmarks. `cpu_bf16_native`
says whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16), which is where bf16
autocast trains faster than fp32 (`train.precision: auto`; `pixelnet bench train` measures it).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


def resolve_device(name: "str | torch.device") -> "torch.device":
    """'auto' (CUDA when there is one), 'cpu', 'cuda' or 'cuda:N'; clear errors otherwise."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name}: CUDA is not available on this machine")
    return torch.device(name)


def _cpuinfo() -> str:
    """/proc/cpuinfo's text, or "" where there is none (macOS, Windows) or it cannot be read."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """True when this CPU multiplies bf16 in hardware (x86 AMX or AVX512-BF16)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return bool(cpu_flags() & set(BF16_FLAGS))


def cpu_model() -> str:
    """The CPU's model name, as lscpu and the reports write it."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()

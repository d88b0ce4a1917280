"""Shipped models: trained weights that come with the project, found by name.

Each model is a folder ``pixelnet/zoo/<name>/`` holding

* ``model.pt``: the weights (floating tensors stored as float16 where that is exact enough to keep
  them finite, else float32; they load into a float32 model), the model's config, its task, the
  training summary and the machine it was shipped from;
* ``README.md``: its model card (what it is, the command that reproduces it, its metrics).

``pixelnet predict --model <name>`` and ``--model <path>`` both go through `resolve`. A model is
shipped by the `ship` stage of a recipe (``recipes/<name>/dvc.yaml``), which writes ``model.pt``
from the train stage's checkpoint with `ship`; the recipe's evaluate stages then score that very
file, so the card's numbers are the shipped weights' numbers.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from pixelnet.device import cpu_bf16_native, cpu_flags, cpu_model

if TYPE_CHECKING:
    import torch

# torch is imported inside machine() and ship() only: `resolve` serves `pixelnet predict`, which
# checks its inputs (pixelnet.zoo.header) before paying the seconds that importing torch takes.

ZOO = Path(__file__).resolve().parent
WEIGHTS = "model.pt"


def names() -> list[str]:
    """The shipped models' names (folders of pixelnet/zoo holding a model.pt)."""
    return sorted(d.name for d in ZOO.iterdir() if (d / WEIGHTS).is_file())


def resolve(model: str | Path) -> Path:
    """A checkpoint path from a shipped model's name or a path to a model.pt; errors say which exist."""
    path = Path(model)
    if path.is_file():
        return path
    if str(model) in names():
        return ZOO / str(model) / WEIGHTS
    if path.exists():
        raise ValueError(f"--model {model}: {path} is not a file (give a model.pt or a shipped model's name)")
    shipped = ", ".join(names()) or "none"
    raise FileNotFoundError(f"--model {model}: no such file, and no shipped model of that name (shipped: {shipped})")


def machine() -> dict:
    """The machine shipping the weights (the train summary names the one that trained them): CPU, AMX, cores, OS, torch."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "bf16_native": cpu_bf16_native(), "amx": "amx_bf16" in cpu_flags(), "cores": cores,
            "gpu": gpu, "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """float16 when every value stays finite (and nonzero values stay nonzero), else the tensor as it is."""
    import torch

    if not tensor.is_floating_point() or tensor.dtype == torch.float16:
        return tensor
    half = tensor.half()
    if not torch.isfinite(half).all() or ((half == 0) & (tensor != 0)).any():
        return tensor
    return half


def ship(checkpoint: Path, out: Path) -> dict:
    """Write the weights of a train-stage `checkpoint` (model.pt) as a shipped model at `out`.

    Keeps the model, its config, task, classes and training summary; drops nothing a prediction
    needs and everything it does not (optimizer, RNG, logs). Returns a short description.
    """
    import torch

    from pixelnet.model.pixelnet import load_checkpoint

    state = load_checkpoint(Path(checkpoint))
    if "task" not in state:
        raise ValueError(f"{checkpoint}: not a train-stage model.pt (it names no task)")
    weights = {k: _compact(v) for k, v in state["model"].items()}
    payload = {"model": weights, "model_config": state["model_config"], "out_channels": state["out_channels"],
               "task": state["task"], "classes": state.get("classes"), "step": state.get("step"),
               "summary": state.get("summary"), "machine": machine()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A fixed temp name, not pixelnet.atomic's random one: torch.save records the file's stem inside
    # the archive, so a random name would change the bytes (and re-trigger the evaluate stages).
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    params = sum(v.numel() for v in weights.values() if v.is_floating_point())
    return {"out": str(out), "parameters": params, "bytes": out.stat().st_size, "task": state["task"],
            "float16_tensors": sum(v.dtype == torch.float16 for v in weights.values())}

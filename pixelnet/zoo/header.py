"""A checkpoint's plain-python entries (task, model config, classes), read without importing torch.

`pixelnet predict` checks every input against the model before it starts torch, which takes
seconds to import; for that it needs the model's task and taps, which live in the checkpoint.
A ``torch.save`` file is a zip archive whose ``<archive>/data.pkl`` is a pickle: the tensors in it
are persistent ids pointing at storages in ``<archive>/data/`` (``persistent_load``), rebuilt by
functions from ``torch``. Unpickling it with a stand-in for every torch object and for the
storages leaves the plain entries (``model_config``, ``task``, ``out_channels``, ``classes``,
``summary``) as they were saved; the tensors come back as `Stub` objects, never to be used.

Only a few modules are imported for real (builtins, collections, copyreg, codecs, numpy: what a
train-stage checkpoint's RNG state and summary hold); anything else is a `Stub` too, so reading a
header imports nothing new and runs no code from the file beyond building those objects.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

# Image px per map px of each tap, as in pixelnet.model.trunk.STRIDES (which needs torch);
# tests/test_predict_inputs.py checks that the two agree.
STRIDES = {"conv1_2": 1, "conv2_2": 2, "conv3_3": 4, "conv4_3": 8, "conv5_3": 16, "fc7": 32}
_REAL_MODULES = ("builtins", "collections", "copyreg", "_codecs", "codecs", "numpy")


class Stub:
    """Stand-in for a torch object (a tensor, a storage, a dtype...) in a header: accepts anything."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


def _stub_class(module: str, name: str) -> type:
    return type(name, (Stub,), {"__module__": f"stub.{module}"})


class _HeaderUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("torch.torch_version", "TorchVersion"):
            return str  # a str subclass: the version string itself
        if module.split(".")[0] in _REAL_MODULES:
            return super().find_class(module, name)
        return _stub_class(module, name)  # a class, not a function: NEWOBJ needs a type

    def persistent_load(self, pid) -> Stub:
        return Stub()  # a tensor storage: its bytes stay in the archive


def read_header(path: Path) -> dict:
    """The dict a checkpoint was saved from, tensors replaced by `Stub`s; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise ValueError("no <archive>/data.pkl inside")
            data = archive.read(pickles[0])
        payload = _HeaderUnpickler(io.BytesIO(data)).load()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, pickle.UnpicklingError, AttributeError,
            ImportError, IndexError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a model.pt written by pixelnet (torch.save zip archive): {reason}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model_config"), dict):
        raise ValueError(f"{path}: not a pixelnet model.pt (it holds no model_config)")
    return payload


def deepest_stride(header: dict, where: Path | str = "model") -> int:
    """Image px per map px of the deepest tapped layer: the smallest side the trunk accepts."""
    layers = header["model_config"].get("layers")
    unknown = [t for t in layers or () if t not in STRIDES]
    if not layers or unknown:
        raise ValueError(f"{where}: model_config.layers {list(layers or ())!r} names no known taps "
                         f"(allowed: {list(STRIDES)})")
    return max(STRIDES[t] for t in layers)

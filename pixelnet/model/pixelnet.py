"""PixelNet: dense conv trunk, sparse hypercolumns at sampled pixels, a per-pixel head.

Each tap is read at its stride-true positions (see `pixelnet.model.hypercolumn`); the strides come
from the trunk's taps (``PixelNet.strides``), never from the ratio of image to map size.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from pixelnet.model.head import HEAD_INITS, build_head, masked_batch_norm
from pixelnet.model.hypercolumn import GATHERS, first_layer_at, sample_hypercolumns
from pixelnet.model.trunk import LAYERS, VGGTrunk

NORMS = ("batch", "group")

# ImageNet statistics: the trunk sees normalised RGB whatever its initialisation.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    layers: tuple[str, ...] = LAYERS
    batch_norm: bool = True          # VGG-16 with batch norm (vgg16_bn); needed to train from scratch
    norm: str = "batch"              # with batch_norm: "batch" (vgg16_bn) or "group" (GroupNorm: per image, batch-independent)
    norm_groups: int = 4             # GroupNorm groups (fewer where a layer's channels do not divide)
    width: float = 1.0               # channel multiplier; 1.0 is VGG-16 itself
    head: str = "mlp"                # "mlp" or "linear"
    hidden: tuple[int, ...] = (4096, 4096)
    dropout: float = 0.5
    head_batch_norm: bool = False    # batch-normalise hypercolumns before the head (Table 2)
    init: str = "scratch"            # "scratch", "imagenet", or a checkpoint path
    gather: str = "bag"              # hypercolumn gather: "bag" (fused embedding_bag) or "grid_sample"
    project_first: bool = True       # deep taps through the head's first layer before sampling (exact, fewer FLOPs)
    # Head initialisation. The paper: Gaussian σ = 1e-3 for every layer trained from scratch, 5e-3
    # for the last fc layer of the surface-normal MLP. "gaussian": every head Linear N(0, head_std²);
    # "kaiming": hidden layers He-normal. The output layer is N(0, head_std_last²) either way; biases 0.
    head_init: str = "gaussian"
    head_std: float = 1e-3
    head_std_last: float = 1e-3

    def __post_init__(self) -> None:
        unknown = [layer for layer in self.layers if layer not in LAYERS]
        if unknown or not self.layers:
            raise ValueError(f"model.layers: unknown {unknown or 'empty list'}; allowed: {list(LAYERS)}")
        if self.norm not in NORMS:
            raise ValueError(f"model.norm must be one of {list(NORMS)}, got {self.norm!r}")
        if isinstance(self.norm_groups, bool) or not isinstance(self.norm_groups, int) or self.norm_groups < 1:
            raise ValueError(f"model.norm_groups must be an integer >= 1, got {self.norm_groups!r}")
        if self.norm == "group" and self.init == "imagenet":
            raise ValueError("model.norm: group has no ImageNet weights (torchvision's are VGG-16 and VGG-16-BN); "
                             "use model.norm=batch or model.init=scratch")
        if self.head not in ("mlp", "linear"):
            raise ValueError(f"model.head must be 'mlp' or 'linear', got {self.head!r}")
        if not 0 < self.width <= 4:
            raise ValueError(f"model.width must be in (0, 4], got {self.width}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"model.hidden sizes must be >= 1, got {list(self.hidden)}")
        if self.gather not in GATHERS:
            raise ValueError(f"model.gather must be one of {list(GATHERS)}, got {self.gather!r}")
        if self.init not in ("scratch", "imagenet") and not self.init.endswith(".pt"):
            raise ValueError(f"model.init must be 'scratch', 'imagenet' or a path to a .pt checkpoint, got {self.init!r}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"model.head_init must be one of {list(HEAD_INITS)}, got {self.head_init!r}")
        for name in ("head_std", "head_std_last"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"model.{name} must be a positive number, got {value!r}")


class PixelNet(nn.Module):
    def __init__(self, config: ModelConfig, out_channels: int) -> None:
        super().__init__()
        self.config = config
        self.out_channels = out_channels
        self.trunk = VGGTrunk(config.layers, batch_norm=config.batch_norm, width=config.width, norm=config.norm,
                              norm_groups=config.norm_groups)
        self.head = build_head(
            self.trunk.out_channels, out_channels, config.head, config.hidden, config.dropout, config.head_batch_norm,
            config.head_init, config.head_std, config.head_std_last,
        )
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) uint8 or float in [0, 255] -> the tapped maps, shallow to deep.

        The normalised input keeps the images' memory format, so a channels_last batch runs the
        trunk channels_last (the fast layout for bf16 convolutions on GPUs).
        """
        x = (images.float() - self.mean) / self.std
        return list(self.trunk(x).values())

    @property
    def strides(self) -> tuple[int, ...]:
        """Each tapped map's stride in image pixels, shallow to deep (``trunk.STRIDES``)."""
        return self.trunk.strides

    def head_at(
        self, features: list[torch.Tensor], coords: torch.Tensor, cache: dict | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predictions at (B, N, 2) pixel coordinates -> (B, N, K).

        With `project_first` (and the bag gather, and no batch norm before the first layer) the
        first layer runs tap by tap through `first_layer_at`; `cache` keeps its projections for
        further calls on the same features. `valid` (B, N) bool marks the real samples of a padded
        batch (None: all are real); it matters only to a head batch norm in training mode, whose
        statistics and running-stat updates then come from the valid rows alone. Padded rows get
        finite outputs that mean nothing (their loss weight is zero).
        """
        b, n = coords.shape[:2]
        first = self.head[0]
        if self.config.project_first and self.config.gather == "bag" and isinstance(first, nn.Linear):
            hidden = first_layer_at(features, coords, self.strides, first.weight, first.bias, cache)  # (B, N, H1)
            return self.head[1:](hidden.reshape(b * n, -1)).view(b, n, -1)  # (B, N, K)
        columns = sample_hypercolumns(features, coords, self.strides, self.config.gather).reshape(b * n, -1)  # (BN, C)
        if valid is not None and isinstance(first, nn.BatchNorm1d) and (first.training or first.running_mean is None):
            if tuple(valid.shape) != (b, n):
                raise ValueError(f"valid must be (B, N) = {(b, n)} like coords, got {tuple(valid.shape)}")
            normed = masked_batch_norm(first, columns, valid.reshape(b * n))  # (BN, C)
            return self.head[1:](normed).view(b, n, -1)  # (B, N, K)
        return self.head(columns).view(b, n, -1)  # (B, N, K)

    def forward(self, images: torch.Tensor, coords: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) images, (B, N, 2) pixel coords (x, y), optional (B, N) bool valid -> (B, N, K)."""
        return self.head_at(self.features(images), coords, valid=valid)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_model(config: ModelConfig, out_channels: int, say: Callable[[str], None] | None = None) -> PixelNet:
    """A PixelNet initialised as config.init says: "scratch" (Gaussian trunk, `head_init` head),
    "imagenet" (torchvision's VGG-16 or VGG-16-BN trunk as `batch_norm` says) or a checkpoint path
    (see `init_from_checkpoint`). `say` gets the one line describing a non-trivial initialisation
    (None: stderr)."""
    say = say or _stderr
    model = PixelNet(config, out_channels)
    if config.init == "scratch":
        model.trunk.init_gaussian()
    elif config.init == "imagenet":
        model.trunk.init_gaussian()  # fc6/fc7 stay Gaussian when not tapped from ImageNet
        model.trunk.load_imagenet(config.batch_norm)
        if config.batch_norm:
            say("model.init=imagenet: loaded torchvision's VGG16-BN ImageNet weights (vgg16_bn IMAGENET1K_V1) because "
                "model.batch_norm is true; the paper fine-tunes plain VGG-16 (model.batch_norm: false)")
    else:
        model.trunk.init_gaussian()
        init_from_checkpoint(model, Path(config.init), say)
    return model


def _describe(state: dict, prefix: str) -> str:
    """'Linear 100->8' or 'BatchNorm1d 100' for the module whose state entries start with prefix."""
    weight = state.get(prefix + "weight")
    if prefix + "running_mean" in state:
        return f"BatchNorm1d {state[prefix + 'running_mean'].shape[0]}"
    if weight is not None and weight.dim() == 2:
        return f"Linear {weight.shape[1]}->{weight.shape[0]}"
    return "?"


def _head_modules(state: dict) -> list[tuple[str, str]]:
    """[(prefix 'head.i.', 'bn' | 'linear')] of a state dict's head, in order."""
    ids = sorted({int(k.split(".")[1]) for k in state if k.startswith("head.")})
    return [(f"head.{i}.", "bn" if f"head.{i}.running_mean" in state else "linear") for i in ids]


def init_from_checkpoint(model: PixelNet, path: Path, say: Callable[[str], None]) -> None:
    """Copy a checkpoint's trunk into `model`, and those head layers whose shapes fit; the rest stay fresh.

    The trunk must fit: every tensor of the model's trunk must be in the checkpoint with the same
    shape (a different width, batch_norm or a missing fc6/fc7 fails, naming the first key that does
    not fit). Checkpoint trunk tensors the model does not use (fc6/fc7 when fc7 is not tapped) are
    skipped. Head layers are paired by kind and order (the batch norm with the batch norm, the i-th
    Linear with the i-th Linear), so a segmentation head initialises from a normals head except its
    output layer (the paper's Tables 5/6). One line through `say` tells what was loaded and what not.
    """
    payload = load_checkpoint(path)
    saved = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(saved, dict):
        raise RuntimeError(f"model.init={path}: not a PixelNet checkpoint (no 'model' state dict)")
    own = model.state_dict()
    new = dict(own)
    trunk = [k for k in own if k.startswith("trunk.")]
    for k in trunk:
        if k not in saved or tuple(saved[k].shape) != tuple(own[k].shape):
            found = "missing" if k not in saved else f"{tuple(saved[k].shape)} in the checkpoint"
            raise RuntimeError(
                f"model.init={path}: the checkpoint's trunk does not fit this model: {k} is {tuple(own[k].shape)} here, "
                f"{found} (different model.layers, model.width or model.batch_norm?)")
        new[k] = saved[k]
    unused = sorted({k.split(".")[1] for k in saved if k.startswith("trunk.") and k not in own})
    mine, theirs = _head_modules(own), _head_modules(saved)
    loaded, fresh = [], []
    for kind in ("bn", "linear"):
        pairs = list(zip([p for p, k in mine if k == kind], [p for p, k in theirs if k == kind] + [None] * len(mine)))
        for prefix, other in pairs:
            keys = [k for k in own if k.startswith(prefix)]
            what = f"{prefix[:-1]} ({_describe(own, prefix)})"
            if other is None:
                fresh.append(f"{what}: none in the checkpoint")
                continue
            theirs_keys = [other + k[len(prefix):] for k in keys]
            if all(t in saved and tuple(saved[t].shape) == tuple(own[k].shape) for k, t in zip(keys, theirs_keys)):
                for k, t in zip(keys, theirs_keys):
                    new[k] = saved[t]
                loaded.append(what)
            else:
                fresh.append(f"{what}: the checkpoint's {other[:-1]} is {_describe(saved, other)}")
    model.load_state_dict(new)
    line = f"model.init={path}: loaded the trunk ({len(trunk)} tensors)"
    if unused:
        line += f" (checkpoint trunk parts unused here: {', '.join(unused)})"
    line += f"; head layers loaded: {', '.join(loaded) or 'none'}; fresh: {'; '.join(fresh) or 'none'}"
    say(line)


def save_checkpoint(path: Path, model: PixelNet, extra: dict | None = None) -> None:
    """Atomic write: temp file then rename, so a kill never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "model_config": asdict(model.config),
        "out_channels": model.out_channels,
        **(extra or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (run the train stage first)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError) as err:
        raise RuntimeError(f"{path}: unreadable checkpoint ({err})") from err


def config_from_checkpoint(state: dict) -> ModelConfig:
    """A checkpoint's model config, keys added since it was saved at their defaults; init is scratch
    (the weights come from the checkpoint, never from ImageNet or another file)."""
    cfg = dict(state["model_config"])
    cfg["layers"], cfg["hidden"], cfg["init"] = tuple(cfg["layers"]), tuple(cfg["hidden"]), "scratch"
    return ModelConfig(**cfg)


def model_from_checkpoint(path: Path) -> tuple[PixelNet, dict]:
    """Rebuild the trained model stored by save_checkpoint; returns it in eval mode with the payload."""
    state = load_checkpoint(path)
    model = PixelNet(config_from_checkpoint(state), state["out_channels"])
    model.load_state_dict(state["model"])
    return model.eval(), state

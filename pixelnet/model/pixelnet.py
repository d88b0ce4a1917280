"""PixelNet: dense conv trunk, sparse hypercolumns at sampled pixels, a per-pixel head."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from pixelnet.model.head import build_head
from pixelnet.model.hypercolumn import GATHERS, first_layer_at, sample_hypercolumns
from pixelnet.model.trunk import LAYERS, VGGTrunk

# ImageNet statistics: the trunk sees normalised RGB whatever its initialisation.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    layers: tuple[str, ...] = LAYERS
    batch_norm: bool = True          # VGG-16 with batch norm (vgg16_bn); needed to train from scratch
    width: float = 1.0               # channel multiplier; 1.0 is VGG-16 itself
    head: str = "mlp"                # "mlp" or "linear"
    hidden: tuple[int, ...] = (4096, 4096)
    dropout: float = 0.5
    head_batch_norm: bool = False    # batch-normalise hypercolumns before the head (Table 2)
    init: str = "scratch"            # "scratch", "imagenet", or a checkpoint path
    gather: str = "bag"              # hypercolumn gather: "bag" (fused embedding_bag) or "grid_sample"
    project_first: bool = True       # deep taps through the head's first layer before sampling (exact, fewer FLOPs)

    def __post_init__(self) -> None:
        unknown = [layer for layer in self.layers if layer not in LAYERS]
        if unknown or not self.layers:
            raise ValueError(f"model.layers: unknown {unknown or 'empty list'}; allowed: {list(LAYERS)}")
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


class PixelNet(nn.Module):
    def __init__(self, config: ModelConfig, out_channels: int) -> None:
        super().__init__()
        self.config = config
        self.out_channels = out_channels
        self.trunk = VGGTrunk(config.layers, batch_norm=config.batch_norm, width=config.width)
        self.head = build_head(
            self.trunk.out_channels, out_channels, config.head, config.hidden, config.dropout, config.head_batch_norm
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

    def head_at(
        self, features: list[torch.Tensor], coords: torch.Tensor, image_size: tuple[int, int], cache: dict | None = None
    ) -> torch.Tensor:
        """Predictions at (B, N, 2) pixel coordinates -> (B, N, K).

        With `project_first` (and the bag gather, and no batch norm before the first layer) the
        first layer runs tap by tap through `first_layer_at`; `cache` keeps its projections for
        further calls on the same features.
        """
        b, n = coords.shape[:2]
        first = self.head[0]
        if self.config.project_first and self.config.gather == "bag" and isinstance(first, nn.Linear):
            hidden = first_layer_at(features, coords, image_size, first.weight, first.bias, cache)  # (B, N, H1)
            return self.head[1:](hidden.reshape(b * n, -1)).view(b, n, -1)  # (B, N, K)
        columns = sample_hypercolumns(features, coords, image_size, self.config.gather)  # (B, N, C)
        return self.head(columns.reshape(b * n, -1)).view(b, n, -1)  # (B, N, K)

    def forward(self, images: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.head_at(self.features(images), coords, tuple(images.shape[-2:]))


def build_model(config: ModelConfig, out_channels: int) -> PixelNet:
    """A PixelNet initialised as config.init says."""
    model = PixelNet(config, out_channels)
    if config.init == "scratch":
        model.trunk.init_gaussian()
    elif config.init == "imagenet":
        model.trunk.init_gaussian()  # fc6/fc7 stay Gaussian when not tapped from ImageNet
        model.trunk.load_imagenet(config.batch_norm)
    else:
        path = Path(config.init)
        state = load_checkpoint(path)
        missing = model.load_state_dict(state["model"], strict=False)
        if missing.missing_keys and all(k.startswith("head.") for k in missing.missing_keys) is False:
            raise RuntimeError(f"{path}: checkpoint does not fit model (missing {missing.missing_keys[:3]}...)")
    return model


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


def model_from_checkpoint(path: Path) -> tuple[PixelNet, dict]:
    """Rebuild the trained model stored by save_checkpoint; returns it in eval mode with the payload."""
    state = load_checkpoint(path)
    cfg = dict(state["model_config"])
    cfg["layers"], cfg["hidden"], cfg["init"] = tuple(cfg["layers"]), tuple(cfg["hidden"]), "scratch"
    model = PixelNet(ModelConfig(**cfg), state["out_channels"])
    model.load_state_dict(state["model"])
    return model.eval(), state

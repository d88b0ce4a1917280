"""VGG-16 trunk from torchvision with fc6/fc7 as convolutions, returning the tapped layers by name.

The conv layers are torchvision's own (``torchvision.models.vgg.make_layers`` over configuration
"D"), so ImageNet weights load unchanged. fc6 becomes a 7×7 convolution with padding 3 (the
paper's footnote: it keeps conv-7 spatially aligned) and fc7 a 1×1 convolution. ``width`` scales
every channel count for CPU-sized runs; 1.0 is the real VGG-16. With ``batch_norm`` the convolutions
are normalised by batch norm (vgg16_bn), or with ``norm="group"`` by GroupNorm in the same places,
whose statistics come from each image alone, so what one image computes never depends on the others
in its batch (nor on how many there are: the one-image batches of the ablations' Table 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import vgg

LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "fc7")
STRIDES = {"conv1_2": 1, "conv2_2": 2, "conv3_3": 4, "conv4_3": 8, "conv5_3": 16, "fc7": 32}  # image px per map px
_VGG16 = vgg.cfgs["D"]  # [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _scaled(cfg: Sequence[int | str], width: float) -> list[int | str]:
    return [c if c == "M" else max(4, round(int(c) * width)) for c in cfg]


class VGGTrunk(nn.Module):
    """Dense VGG-16 features; ``forward`` returns {tap name: (B, C, h, w)} for the requested taps."""

    def __init__(self, taps: Sequence[str], batch_norm: bool = True, width: float = 1.0, norm: str = "batch",
                 norm_groups: int = 4) -> None:
        super().__init__()
        unknown = [t for t in taps if t not in LAYERS]
        if unknown or not taps:
            raise ValueError(f"model.layers: unknown or empty {unknown or list(taps)}; allowed: {list(LAYERS)}")
        self.taps = tuple(t for t in LAYERS if t in taps)  # shallow to deep
        self.strides = tuple(STRIDES[t] for t in self.taps)  # image px per map px, tap by tap
        cfg = _scaled(_VGG16, width)
        self.features = vgg.make_layers(cfg, batch_norm=batch_norm)
        if batch_norm and norm == "group":
            for i, layer in enumerate(self.features):
                if isinstance(layer, nn.BatchNorm2d):  # same place and parameter names, no running statistics
                    channels = layer.num_features
                    self.features[i] = nn.GroupNorm(math.gcd(norm_groups, channels), channels)
        # Index of the ReLU that ends each block's last conv, e.g. conv3_3 -> position in features.
        self._tap_index: dict[str, int] = {}
        block, conv, last = 1, 0, -1
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d):
                self._tap_index[f"conv{block}_{conv}"] = last
                block, conv = block + 1, 0
            elif isinstance(layer, nn.Conv2d):
                conv += 1
            elif isinstance(layer, nn.ReLU):
                last = i
        channels = [c for c in cfg if c != "M"]
        fc = max(8, round(4096 * width))
        self.channels = {f"conv{b}_{n}": channels[sum((2, 2, 3, 3, 3)[: b - 1]) + n - 1]
                         for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))}
        self.channels["fc7"] = fc
        self.use_fc = "fc7" in self.taps
        if self.use_fc:
            self.fc6 = nn.Conv2d(int(channels[-1]), fc, kernel_size=7, padding=3)
            self.fc7 = nn.Conv2d(fc, fc, kernel_size=1)
            self.fc_act = nn.ReLU(inplace=True)
        # Run the feature stack only as deep as the deepest tap needs.
        deepest = self.taps[-1]
        self._stop = len(self.features) if self.use_fc else self._tap_index[deepest] + 1
        self.out_channels = sum(self.channels[t] for t in self.taps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        wanted = {self._tap_index[t]: t for t in self.taps if t != "fc7"}
        for i in range(self._stop):
            x = self.features[i](x)
            if i in wanted:
                out[wanted[i]] = x
        if self.use_fc:
            x = self.fc_act(self.fc6(x))
            out["fc7"] = self.fc_act(self.fc7(x))
        return {t: out[t] for t in self.taps}

    def init_gaussian(self) -> None:
        """Tabula rasa: zero-mean Gaussian weights (He scaling keeps deep from-scratch nets trainable)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def load_imagenet(self, batch_norm: bool) -> None:
        """Copy torchvision's ImageNet VGG-16 weights; needs the weights file in the torch hub cache or network."""
        weights = vgg.VGG16_BN_Weights.IMAGENET1K_V1 if batch_norm else vgg.VGG16_Weights.IMAGENET1K_V1
        try:
            state = weights.get_state_dict(progress=False)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise RuntimeError(
                f"model.init=imagenet: cannot load {weights} ({err}). Put the file in "
                f"{torch.hub.get_dir()}/checkpoints/ or use model.init=scratch."
            ) from err
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.features.load_state_dict(feats)
        except RuntimeError as err:
            raise RuntimeError(f"model.init=imagenet needs model.width=1.0 ({err})") from err
        if self.use_fc:
            self.fc6.weight.data.copy_(state["classifier.0.weight"].view(4096, 512, 7, 7))
            self.fc6.bias.data.copy_(state["classifier.0.bias"])
            self.fc7.weight.data.copy_(state["classifier.3.weight"].view(4096, 4096, 1, 1))
            self.fc7.bias.data.copy_(state["classifier.3.bias"])

"""Heads over hypercolumn features: an MLP (the paper's default) or a linear classifier (Table 2).

Both act on rows of features, (M, C) -> (M, K); at test time the same weights run on every pixel,
which is what the paper's 1×1 convolutions do.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def build_head(
    in_features: int,
    out_features: int,
    kind: str = "mlp",
    hidden: Sequence[int] = (4096, 4096),
    dropout: float = 0.5,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``batch_norm`` normalises the hypercolumn before the first layer (the 'bn' rows of Table 2)."""
    if kind not in ("mlp", "linear"):
        raise ValueError(f"model.head must be 'mlp' or 'linear', got {kind!r}")
    layers: list[nn.Module] = [nn.BatchNorm1d(in_features)] if batch_norm else []
    width = in_features
    for h in hidden if kind == "mlp" else ():
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    head = nn.Sequential(*layers)
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    last = layers[-1]
    nn.init.normal_(last.weight, std=1e-3)  # the paper's σ = 1e-3 for the output layer
    return head

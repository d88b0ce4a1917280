"""Heads over hypercolumn features: an MLP (the paper's default) or a linear classifier (Table 2).

Both act on rows of features, (M, C) -> (M, K); at test time the same weights run on every pixel,
which is what the paper's 1×1 convolutions do.

Initialisation (``init``): the paper initialises every layer it trains from scratch with zero-mean
Gaussian weights of σ = 1e-3, except the last fc layer of the surface-normal MLP, σ = 5e-3.
"gaussian" does that: every Linear N(0, std²), the output layer N(0, std_last²). "kaiming" draws
the hidden layers He-normal (fan_in, ReLU) instead and the output layer N(0, std_last²). Biases
start at zero either way.

An optional BatchNorm1d before the first layer normalises the hypercolumns (the 'bn' rows of
Table 2). ``masked_batch_norm`` computes its batch statistics on the valid rows of a padded batch
only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

HEAD_INITS = ("gaussian", "kaiming")


def build_head(
    in_features: int,
    out_features: int,
    kind: str = "mlp",
    hidden: Sequence[int] = (4096, 4096),
    dropout: float = 0.5,
    batch_norm: bool = False,
    init: str = "gaussian",
    std: float = 1e-3,
    std_last: float = 1e-3,
) -> nn.Sequential:
    """``batch_norm`` normalises the hypercolumn before the first layer (the 'bn' rows of Table 2);
    ``init``, ``std`` and ``std_last`` as in the module doc."""
    if kind not in ("mlp", "linear"):
        raise ValueError(f"model.head must be 'mlp' or 'linear', got {kind!r}")
    if init not in HEAD_INITS:
        raise ValueError(f"model.head_init must be one of {list(HEAD_INITS)}, got {init!r}")
    layers: list[nn.Module] = [nn.BatchNorm1d(in_features)] if batch_norm else []
    width = in_features
    for h in hidden if kind == "mlp" else ():
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    head = nn.Sequential(*layers)
    last = layers[-1]
    for m in head.modules():
        if isinstance(m, nn.Linear):
            if m is last:
                nn.init.normal_(m.weight, std=std_last)
            elif init == "gaussian":
                nn.init.normal_(m.weight, std=std)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return head


def masked_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``bn(x)`` for (M, C) rows whose batch statistics, and running-stat updates, come from the rows
    where `valid` (M,) bool is true only, as if `bn` had been called on ``x[valid]``. Every row is
    normalised with those statistics (the invalid ones come out finite and are meant to be ignored).

    No host sync and no boolean indexing: the statistics are masked sums. In eval mode (running
    statistics) every row is independent and this is ``bn(x)``. With fewer than two valid rows the
    running variance's unbiased factor is clamped rather than raising as BatchNorm1d does.
    """
    use_batch = bn.training or bn.running_mean is None
    if not use_batch:
        return bn(x)
    m = valid.reshape(-1, 1).to(torch.promote_types(x.dtype, torch.float32))  # (M, 1)
    xs = x.to(m.dtype)
    count = m.sum()
    mean = (xs * m).sum(0) / count.clamp(min=1)  # (C,)
    centred = xs - mean
    var = (centred.square() * m).sum(0) / count.clamp(min=1)  # (C,) biased, as BN normalises
    out = centred * torch.rsqrt(var + bn.eps)
    if bn.affine:
        out = out * bn.weight + bn.bias
    if bn.training and bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
            unbiased = var * (count / (count - 1).clamp(min=1))
            bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), factor)
            bn.running_var.lerp_(unbiased.detach().to(bn.running_var.dtype), factor)
    return out.to(x.dtype)

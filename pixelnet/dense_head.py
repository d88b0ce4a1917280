"""The head over every pixel of an image: the dense fast path of inference.

Training reads hypercolumns at a sparse sample of pixels (`pixelnet.model.hypercolumn`); a whole
image asks for all of them. Computing each pixel's hypercolumn and pushing it through the head, as
the sparse path would, repeats the same work: a deep tap's cell is read by hundreds of pixels. So
the head's first layer runs tap by tap, as ``first_layer_at`` does for training:

* a tap with fewer cells than the image has pixels is **projected first**: its block of the first
  layer's weights runs as a 1×1 convolution at the tap's own resolution, and only the projection
  (H1 channels) is interpolated to the pixels. Bilinear weights sum to one, so this equals
  interpolating the tap and then projecting;
* a tap with as many cells as pixels or more (conv1_2 at scale ≥ 1) is **gathered first**: its own
  channels are interpolated (an identity at scale 1) and multiplied by its block of weights.

Every tap is read at the stride-true positions of the sparse path, u = (x + 0.5) / s - 0.5 clamped
to the map, computed from the same float32 pixel coordinates, so the maps equal the sparse path's
up to float rounding. The positions are separable: each output column reads two map columns and
each row two map rows (a flipped or rescaled view is just another list of positions), so a pixel's
four corners and weights come from a per-axis table. The projected taps and the first layer's bias
share one row table, and a band's first layer is one fused ``F.embedding_bag`` over each pixel's
four corners per tap plus the bias row: one pass that writes each pixel's H1 values once.

The rest of the head (ReLU, the hidden layers, the output layer) then runs on rows of pixels, which
is what the paper's 1×1 convolutions compute. Everything after the projections runs band by band,
a few rows of the image at a time: a band's activations (rows × W × H1 floats) stay in the CPU's
cache between the first layer's sum and the next matrix product (on this project's 2-core AMD EPYC,
0.30-0.39 s per 481 × 321 image with 8,192-pixel bands against 0.41-0.50 s with 65,536-pixel ones),
and they bound memory on large images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Pixels per band: 8,192 × 256 hidden units × 4 bytes = 8 MiB, within a server CPU's L3 cache.
BAND_PIXELS = 8192


def axis_positions(coords: torch.Tensor, stride: int, cells: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n,) float32 pixel coordinates along one axis -> the map cells below and above each, (n,) long
    each, and the fractional weight of the upper one, (n,) float32: the stride-true, clamped position
    of `pixelnet.model.hypercolumn.map_position`, split into a lerp."""
    u = ((coords.float() + 0.5) * (1.0 / stride) - 0.5).clamp(0, cells - 1)  # (n,) map position
    lo = u.floor()
    frac = u - lo
    lo = lo.long()
    return lo, (lo + 1).clamp(max=cells - 1), frac


class _Tap:
    """One tapped map, ready for the bands: its rows (projected or raw) at an offset in a shared row
    table, and per axis the two cells each output column/row reads with their bilinear weights."""

    def __init__(self, rows: torch.Tensor, xs: tuple, ys: tuple, identity: bool) -> None:
        h, w, _ = rows.shape
        self.rows = rows.reshape(h * w, -1)  # (h*w, C'): the map, or its projection by the first layer
        self.identity = identity  # the map is the image's own pixel grid: a band is a slice of its rows
        x0, x1, ax = xs
        y0, y1, ay = ys
        self.xid = torch.stack([x0, x1], dim=1)  # (W, 2) columns
        self.xw = torch.stack([1 - ax, ax], dim=1)  # (W, 2)
        self.yid = torch.stack([y0, y1], dim=1) * w  # (H, 2) row starts
        self.yw = torch.stack([1 - ay, ay], dim=1)  # (H, 2)

    def corners(self, start: int, stop: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows start..stop of the image: each pixel's four row ids into a table holding this tap's
        rows from `offset` on, and their weights: (n, W, 4) each, corners (y0, x0) (y0, x1) (y1, x0) (y1, x1)."""
        ids = self.yid[start:stop, None, :, None] + self.xid[None, :, None, :] + offset  # (n, W, 2, 2)
        weights = self.yw[start:stop, None, :, None] * self.xw[None, :, None, :]  # (n, W, 2, 2)
        return ids.flatten(2), weights.flatten(2)  # (n, W, 4) each


def _bag(table: torch.Tensor, parts: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> torch.Tensor:
    """Sum of weighted rows of `table`: every pixel's bag of (ids, weights) parts -> (n, C)."""
    ids = torch.cat([i for i, _ in parts], dim=-1).reshape(n, -1)  # (n, bag)
    weights = torch.cat([w for _, w in parts], dim=-1).reshape(n, -1)  # (n, bag)
    return F.embedding_bag(ids, table, per_sample_weights=weights.to(table.dtype), mode="sum")  # (n, C)


def first_linear(head: nn.Sequential) -> tuple[nn.Linear, int]:
    """The head's first Linear with an eval-mode BatchNorm1d before it folded in, and the index of the
    module after it. An eval batch norm is a per-channel affine map, so W·bn(h) + b = W'·h + b'."""
    first = head[0]
    if isinstance(first, nn.Linear):
        return first, 1
    if not (isinstance(first, nn.BatchNorm1d) and isinstance(head[1], nn.Linear)):
        raise ValueError(f"the dense head expects Linear or BatchNorm1d + Linear first, got {type(first).__name__}")
    bn, lin = first, head[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale  # (C,)
    folded = nn.Linear(lin.in_features, lin.out_features).to(lin.weight.device)
    with torch.no_grad():
        folded.weight.copy_(lin.weight * scale)  # (H1, C)
        folded.bias.copy_(lin.bias + lin.weight @ shift)  # (H1,)
    return folded, 2


@torch.no_grad()
def dense_head(
    head: nn.Sequential, features: Sequence[torch.Tensor], strides: Sequence[int], xs: torch.Tensor, ys: torch.Tensor,
    activate: Callable[[torch.Tensor], torch.Tensor] = lambda t: t, band_pixels: int = BAND_PIXELS,
) -> torch.Tensor:
    """The head at every pixel of a view: (1, C_t, h_t, w_t) tapped maps and the view-pixel coordinates
    of the output's columns `xs` (W,) and rows `ys` (H,) (float32, any order) -> the
    activated outputs (H, W, K) float32, computed `band_pixels` pixels (whole rows) at a time."""
    if len(features) != len(strides):
        raise ValueError(f"{len(features)} feature maps but {len(strides)} strides")
    if any(f.shape[0] != 1 for f in features):
        raise ValueError("the dense head runs one image at a time")
    first, rest_at = first_linear(head)
    rest = head[rest_at:]
    width, height = xs.shape[0], ys.shape[0]
    projected: list[_Tap] = []
    gathered: list[_Tap] = []
    blocks: list[torch.Tensor] = []
    start = 0
    for f, s in zip(features, strides):
        _, c, h, w = f.shape
        block = first.weight[:, start : start + c]  # (H1, C_t)
        start += c
        rows = f[0].permute(1, 2, 0).float()  # (h, w, C_t): a view when f is channels_last
        axes = axis_positions(xs, s, w), axis_positions(ys, s, h)
        identity = (h, w) == (height, width) and all(
            bool((lo == torch.arange(n, device=lo.device)).all()) and not bool(frac.any())
            for (lo, _, frac), n in zip(axes, (width, height)))
        if h * w < height * width:
            projected.append(_Tap(F.linear(rows, block), *axes, identity))  # (h, w, H1): a 1x1 convolution
        else:
            gathered.append(_Tap(rows, *axes, identity))
            blocks.append(block)
    weight = torch.cat(blocks, dim=1) if blocks else None  # (H1, sum C_t gathered)
    # One table for the projected taps and the bias: a band's first layer is then one fused
    # embedding_bag over each pixel's 4 corners per tap plus the bias row (weight 1).
    offsets = torch.tensor([0] + [t.rows.shape[0] for t in projected]).cumsum(0).tolist()
    table = torch.cat([t.rows for t in projected] + [first.bias[None]], dim=0)  # (sum h*w + 1, H1)
    rows_per_band = max(1, band_pixels // max(1, width))
    out = None
    for top in range(0, height, rows_per_band):
        bottom = min(height, top + rows_per_band)
        n = (bottom - top) * width
        bias = (torch.full((bottom - top, width, 1), offsets[-1], dtype=torch.long, device=table.device),
                table.new_ones(bottom - top, width, 1))
        acc = _bag(table, [t.corners(top, bottom, o) for t, o in zip(projected, offsets)] + [bias], n)  # (n, H1)
        if gathered:
            cols = [t.rows[top * width : bottom * width] if t.identity  # (n, C_t): the band's own pixels
                    else _bag(t.rows, [t.corners(top, bottom, 0)], n) for t in gathered]  # (n, C_t) interpolated
            acc.addmm_(torch.cat(cols, dim=1), weight.t())  # (n, H1)
        result = activate(rest(acc)).float()  # (n, K)
        if out is None:
            out = result.new_empty(height * width, result.shape[-1])  # (HW, K)
        out[top * width : bottom * width] = result
    return out.view(height, width, -1)  # (H, W, K)

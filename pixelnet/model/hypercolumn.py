"""On-demand hypercolumns: bilinear interpolation of every tapped map at sampled pixel locations.

Locations are pixel-centre coordinates of the input image (x = column, y = row, floats allowed).
Each map is read where its cells really are. VGG's 2×2 max pools floor, so cell i of a tap with
stride s (``trunk.STRIDES``: conv1_2 1, conv2_2 2, conv3_3 4, conv4_3 8, conv5_3 16, fc7 32) pools
image pixels s·i … s·i + s − 1 and is centred at s·i + (s − 1)/2 (the 3×3 convolutions with
padding 1, fc6's 7×7 with padding 3 and fc7's 1×1 are symmetric and move no centre). Pixel x reads
the map at

    u = (x + 0.5) / s - 0.5,  clamped to [0, w - 1]  (and v likewise from y, h),

whatever the image size (H, W): a map of floor(W / s) cells covers only the first s·floor(W / s)
pixels, and the pixels past it read the last column, as they do past the first cell's centre at
the other border. This is what ``F.interpolate(f, scale_factor=s, mode="bilinear",
align_corners=False)`` computes on (s·h, s·w), replicate-padded to (H, W): ``dense_hypercolumns``,
so sparse sampling equals dense upsampling at the same pixels. Strides are passed explicitly: they
cannot be told from size ratios (an H = 47 image has a 2-row conv5_3 map, ratio 23.5, stride 16).

Two gathers compute the same thing (``GATHERS``):

* ``bag`` (the default): the four neighbours' flat row ids and bilinear weights go to
  ``F.embedding_bag(mode="sum")``, which reads the map as (B*h*w, C) rows and sums the weighted
  rows in one fused kernel, backward included. Rows are a free view of a channels_last map. The
  weights are computed in float32 and only then cast to the map's dtype, so bf16 maps keep exact
  sub-pixel positions. On 2 CPU cores at the paper's shapes (5 × 2,000 samples, taps
  conv1_2…fc7) it is 2.4× faster than grid_sample forward+backward in float32.
* ``grid_sample``: one ``F.grid_sample`` per tap, the textbook way; kept as the reference. Maps
  in bf16 are sampled in float32 (bf16 grid coordinates would lose sub-pixel precision, and
  torch's CPU bf16 grid_sample crashes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

GATHERS = ("bag", "grid_sample")


def check_strides(features: Sequence[torch.Tensor], strides: Sequence[int]) -> None:
    if len(features) != len(strides):
        raise ValueError(f"{len(features)} feature maps but {len(strides)} strides")


def map_position(coords: torch.Tensor, stride: int, map_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, 2) pixel coordinates -> the map's column u and row v, (B, N) each, clamped to the map:
    u = (x + 0.5) / s - 0.5 (float32, or float64 when the coordinates are)."""
    h, w = map_size
    xy = coords.to(torch.promote_types(coords.dtype, torch.float32))
    inv = 1.0 / stride  # a power of two: exact
    u = ((xy[..., 0] + 0.5) * inv - 0.5).clamp(0, w - 1)  # (B, N) map column
    v = ((xy[..., 1] + 0.5) * inv - 0.5).clamp(0, h - 1)  # (B, N) map row
    return u, v


def to_grid(coords: torch.Tensor, stride: int, map_size: tuple[int, int]) -> torch.Tensor:
    """(B, N, 2) pixel coordinates -> (B, 1, N, 2) grid_sample coordinates in [-1, 1] for a map of
    `map_size` at `stride`.

    grid_sample with align_corners=False reads normalised g at (g + 1) * w / 2 - 0.5 in the map, so
    g = 2 (x + 0.5) / (s w) - 1 reads it at (x + 0.5) / s - 0.5; "border" padding clamps to
    [0, w - 1] as ``map_position`` does.
    """
    h, w = map_size
    scale = coords.new_tensor([2.0 / (stride * w), 2.0 / (stride * h)])
    return ((coords + 0.5) * scale - 1.0).unsqueeze(1)  # (B, 1, N, 2)


def bilinear_corners(coords: torch.Tensor, map_size: tuple[int, int], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat row ids (B, N, 4) into a (B*h*w, C) view of a map of stride `stride`, and their weights
    (B, N, 4) (float32 or float64, whichever is wider than the coordinates).

    Corners are (y0, x0), (y0, x1), (y1, x0), (y1, x1); positions are clamped to the map (see the
    module doc), so a border pixel's weights collapse onto the edge row/column.
    """
    h, w = map_size
    b = coords.shape[0]
    u, v = map_position(coords, stride, map_size)  # (B, N) each
    x0, y0 = u.floor(), v.floor()
    ax, ay = u - x0, v - y0  # (B, N) fractional parts
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    base = (torch.arange(b, device=coords.device) * (h * w)).view(b, 1, 1)  # (B, 1, 1) image offset
    ids = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], dim=-1) + base  # (B, N, 4)
    weights = torch.stack([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay], dim=-1)  # (B, N, 4)
    return ids, weights


def _rows(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    return f.permute(0, 2, 3, 1).reshape(b * h * w, c)  # (B*h*w, C): a view when f is channels_last


def _bag_rows(rows: torch.Tensor, map_size: tuple[int, int], coords: torch.Tensor, stride: int) -> torch.Tensor:
    """Bilinear values of a map held as (B*h*w, C) rows at (B, N, 2) coords -> (B, N, C)."""
    b, n = coords.shape[:2]
    ids, weights = bilinear_corners(coords, map_size, stride)  # (B, N, 4) each
    out = F.embedding_bag(ids.view(b * n, 4), rows, per_sample_weights=weights.view(b * n, 4).to(rows.dtype), mode="sum")
    return out.view(b, n, rows.shape[1])  # (B, N, C)


def _bag(f: torch.Tensor, coords: torch.Tensor, stride: int) -> torch.Tensor:
    return _bag_rows(_rows(f), tuple(f.shape[-2:]), coords, stride)  # (B, N, C)


def _grid_sample(f: torch.Tensor, coords: torch.Tensor, stride: int) -> torch.Tensor:
    x = f if f.dtype in (torch.float32, torch.float64) else f.float()
    grid = to_grid(coords.to(x.dtype), stride, tuple(f.shape[-2:]))  # (B, 1, N, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (B, C, 1, N)
    return out.squeeze(2).transpose(1, 2).to(f.dtype)  # (B, N, C)


def sample_hypercolumns(
    features: Sequence[torch.Tensor], coords: torch.Tensor, strides: Sequence[int], gather: str = "bag"
) -> torch.Tensor:
    """Concatenate every map's bilinear value at each location: (B, N, sum C).

    `strides[t]` is map t's stride in image pixels (``PixelNet.strides``). Both gathers read the
    map at the stride-true position of the module doc.
    """
    check_strides(features, strides)
    if gather == "bag":
        return torch.cat([_bag(f, coords, s) for f, s in zip(features, strides)], dim=-1)
    if gather == "grid_sample":
        return torch.cat([_grid_sample(f, coords, s) for f, s in zip(features, strides)], dim=-1)
    raise ValueError(f"model.gather must be one of {GATHERS}, got {gather!r}")


def first_layer_at(
    features: Sequence[torch.Tensor], coords: torch.Tensor, strides: Sequence[int], weight: torch.Tensor,
    bias: torch.Tensor | None, cache: dict | None = None,
) -> torch.Tensor:
    """The head's first linear layer at the sampled pixels, W·h(x) + b -> (B, N, H1), computed tap by tap.

    Bilinear interpolation is linear and its weights sum to one, so W_t·interp(F_t)(x) equals
    interp(W_t·F_t)(x): a tap whose map has fewer positions than there are samples per image is
    projected through its block of W first (a 1×1 convolution at the map's own resolution) and the
    projection is interpolated. At the paper's settings (2,000 samples at 224²) that holds for
    conv4_3 (28²), conv5_3 (14²) and fc7 (7²): the first layer's work drops from 10,000 × 5,568 to
    10,000 × 448 rows-by-columns plus 5 × 1,029 projected positions, about 7× less, and with it a
    third of the training step's arithmetic. Shallow taps (more positions than samples) are gathered
    and multiplied as usual. `cache` (a dict per image batch) keeps the projections between calls
    with new coords, as dense inference makes them chunk by chunk.
    """
    check_strides(features, strides)
    n = coords.shape[1]
    out = None
    gathered, blocks = [], []
    start = 0
    for i, (f, s) in enumerate(zip(features, strides)):
        b, c, h, w = f.shape
        block = weight[:, start : start + c]  # (H1, C_t)
        start += c
        if h * w < n or (cache is not None and i in cache):
            if cache is not None and i in cache:
                projected = cache[i]
            else:
                projected = F.linear(_rows(f), block)  # (B*h*w, H1): a 1x1 convolution of the map
                if cache is not None:
                    cache[i] = projected
            part = _bag_rows(projected, (h, w), coords, s)  # (B, N, H1)
            out = part if out is None else out + part
        else:
            gathered.append(_bag(f, coords, s))  # (B, N, C_t)
            blocks.append(block)
    if gathered:
        part = F.linear(torch.cat(gathered, dim=-1), torch.cat(blocks, dim=1))  # (B, N, H1)
        out = part if out is None else out + part
    return out if bias is None else out + bias


def fit_to_image(up: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """A map upsampled by its stride, (B, C, s·h, s·w), cropped or edge-replicated to (B, C, H, W).

    Pooling floors, so s·h <= H; the rows past s·h read v > h - 1, clamped to the last row, which
    is what replicating the last upsampled row gives (that row already reads v >= h - 1).
    """
    height, width = image_size
    up = up[..., :height, :width]
    pad_h, pad_w = height - up.shape[-2], width - up.shape[-1]
    if pad_h or pad_w:
        up = F.pad(up, (0, pad_w, 0, pad_h), mode="replicate")
    return up


def upsample_bilinear(f: torch.Tensor, stride: int, image_size: tuple[int, int]) -> torch.Tensor:
    """One map read at every pixel of an (H, W) image at its stride-true positions: (B, C, H, W)."""
    up = f if stride == 1 else F.interpolate(f, scale_factor=stride, mode="bilinear", align_corners=False)
    return fit_to_image(up, image_size)


def dense_hypercolumns(features: Sequence[torch.Tensor], strides: Sequence[int], image_size: tuple[int, int]) -> torch.Tensor:
    """Reference: upsample every map to the image and concatenate, (B, sum C, H, W). Memory-hungry.

    ``F.interpolate(scale_factor=s, align_corners=False)`` reads output pixel x at
    (x + 0.5) / s - 0.5, clamped: exactly the sparse gather's mapping.
    """
    check_strides(features, strides)
    return torch.cat([upsample_bilinear(f, s, image_size) for f, s in zip(features, strides)], dim=1)

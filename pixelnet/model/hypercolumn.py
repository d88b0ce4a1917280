"""On-demand hypercolumns: bilinear interpolation of every tapped map at sampled pixel locations.

Locations are pixel-centre coordinates of the input image (x = column, y = row, floats allowed).
A feature map of size (h, w) covering an (H, W) image is read at
``u = (x + 0.5) * w / W - 0.5``, clamped to the border — exactly what dense
``F.interpolate(..., size=(H, W), mode="bilinear", align_corners=False)`` computes at integer
pixels, so sparse sampling equals dense upsampling at the same pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_grid(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, N, 2) pixel coordinates -> (B, 1, N, 2) grid_sample coordinates in [-1, 1]."""
    scale = coords.new_tensor([2.0 / width, 2.0 / height])
    return ((coords + 0.5) * scale - 1.0).unsqueeze(1)  # (B, 1, N, 2)


def sample_hypercolumns(features: list[torch.Tensor], coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Concatenate every map's bilinear value at each location: (B, N, sum C).

    grid_sample with align_corners=False maps normalised g to (g + 1) * w / 2 - 0.5 in the map,
    which with g = (x + 0.5) * 2 / W - 1 is the pixel-centre mapping above; "border" padding
    clamps like F.interpolate does.
    """
    grid = to_grid(coords, *image_size)  # (B, 1, N, 2)
    columns = [
        F.grid_sample(f, grid.to(f.dtype), mode="bilinear", padding_mode="border", align_corners=False)  # (B, C, 1, N)
        for f in features
    ]
    return torch.cat(columns, dim=1).squeeze(2).transpose(1, 2)  # (B, N, sum C)


def dense_hypercolumns(features: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
    """Reference: upsample every map to the image and concatenate, (B, sum C, H, W). Memory-hungry."""
    return torch.cat(
        [F.interpolate(f, size=image_size, mode="bilinear", align_corners=False) for f in features], dim=1
    )

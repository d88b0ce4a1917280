"""The dense alternatives to on-demand hypercolumns that the paper's Table 3 measures.

FCN-style networks upsample every tapped map to the image with a learned deconvolution, concatenate
them, and run the classifier on every pixel ("FCN/Deconvolution"), or on the sampled pixels only
("FCN/Sampling"). Both build the same hypercolumns as PixelNet's sparse gather; they only pay for
all the pixels nobody samples.

``DeconvUpsample`` is FCN's upsampling layer: a ``ConvTranspose2d`` from C to C channels with a
2f × 2f kernel and stride f, learnable, initialised to the bilinear kernel on the channel diagonal
(FCN's ``get_upsampling_weight``). With one replicated border pixel around the input and the result
cropped back to f·(h, w), it equals ``F.interpolate(..., scale_factor=f, mode="bilinear",
align_corners=False)`` exactly (up to rounding), border clamping included: output pixel x reads the
map at (x + 0.5) / f - 0.5, the stride-true position of `pixelnet.model.hypercolumn`. The pixels
past f·(h, w) that pooling floors away (an image side not a multiple of the stride) repeat the last
row/column, as the sparse gather clamps them, so the hypercolumns match the sparse gather.
Its weight has C²·4f² elements: 268M for conv5_3 (f = 16) and 68.7 billion for fc7 (f = 32),
more than INT_MAX — the paper's reason why dense hypercolumns with conv-7 are impossible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pixelnet.model.hypercolumn import check_strides, fit_to_image, upsample_bilinear

UPSAMPLES = ("deconv", "bilinear")
INT_MAX = 2**31 - 1


def bilinear_kernel(factor: int) -> torch.Tensor:
    """(2f, 2f) bilinear upsampling kernel, FCN's: 1 - |k - c| / f per axis with centre c = f - 0.5."""
    k = torch.arange(2 * factor, dtype=torch.float64)
    profile = 1 - (k - (factor - 0.5)).abs() / factor  # (2f,)
    return torch.outer(profile, profile)  # (2f, 2f)


def deconv_weight_elements(channels: int, factor: int) -> int:
    """Elements of DeconvUpsample's weight; 0 when the map is already at full resolution."""
    return 0 if factor == 1 else channels * channels * (2 * factor) ** 2


class DeconvUpsample(nn.Module):
    """FCN's learned upsampling by an integer factor f (1 or even), bilinear at initialisation."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        if factor != 1 and (factor < 2 or factor % 2):
            raise ValueError(f"deconvolution factor must be 1 or even, got {factor}")
        self.factor = factor
        if factor == 1:
            self.deconv = None
            return
        elements = deconv_weight_elements(channels, factor)
        if elements > INT_MAX:
            raise MemoryError(
                f"a {channels}->{channels} deconvolution with a {2 * factor}x{2 * factor} kernel has "
                f"{elements:.3g} weights, more than INT_MAX ({INT_MAX})"
            )
        self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
        with torch.no_grad():
            self.deconv.weight.zero_()
            idx = torch.arange(channels)
            self.deconv.weight[idx, idx] = bilinear_kernel(factor).to(self.deconv.weight.dtype)  # diagonal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deconv is None:
            return x
        h, w = x.shape[-2:]
        f = self.factor
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, h+2, w+2)
        if x.is_cuda:
            up = self.deconv(x)  # (B, C, (h+2)f, (w+2)f): cuDNN picks its algorithm
        else:
            up = _deconv_col2im(x, self.deconv.weight, f)
        return up[..., f : f + h * f, f : f + w * f]  # (B, C, hf, wf)


def _deconv_col2im(x: torch.Tensor, weight: torch.Tensor, factor: int) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride=f, padding=f/2) as Caffe's Deconvolution layer computes it:
    one GEMM into columns, then col2im (F.fold). torch's own CPU conv_transpose2d backward takes minutes
    for a 512x512x32x32 kernel (162 s at a 14x14 map on 2 cores); this takes about a second, so the
    dense baselines are timed at a fair speed."""
    b, c_in, h, w = x.shape
    c_out, k = weight.shape[1], weight.shape[-1]
    cols = torch.matmul(weight.reshape(c_in, c_out * k * k).t(), x.reshape(b, c_in, h * w))  # (B, C_out*K*K, h*w)
    return F.fold(cols, (h * factor, w * factor), kernel_size=k, stride=factor, padding=factor // 2)  # (B, C_out, hf, wf)


class DenseHypercolumns(nn.Module):
    """Every tap upsampled to the image and concatenated: (B, H, W, sum C), channels last so the
    head's rows are a free view. ``upsample`` is "deconv" (FCN) or "bilinear" (F.interpolate by the
    stride); both read each tap at its stride-true positions and replicate its last row/column over
    the pixels that pooling floored away."""

    def __init__(self, channels: Sequence[int], strides: Sequence[int], upsample: str = "deconv") -> None:
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        self.upsample = upsample
        self.strides = tuple(strides)
        self.ups = nn.ModuleList(
            [DeconvUpsample(c, s) for c, s in zip(channels, strides)] if upsample == "deconv" else []
        )

    def forward(self, features: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        check_strides(features, self.strides)
        if self.upsample == "deconv":
            ups = [fit_to_image(up(f), image_size) for up, f in zip(self.ups, features)]
        else:
            ups = [upsample_bilinear(f, s, image_size) for f, s in zip(features, self.strides)]
        return torch.cat([u.permute(0, 2, 3, 1) for u in ups], dim=-1)  # (B, H, W, sum C)

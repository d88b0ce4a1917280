"""A trained PixelNet as one plain graph for other runtimes: ONNX (onnxruntime, TensorRT...) or TorchScript.

The exported graph maps an image batch (N, 3, H, W) float32 RGB with values in [0, 255] (not
normalised: the ImageNet normalisation is inside) to the task's activated map (N, K, H, W) at a
single scale: edges (N, 1, H, W) sigmoid probabilities, normals (N, 3, H, W) unit vectors,
segmentation (N, K, H, W) softmax probabilities (``Task.activate`` over the channels). H and W
are dynamic; each must be at least the deepest tapped layer's stride (16 px for conv5_3, 32 for
fc7). It is the dense head written with standard layers (`ExportedPixelNet`), from the trained
model's own weights:

* the trunk with its input normalisation (as ``PixelNet.features``);
* the head's first layer (a head batch norm folded in, `pixelnet.dense_head.first_linear`)
  split by tap, each block a 1×1 convolution at its tap's own resolution;
* each projection read at every pixel's stride-true position u = (x + 0.5) / s - 0.5, clamped to
  the map (`pixelnet.model.hypercolumn`): ``F.interpolate(scale_factor=s, mode="bilinear",
  align_corners=False)`` computes exactly that on (s·h, s·w); pooling floors, so s·h may fall short
  of H by up to s - 1 rows, which read the last row (`fit_to_image` replicates it). Here the map is
  replicate-padded by one cell *before* the upsampling and the result cropped to (H, W): the same
  values (row h repeats row h - 1, so reads past h - 1 blend a row with itself), with no padding
  amount that depends on the image size, so the graph has no shape-dependent branch;
* the sum of the projections and the bias, then the rest of the head as 1×1 convolutions (ReLU;
  dropout is the identity at inference), then the task's activation.

This is `pixelnet.infer.activations` with one scale and no flip, up to float rounding (the tests
hold them within 1e-4). Only standard operators appear: Conv, BatchNormalization (folded into Conv
by the exporter), Relu, MaxPool, Pad, Resize, Slice, Add, Sigmoid / Softmax / normalisation.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pixelnet.atomic import atomic_file
from pixelnet.dense_head import first_linear
from pixelnet.inputs import check_export_target
from pixelnet.model.pixelnet import PixelNet
from pixelnet.tasks.base import Task

OPSET = 18  # Resize (half_pixel, linear) and Pad (edge) as used here are in every opset >= 11
DYNAMIC = {0: "batch", 2: "height", 3: "width"}  # the axes of the ONNX graph's input and output


def _conv1x1(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A Linear's (out, in) weight and bias as the 1×1 convolution that applies it at every pixel."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=1, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])  # (out, in, 1, 1)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


class ExportedPixelNet(nn.Module):
    """The dense PixelNet of the module doc: (N, 3, H, W) float32 RGB in [0, 255] -> (N, K, H, W)."""

    def __init__(self, model: PixelNet, task: Task) -> None:
        super().__init__()
        # The trunk and the input normalisation alone: the head's own Linear layers are not part of
        # the graph (and a TorchScript file would carry them along).
        self.trunk = model.trunk.eval()
        self.register_buffer("mean", model.mean.clone(), persistent=False)  # (1, 3, 1, 1), in 0-255 units
        self.register_buffer("std", model.std.clone(), persistent=False)
        self.strides = tuple(model.strides)
        self.activate = task.activate  # over dim 1: the channels of an (N, K, H, W) map as of (M, K) rows
        first, rest_at = first_linear(model.head)
        weight = first.weight.detach().float()  # (H1, sum C_t), the head batch norm folded in
        channels = [model.trunk.channels[t] for t in model.trunk.taps]
        if sum(channels) != weight.shape[1]:
            raise ValueError(f"the head's first layer takes {weight.shape[1]} channels, the taps give {sum(channels)}")
        starts = [sum(channels[:i]) for i in range(len(channels))]
        self.projections = nn.ModuleList(
            _conv1x1(weight[:, a : a + c], None) for a, c in zip(starts, channels))  # (H1, C_t) each
        self.register_buffer("bias", first.bias.detach().float().view(1, -1, 1, 1))  # (1, H1, 1, 1)
        rest: list[nn.Module] = []
        for layer in model.head[rest_at:]:
            if isinstance(layer, nn.Linear):
                rest.append(_conv1x1(layer.weight.detach().float(), layer.bias.detach().float()))
            elif isinstance(layer, nn.ReLU):
                rest.append(nn.ReLU())
            elif not isinstance(layer, nn.Dropout):  # dropout: the identity at inference
                raise ValueError(f"cannot export a head layer of type {type(layer).__name__}")
        self.rest = nn.Sequential(*rest)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2], images.shape[-1]
        hidden = self.bias
        taps = self.trunk((images.float() - self.mean) / self.std).values()  # as PixelNet.features
        for tap, stride, project in zip(taps, self.strides, self.projections):
            part = project(tap)  # (N, H1, h, w): the 1x1 convolution at the tap's resolution
            if stride > 1:
                part = F.pad(part, (0, 1, 0, 1), mode="replicate")  # (N, H1, h + 1, w + 1)
                part = F.interpolate(part, scale_factor=stride, mode="bilinear", align_corners=False)
                part = part[:, :, :height, :width]  # (N, H1, H, W)
            hidden = hidden + part
        return self.activate(self.rest(hidden))  # (N, K, H, W)


def example_input(model: PixelNet) -> torch.Tensor:
    """A (1, 3, H, W) float32 image to trace with: sides that are not multiples of the deepest stride."""
    s = model.strides[-1]
    return torch.rand(1, 3, 4 * s + 3, 5 * s + 7, generator=torch.Generator().manual_seed(0)) * 255


def export(model: PixelNet, task: Task, out: Path, format: str = "onnx") -> dict:
    """Write `model` as an ONNX or TorchScript file at `out` (atomically); returns a short description.

    ONNX: ``torch.onnx.export``'s TorchScript-based exporter (``dynamo=False``), opset `OPSET`,
    input ``image`` (N, 3, H, W) and output ``activations`` (N, K, H, W) with N, H and W dynamic.
    It needs the ``onnx`` package only and exports in about a second; the dynamo exporter (the
    default of ``torch.onnx.export``) gives an equivalent graph, the same maps, but needs ``onnxscript`` too and
    takes ~6× longer. TorchScript: ``torch.jit.trace`` (the graph holds no shape-dependent branch,
    so the trace serves every size), for ``torch.jit.load`` in Python or LibTorch (C++).
    """
    out = check_export_target(out, format)
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()  # exported from the CPU, leaving the caller's model where it is
    net = ExportedPixelNet(model, task).eval()
    example = example_input(model)
    with torch.no_grad(), atomic_file(out) as tmp, warnings.catch_warnings():
        # Both tracers are deprecated in favour of torch.export, and warn so on every call; they
        # also warn that the traced crop reads the input's size, which is what dynamic H, W need.
        for category in (DeprecationWarning, FutureWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", message="Constant folding")  # the crop's Slice: nothing to fold
        if format == "onnx":
            torch.onnx.export(
                net, (example,), str(tmp), dynamo=False, opset_version=OPSET, input_names=["image"],
                output_names=["activations"], dynamic_axes={"image": DYNAMIC, "activations": DYNAMIC})
        else:
            torch.jit.trace(net, example, check_trace=False).save(str(tmp))
    return {"out": str(out), "format": format, "task": task.name, "bytes": out.stat().st_size,
            "input": "image (N, 3, H, W) float32 RGB in [0, 255]",
            "output": f"activations (N, {model.out_channels}, H, W) float32",
            "min_side": model.strides[-1]}


"""`pixelnet export`: the ONNX graph run by onnxruntime (and the TorchScript trace) gives the maps of the
torch dense path, `pixelnet.infer.activations` at one scale, at sizes other than the traced one."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.export import ExportedPixelNet, export
from pixelnet.infer import InferConfig, activations
from pixelnet.model.pixelnet import ModelConfig, PixelNet, save_checkpoint
from pixelnet.predict import load_model
from pixelnet.tasks import TASKS
from pixelnet.zoo import resolve

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[1]
BSDS_TEST = REPO.parent / "shared" / "datasets" / "BSR" / "BSDS500" / "data" / "images" / "test"
runner = CliRunner()


def run_onnx(path: Path, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the graph's (H, W, K) output, fed as (1, 3, H, W) float32 in 0-255."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": image.transpose(2, 0, 1)[None].astype(np.float32)})[0]  # (1, K, H, W)
    return out[0].transpose(1, 2, 0)  # (H, W, K)


def bsds_images() -> dict[str, np.ndarray]:
    """A landscape and a portrait image (321 × 481, 481 × 321) and a 150 × 200 crop (150 is no multiple of 16)."""
    if not BSDS_TEST.is_dir():
        return {}
    found: dict[str, np.ndarray] = {}
    for path in sorted(BSDS_TEST.glob("*.jpg")):
        with Image.open(path) as im:
            kind = "landscape" if im.width > im.height else "portrait"
            if kind not in found:
                found[kind] = np.asarray(im.convert("RGB"))
        if len(found) == 2:
            break
    found["crop"] = np.ascontiguousarray(found["landscape"][37:187, 51:251])  # (150, 200, 3)
    return found


IMAGES = bsds_images()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    model, task, _ = load_model(resolve("bsds500-edges"), "cpu")
    path = tmp_path_factory.mktemp("export") / "edges.onnx"
    info = export(model, task, path, "onnx")
    assert info["task"] == "edges" and info["min_side"] == 16
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert {node.domain for node in graph.graph.node} <= {"", "ai.onnx"}  # standard operators only
    assert {"Conv", "Resize", "Pad", "Sigmoid"} <= {node.op_type for node in graph.graph.node}
    return model, task, path


@pytest.mark.skipif(not IMAGES, reason="../shared/datasets/BSR is absent")
@pytest.mark.parametrize("name", ["landscape", "portrait", "crop"])
def test_onnx_matches_the_torch_path_on_bsds_images(shipped, name):
    model, task, path = shipped
    image = IMAGES[name]
    expected = activations(model, task, image, InferConfig())  # (H, W, 1), one scale, no flip
    got = run_onnx(path, image)
    assert got.shape == expected.shape == (*image.shape[:2], 1) and got.dtype == np.float32
    delta = float(np.abs(got - expected).max())
    assert delta <= 1e-4, f"{name} {image.shape[:2]}: max |Δ| = {delta:.2e}"
    assert 0 <= got.min() and got.max() <= 1


def tiny(task: str, channels: int) -> PixelNet:
    """A random model with every tap (fc7: stride 32), dropout, and a head batch norm with non-trivial statistics."""
    torch.manual_seed(0)
    config = ModelConfig(width=0.0625, hidden=(16, 8), dropout=0.3, head_batch_norm=True, head_init="kaiming")
    model = PixelNet(config, channels)
    bn = model.head[0]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("task_name, channels", [("normals", 3), ("segmentation", 5)])
def test_a_tiny_model_with_fc7_and_head_batch_norm(tmp_path, task_name, channels):
    model = tiny(task_name, channels)
    task = TASKS[task_name](num_classes=channels) if task_name == "segmentation" else TASKS[task_name]()
    export(model, task, tmp_path / "m.onnx", "onnx")
    export(model, task, tmp_path / "m.pt", "torchscript")
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export, and says so
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.load(str(tmp_path / "m.pt"))
    rng = np.random.default_rng(0)
    for h, w in [(45, 70), (32, 97), (64, 64)]:  # the trace saw 131 × 167
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = activations(model, task, image, InferConfig())  # (H, W, K)
        got = run_onnx(tmp_path / "m.onnx", image)
        assert got.shape == (h, w, channels)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=f"onnx {h}×{w}")
        with torch.no_grad():
            scripted = traced(torch.from_numpy(image).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(scripted, expected, atol=1e-4, rtol=0, err_msg=f"torchscript {h}×{w}")
    if task_name == "normals":
        np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1, atol=1e-5)


def test_the_module_is_the_dense_path_on_a_batch():
    model = tiny("normals", 3)
    net = ExportedPixelNet(model, TASKS["normals"]())
    images = np.random.default_rng(1).integers(0, 256, (2, 40, 33, 3), dtype=np.uint8)
    with torch.no_grad():
        out = net(torch.from_numpy(images).permute(0, 3, 1, 2).float())  # (2, 3, 40, 33)
    for i, image in enumerate(images):
        expected = activations(model, TASKS["normals"](), image, InferConfig())
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), expected, atol=1e-5, rtol=0)


def test_cli_export_and_its_errors(tmp_path):
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, tiny("normals", 3), {"task": "normals"})
    out = tmp_path / "out" / "normals.onnx"
    result = runner.invoke(app, ["export", "--model", str(checkpoint), "--format", "onnx", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert out.is_file() and '"task": "normals"' in result.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["normals.onnx"]  # no temp file left
    assert run_onnx(out, np.zeros((32, 40, 3), np.uint8)).shape == (32, 40, 3)
    for args, message in [
        (["--model", str(checkpoint), str(tmp_path)], f"{tmp_path}: is a folder"),
        (["--model", str(checkpoint), "--format", "tflite", str(out)], "--format must be one of onnx, torchscript, got 'tflite'"),
        (["--model", "no-such-model", str(out)], "no shipped model of that name"),
    ]:
        result = runner.invoke(app, ["export", *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("pixelnet export: error:") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output

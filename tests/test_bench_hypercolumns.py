"""The Table 3 bench compares equal work: every variant builds the same hypercolumns at the samples."""

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from pipeline.cli import app
from pixelnet.bench.hypercolumns import (
    HypercolumnBench,
    BenchNet,
    Variant,
    all_variants,
    fit_problem,
    make_inputs,
    run,
)
from pixelnet.model.dense import DeconvUpsample, DenseHypercolumns, _deconv_col2im, bilinear_kernel
from pixelnet.model.hypercolumn import dense_hypercolumns, sample_hypercolumns

SMALL = HypercolumnBench(image_size=64, images=2, samples=300, hidden=(32, 32), dropout=0.0, classes=5, width=1 / 16,
                         warmup=0, repeats=1)


@pytest.mark.parametrize("upsample", ["deconv", "bilinear"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_every_method_builds_the_same_hypercolumns_and_outputs(upsample, head):
    bench = HypercolumnBench(**{**SMALL.__dict__, "upsample": upsample})
    images, coords, _ = make_inputs(bench, torch.device("cpu"))
    torch.manual_seed(0)
    nets = {m: BenchNet(Variant(m, head, False), bench).eval() for m in ("pixelnet-sparse", "fcn-sampling", "fcn-dense")}
    state = nets["pixelnet-sparse"].net.state_dict()
    for net in nets.values():
        net.net.load_state_dict(state)  # one trunk and head; the deconvolutions start bilinear
    with torch.no_grad():
        columns = {m: n.hypercolumns(images, coords) for m, n in nets.items()}  # (B, N, C)
        outputs = {m: n(images, coords) for m, n in nets.items()}  # (B, N, K)
    assert columns["pixelnet-sparse"].shape == (2, 300, sum(nets["fcn-dense"].net.trunk.channels[t] for t in bench.layers))
    assert columns["pixelnet-sparse"].abs().sum() > 0
    for m in ("fcn-sampling", "fcn-dense"):
        torch.testing.assert_close(columns[m], columns["pixelnet-sparse"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(outputs[m], outputs["pixelnet-sparse"], atol=1e-4, rtol=1e-4)


def test_the_methods_agree_under_bf16_autocast_within_bf16_tolerance():
    bench = HypercolumnBench(**{**SMALL.__dict__, "layers": ("conv1_2", "conv3_3")})
    images, coords, _ = make_inputs(bench, torch.device("cpu"))
    torch.manual_seed(0)
    nets = {m: BenchNet(Variant(m, "mlp", False), bench).eval() for m in ("pixelnet-sparse", "fcn-dense")}
    nets["fcn-dense"].net.load_state_dict(nets["pixelnet-sparse"].net.state_dict())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        sparse = nets["pixelnet-sparse"].hypercolumns(images, coords).float()
        dense = nets["fcn-dense"].hypercolumns(images, coords).float()
    scale = sparse.abs().max()
    assert scale > 0
    assert (dense - sparse).abs().max() <= 2e-2 * scale  # bf16 keeps 8 bits of mantissa


def test_dense_rows_step_through_the_head_on_every_pixel():
    """fcn-dense's gradient reaches the head from every pixel's hypercolumn, not only the sampled ones:
    that is the work it pays for. Its loss and gradients at the samples equal the sparse model's."""
    bench = SMALL
    images, coords, targets = make_inputs(bench, torch.device("cpu"))
    torch.manual_seed(0)
    sparse = BenchNet(Variant("pixelnet-sparse", "mlp", False), bench)
    dense = BenchNet(Variant("fcn-dense", "mlp", False), bench)
    dense.net.load_state_dict(sparse.net.state_dict())
    grads = []
    for net in (sparse, dense):
        loss = F.cross_entropy(net(images, coords).flatten(0, 1), targets.flatten())
        loss.backward()
        grads.append(net.net.head[0].weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_fcn_deconvolution_is_bilinear_upsampling_and_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    w = torch.randn(3, 4, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(_deconv_col2im(x, w, 4), F.conv_transpose2d(x, w, stride=4, padding=2))
    for factor in (2, 4, 16):
        up = DeconvUpsample(3, factor).double()
        expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        torch.testing.assert_close(up(x), expected, atol=1e-12, rtol=0)
    assert bilinear_kernel(2).sum() == 4  # a stride-f kernel spreads each input over f² outputs
    strides = [1, 2, 4, 8, 16, 32]
    for h, w in [(32, 32), (75, 101), (47, 61)]:  # sides not multiples of 32: pooling floors, the rest repeats
        feats = [torch.randn(1, 2, h // s, w // s, dtype=torch.float64) for s in strides]
        reference = dense_hypercolumns(feats, strides, (h, w)).permute(0, 2, 3, 1)  # (B, H, W, C)
        for upsample in ("deconv", "bilinear"):
            dense = DenseHypercolumns([2] * 6, strides, upsample).double()(feats, (h, w))  # (B, H, W, C)
            assert dense.shape == (1, h, w, 12)
            torch.testing.assert_close(dense, reference, atol=1e-12, rtol=0)
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        coords = torch.stack([xs.flatten(), ys.flatten()], -1)[None].double()  # (1, H*W, 2): every pixel
        torch.testing.assert_close(reference.reshape(1, h * w, 12), sample_hypercolumns(feats, coords, strides),
                                   atol=1e-12, rtol=0)


def test_fc7_deconvolution_is_reported_as_beyond_int_max_and_budgets_are_enforced():
    paper = HypercolumnBench()
    problem = fit_problem(Variant("fcn-dense", "mlp", True), paper, budget_mb=1e9)
    assert problem.startswith("does not fit") and "INT_MAX" in problem and "fc7" in problem
    assert fit_problem(Variant("pixelnet-sparse", "mlp", True), paper, budget_mb=1e9) is None
    assert fit_problem(Variant("fcn-dense", "mlp", False), paper, budget_mb=1e9) is None
    assert "budget" in fit_problem(Variant("fcn-dense", "linear", False), paper, budget_mb=100)
    assert len(all_variants()) == 12


def test_run_writes_the_schema_and_a_variant_out_of_budget_is_kept(tmp_path):
    report = run(SMALL, "cpu", [Variant("pixelnet-sparse", "mlp", False)])
    assert set(report) >= {"device", "image_size", "images", "rows"}
    assert report["device"].startswith("cpu") and report["image_size"] == 64 and report["images"] == 2
    (row,) = report["rows"]
    assert {"method", "head", "layers", "features", "samples", "peak_memory_mb", "batches_per_s"} <= set(row)
    assert row["samples"] == 600 and row["layers"] == ["conv1_2", "conv3_3", "conv5_3"]
    assert row["peak_memory_mb"] > 0 and row["batches_per_s"] > 0
    tight = run(HypercolumnBench(**{**SMALL.__dict__, "memory_mb": 1.0}), "cpu", [Variant("fcn-dense", "mlp", False)])
    assert tight["rows"][0]["batches_per_s"] is None and tight["rows"][0]["status"].startswith("does not fit")


def test_cli_writes_json_and_table_and_rejects_bad_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "hc.json"
    args = ["bench", "hypercolumns", "--device", "cpu", "--image-size", "64", "--samples", "100", "--hidden", "16",
            "--methods", "pixelnet-sparse", "--heads", "linear", "--fc7", "without", "--warmup", "0", "--repeats", "1",
            "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["rows"]] == ["pixelnet-sparse"]
    assert "pixelnet-sparse" in out.with_suffix(".md").read_text()
    bad = runner.invoke(app, [*args[:-2], "--methods", "fcn-magic", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "--methods" in bad.output and not (tmp_path / "x.json").exists()
    bad = runner.invoke(app, [*args[:-2], "--image-size", "100", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "--image-size" in bad.output

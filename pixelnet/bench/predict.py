"""How fast a shipped model predicts whole images on this machine, beside what edge-detector users compare it with.

Every figure is a median over repeated calls after warm-up calls, in this process, on the same image:

* the model through the one inference path (`pixelnet.infer.activations`): the dense fast path at
  single scale 1, 0.5 and 1.5 and multi-scale (0.5, 1, 1.5), in fp32 and bf16 autocast, and the
  sparse reference path (the inference of before the fast path) at scale 1 for comparison;
* OpenCV's Canny on the grey image (thresholds 100/200): the classical floor;
* a learned lightweight detector's architecture, kornia's DexiNed (untrained weights: timing only;
  ``uv sync --group bench``), skipped with a note when kornia is not installed.

A large photo (24 MP by default) is predicted as `pixelnet predict` does it (`predict_image`,
tiled at 1024 px) in a fresh process, whose peak resident memory above its start is reported.
Start-up is what a user waits before any work: `pixelnet --help`, an input error, and one image's
whole `pixelnet predict` run minus its steady-state time, each a fresh process (median of 3).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCALES = {"1": (1.0,), "0.5": (0.5,), "1.5": (1.5,), "multi": (0.5, 1.0, 1.5)}


@dataclass(frozen=True)
class PredictBench:
    model: str = "bsds500-edges"
    image: str | None = None       # a photo; None: a generated 481x321 picture (speed does not depend on content)
    repeats: int = 10
    warmup: int = 2
    large: tuple[int, int] = (4000, 6000)  # (H, W) of the large photo; (0, 0) skips it
    startup: bool = True

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"--repeats must be >= 1 and --warmup >= 0, got {self.repeats}, {self.warmup}")
        if min(self.large) < 0 or (0 in self.large and self.large != (0, 0)):
            raise ValueError(f"--large must be H,W with both sides > 0 (or 0,0 to skip), got {self.large}")


def generated_image(height: int = 321, width: int = 481, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: smooth shaded discs and boxes on a gradient, a stand-in for a BSDS photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xx / width, yy / height, 0.5 * np.ones_like(xx)], axis=-1) * 160  # (H, W, 3)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(15, 80)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2 if rng.random() < 0.5 else (abs(yy - cy) < r) & (abs(xx - cx) < r / 2)
        image[inside] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def load_photo(path: str | None) -> np.ndarray:
    if path is None:
        return generated_image()
    from pixelnet.data.folder import read_image

    return read_image(Path(path))


def _median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"seconds": times[len(times) // 2], "min": times[0], "max": times[-1], "repeats": repeats}


def _row(name: str, setting: str, timing: dict, note: str = "") -> dict:
    return {"method": name, "setting": setting, **timing, "images_per_s": 1.0 / timing["seconds"], "note": note}


def time_model(bench: PredictBench, image: np.ndarray) -> list[dict]:
    import torch

    from pixelnet.infer import InferConfig, activations
    from pixelnet.predict import load_model
    from pixelnet.zoo import resolve

    model, task, _ = load_model(resolve(bench.model), torch.device("cpu"))
    rows = []
    params = sum(p.numel() for p in model.parameters())
    for precision in ("fp32", "bf16"):
        for label, scales in SCALES.items():
            config = InferConfig(scales=scales, precision=precision)
            timing = _median_seconds(lambda: activations(model, task, image, config), bench.warmup, bench.repeats)
            rows.append(_row(f"pixelnet {bench.model}", f"{precision}, scale {label}", timing, f"{params / 1e6:.2f} M parameters"))
    for label in ("1", "multi"):  # test-time flip (evaluate.flip): the image and its mirror, averaged
        config = InferConfig(scales=SCALES[label], flip=True)
        timing = _median_seconds(lambda: activations(model, task, image, config), bench.warmup, bench.repeats)
        rows.append(_row(f"pixelnet {bench.model}", f"fp32, scale {label}, flip", timing, f"{params / 1e6:.2f} M parameters"))
    sparse = InferConfig(dense=False, chunk_pixels=65536)
    timing = _median_seconds(lambda: activations(model, task, image, sparse), 1, max(1, bench.repeats // 3))
    rows.append(_row(f"pixelnet {bench.model}", "fp32, scale 1, sparse path", timing,
                     "the inference of before the dense fast path (chunks of 65,536 pixels through the sampler)"))
    return rows


def time_canny(bench: PredictBench, image: np.ndarray) -> dict:
    import cv2

    def canny() -> np.ndarray:
        return cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 100, 200)

    return _row("OpenCV Canny", "grey, thresholds 100/200", _median_seconds(canny, bench.warmup, bench.repeats * 10))


def time_dexined(bench: PredictBench, image: np.ndarray) -> dict:
    """kornia's DexiNed at the image's size, untrained weights, fp32; a note instead when kornia is missing."""
    import torch

    try:
        from kornia.models.dexined import DexiNed
    except ImportError:
        return {"method": "DexiNed (kornia)", "setting": "fp32", "seconds": None, "images_per_s": None,
                "note": "kornia is not installed: uv sync --group bench"}
    torch.manual_seed(0)
    net = DexiNed(pretrained=False).eval()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()  # (1, 3, H, W)

    def forward() -> object:
        with torch.no_grad():
            return net(x)

    params = sum(p.numel() for p in net.parameters())
    return _row("DexiNed (kornia)", "fp32, untrained weights", _median_seconds(forward, bench.warmup, bench.repeats),
                f"{params / 1e6:.2f} M parameters; untrained (timing only)")


def large_photo(model_name: str, height: int, width: int) -> dict:
    """Predict a generated (height, width) photo as `pixelnet predict` does (tiled); in a fresh process
    (see `pixelnet.bench.measure.in_child`) so the peak resident set is this prediction's own."""
    import cv2
    import torch

    from pixelnet.bench.measure import peak_rss_mb, rss_mb
    from pixelnet.infer import InferConfig
    from pixelnet.predict import TileConfig, load_model, predict_image
    from pixelnet.zoo import resolve

    model, task, _ = load_model(resolve(model_name), torch.device("cpu"))
    image = cv2.resize(generated_image(), (width, height), interpolation=cv2.INTER_LINEAR)  # (H, W, 3)
    start_mb = rss_mb()
    t0 = time.perf_counter()
    edges = predict_image(model, task, image, InferConfig(), TileConfig())
    seconds = time.perf_counter() - t0
    return {"height": height, "width": width, "megapixels": height * width / 1e6, "seconds": seconds,
            "peak_mb_above_start": peak_rss_mb() - start_mb, "peak_rss_mb": peak_rss_mb(),
            "output_shape": list(edges.shape)}


def _run_seconds(args: list[str], expect_ok: bool) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if (done.returncode == 0) != expect_ok:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return seconds


def startup(model_name: str, image_path: Path, steady_seconds: float) -> dict:
    """Wall seconds of fresh `pixelnet` processes (median of 3 each)."""
    from PIL import Image

    cli = [sys.executable, "-m", "pipeline"]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.png"
        Image.new("RGB", (1, 1)).save(tiny)
        runs = {
            "help": (cli + ["--help"], True),
            "input_error": (cli + ["predict", "--model", model_name, str(tiny), "--out", str(Path(tmp) / "x")], False),
            "one_image": (cli + ["predict", "--model", model_name, str(image_path), "--out", str(Path(tmp) / "y"),
                                 "--quiet"], True),
        }
        out = {name: sorted(_run_seconds(args, ok) for _ in range(3))[1] for name, (args, ok) in runs.items()}
    out["one_image_minus_steady"] = out["one_image"] - steady_seconds
    return out


def run(bench: PredictBench) -> dict:
    import torch

    from pixelnet.bench.measure import in_child
    from pixelnet.zoo import machine

    image = load_photo(bench.image)
    rows = time_model(bench, image) + [time_canny(bench, image), time_dexined(bench, image)]
    fp32 = next(r for r in rows if r["setting"] == "fp32, scale 1")
    fastest = min((r for r in rows if r["method"].startswith("pixelnet") and r["setting"].endswith("scale 1")),
                  key=lambda r: r["seconds"])
    report = {"bench": asdict(bench), "image_shape": list(image.shape), "rows": rows,
              "fp32_scale1_seconds": fp32["seconds"], "fastest_scale1": fastest["setting"],
              "threads": torch.get_num_threads(), "machine": {**machine(), "amx": amx()}}
    if bench.large != (0, 0):
        report["large"] = in_child(large_photo, bench.model, *bench.large)
    if bench.startup:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "photo.png"
            from PIL import Image

            Image.fromarray(image).save(path)
            report["startup"] = startup(bench.model, path, fp32["seconds"])
    return report


def amx() -> bool:
    """Whether the CPU multiplies bf16 tiles natively (Intel AMX): where bf16 autocast pays on a CPU."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def table(report: dict) -> str:
    lines = ["| method | setting | s / image | images / s | note |", "|---|---|---:|---:|---|"]
    for r in report["rows"]:
        s = "n/a" if r["seconds"] is None else f"{r['seconds']:.4f}"
        ips = "n/a" if r["images_per_s"] is None else f"{r['images_per_s']:.2f}"
        lines.append(f"| {r['method']} | {r['setting']} | {s} | {ips} | {r.get('note', '')} |")
    if "large" in report:
        g = report["large"]
        lines += ["", f"Large photo {g['width']}×{g['height']} ({g['megapixels']:.0f} MP), tiled at 1024 px: "
                      f"**{g['seconds']:.1f} s**, peak memory {g['peak_mb_above_start']:.0f} MiB above the process's start "
                      f"({g['peak_rss_mb']:.0f} MiB resident at peak)."]
    if "startup" in report:
        s = report["startup"]
        lines += ["", f"Start-up (fresh processes, median of 3): `pixelnet --help` {s['help']:.2f} s; an input error "
                      f"(1×1 image) {s['input_error']:.2f} s; one image's whole `pixelnet predict` {s['one_image']:.2f} s, "
                      f"of which {s['one_image_minus_steady']:.2f} s is start-up (imports, model load, writing)."]
    return "\n".join(lines)


def describe(report: dict) -> str:
    m = report["machine"]
    return (f"{m['cpu']} ({m['cores']} cores, {'AMX' if m['amx'] else 'no AMX'}), {report['threads']} torch threads, "
            f"torch {m['torch']}; image {report['image_shape'][1]}×{report['image_shape'][0]} "
            f"({report['bench']['image'] or 'generated'})")


def default_out(report_dir: Path) -> Path:
    """reports/bench/predict/<cpu>.json: one file per CPU model, so machines do not overwrite each other."""
    from pixelnet.zoo import machine

    slug = "".join(ch if ch.isalnum() else "-" for ch in machine()["cpu"].lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return report_dir / f"{slug or 'cpu'}.json"


"""A prediction request checked before any work, without torch: the model's header, the images, the options.

`pixelnet predict` runs `check_request` before it imports torch (seconds), so a bad input is
reported at once, as one line naming the file, and nothing is written. What is checked:

* the model: a pixelnet ``model.pt`` (read by `pixelnet.zoo.header`, torch-free) naming a task;
  the output options suit that task (`OutputConfig.check_task`: its `Task.output_suffixes` and
  `Task.thin_edges`, read from the task's class, which imports no torch);
* the images: every path exists; a folder stands for the images in it (`IMAGE_SUFFIXES`, any
  case; hidden files skipped), its subfolders too with ``recursive`` (hidden ones and the output
  folder skipped); a folder without images is an error. Outputs are named by the image's stem
  alone, so two inputs with one stem (in different folders, say) are refused, naming both;
* each image decodes (`pixelnet.data.folder.read_image`: truncated, multi-frame and float images
  out of range fail there) and is large enough: at each scale c the image is resized to
  (max(1, round(h c)), max(1, round(w c))) (see `pixelnet.infer`), and each side must be at
  least the deepest tapped layer's stride, else that layer has no cell to read. The smallest scale
  binds and is the one named.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pixelnet.data.folder import read_image
from pixelnet.tasks import TASKS
from pixelnet.zoo.header import deepest_stride, read_header

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
FORMATS = ("png", "npy")  # what some task writes; each task says which of them it writes (Task.output_suffixes)
NMS_MIN_SIDE = 2  # pixelnet.metrics.nms.edge_nms interpolates between neighbours


@dataclass(frozen=True)
class OutputConfig:
    format: str = "png"        # png: 8-bit pictures; npy: float arrays (edges, normals)
    nms: bool = False          # edge maps: thin with the edges toolbox's NMS, as the benchmark does
    thin: bool = False         # edge maps: then binarise at `threshold` and thin morphologically (needs nms)
    threshold: float = 0.5     # with thin: probabilities >= threshold are edges

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"--format must be {' or '.join(FORMATS)}, got {self.format!r}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"--threshold must lie in (0, 1], got {self.threshold}")
        if self.thin and not self.nms:
            raise ValueError("--thin thins the NMS map: it needs nms")

    def check_task(self, task: str, where: Path | str) -> None:
        """The options suit a model of `task`; errors name the model and its task."""
        if task not in TASKS:
            raise ValueError(f"{where}: checkpoint names no known task ({task!r}; expected one of {list(TASKS)})")
        kind = TASKS[task]
        if self.nms and not kind.thin_edges:
            raise ValueError(f"--nms/--thin: {where} is a {task} model; NMS thins edge maps only")
        if self.format not in kind.output_suffixes:
            written = ", ".join(dict.fromkeys(f"<stem>{s}" for suffixes in kind.output_suffixes.values() for s in suffixes))
            raise ValueError(f"--format {self.format}: {where} is a {task} model, written as "
                             f"{' or '.join(kind.output_suffixes)} only ({written})")


@dataclass(frozen=True)
class CheckedInputs:
    """What `check_request` accepted: the images to predict, in order, and what they were checked against."""

    model: Path
    task: str
    images: tuple[Path, ...]
    min_side: int
    scales: tuple[float, ...]
    outputs: OutputConfig


def _folder_images(folder: Path, recursive: bool, skip: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        # Hidden folders (.git, .ipynb_checkpoints) and the output folder are not inputs.
        dirs[:] = sorted(d for d in dirs if recursive and not d.startswith(".")
                         and (skip is None or (here / d).resolve() != skip))
        found += [here / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def expand_images(paths: Sequence[Path], recursive: bool = False, out_dir: Path | None = None) -> list[Path]:
    """The image files named by `paths`: files as given, folders replaced by their images (sorted)."""
    if not paths:
        raise ValueError("no input images given")
    skip = Path(out_dir).resolve() if out_dir is not None else None
    images: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = _folder_images(p, recursive, skip)
            if not found:
                where = "in it or its subfolders" if recursive else "in it (--recursive also reads its subfolders)"
                raise ValueError(f"{p}: a folder with no images {where} ({' '.join(IMAGE_SUFFIXES)})")
            images += found
        elif not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        elif not p.is_file():
            raise ValueError(f"{p}: not a file")
        else:
            images.append(p)
    stems: dict[str, Path] = {}
    for p in images:
        if p.stem in stems:
            raise ValueError(f"{stems[p.stem]} and {p}: two inputs named {p.stem!r} would write the same outputs "
                             f"(outputs are named by the file's stem; rename one or predict them separately)")
        stems[p.stem] = p
    return images


def check_size(path: Path, size: tuple[int, int], min_side: int, scales: Sequence[float], nms: bool = False) -> None:
    """Every scaled size of the image has sides >= min_side (and >= 2 for NMS); the error names the
    file, its size and the smallest scale that fails."""
    h, w = size
    for c in sorted(scales):
        sh, sw = max(1, round(h * c)), max(1, round(w * c))  # as pixelnet.infer resizes
        if min(sh, sw) < min_side:
            at = "" if c == 1 else f" at scale {c:g} ({sh}×{sw} px)"
            raise ValueError(f"{path}: {h}×{w} px, the model needs at least {min_side} px on each side{at}")
    if nms and min(h, w) < NMS_MIN_SIDE:
        raise ValueError(f"{path}: {h}×{w} px, --nms needs at least {NMS_MIN_SIDE} px on each side")


EXPORT_FORMATS = ("onnx", "torchscript")


def check_export_target(out: Path, format: str) -> Path:
    """`pixelnet export`'s format and output file, checked before torch starts; errors name them."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    out = Path(out)
    if out.is_dir():
        suffix = "onnx" if format == "onnx" else "pt"
        raise ValueError(f"{out}: is a folder; give the file to write, e.g. {out / ('model.' + suffix)}")
    return out


def check_request(model: Path, images: Sequence[Path], scales: Sequence[float], outputs: OutputConfig,
                  out_dir: Path, recursive: bool = False) -> CheckedInputs:
    """Everything `pixelnet predict` can check before it loads the model; errors name the file."""
    model = Path(model)
    scales = tuple(float(s) for s in scales)
    if not scales or not all(0 < s < float("inf") for s in scales):
        raise ValueError(f"--scales: every scale must be positive, got {list(scales)}")
    header = read_header(model)
    task = header.get("task")
    outputs.check_task(task, model)
    min_side = deepest_stride(header, model)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder")
    paths = expand_images(images, recursive, out_dir)
    for p in paths:
        image = read_image(p)  # decodes fully: a truncated or non-image file fails here, before any output
        check_size(p, image.shape[:2], min_side, scales, outputs.nms)
    return CheckedInputs(model, task, tuple(paths), min_side, scales, outputs)

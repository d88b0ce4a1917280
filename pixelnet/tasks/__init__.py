"""Tasks by name. Each implements the Task protocol in base.py; a new task is one module here and one
line in TASKS, which params, the stages, `pixelnet predict` and the ablation report all read."""

from pixelnet.tasks.edges import EdgesTask
from pixelnet.tasks.normals import NormalsTask
from pixelnet.tasks.segmentation import SegmentationTask

TASKS = {"edges": EdgesTask, "normals": NormalsTask, "segmentation": SegmentationTask}

__all__ = ["TASKS", "EdgesTask", "NormalsTask", "SegmentationTask"]

"""The code each stage runs, as the stage's `deps:` in dvc.yaml list it: one list, checked against
the root dvc.yaml and every recipe's by tests/test_stage_deps.py.

TRAIN_CODE is also what the train stage hashes (`pipeline.stages`): a checkpoint made by other
library code is not resumed, since DVC re-runs the stage after a code change to get that code's
result.
"""

from __future__ import annotations

# The library code of the train stage (dvc.yaml's train deps besides its data and STAGE_CODE).
TRAIN_CODE = ("pixelnet/model", "pixelnet/tasks", "pixelnet/train.py", "pixelnet/batches.py",
              "pixelnet/data/transforms.py", "pixelnet/plan.py", "pixelnet/device.py")

# The stage layer each `pixelnet <command>` of a dvc.yaml runs: its body and the params loader.
_STAGES = ("pipeline/stages.py", "pipeline/params.py")
STAGE_CODE = {
    "download": _STAGES,
    "shard": _STAGES,
    "sample": _STAGES,
    "train": _STAGES,
    "evaluate": _STAGES,
    "ship": (),                                        # pixelnet.zoo.ship, no params
    "card": ("pipeline/card.py", "pipeline/speed_quality.py", "pixelnet/bench/agreement.py", "pipeline/params.py"),
}

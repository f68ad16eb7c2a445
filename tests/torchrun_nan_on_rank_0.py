"""Run by torchrun in place of ``-m src.train``: the same training, but rank 0's loss is NaN at its 5th step
(as a bad row in its shard alone would make it); the other ranks' losses stay finite."""

import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.tasks.classification import BinaryClassification  # noqa: E402

real, calls = BinaryClassification.training_step, {"n": 0}


def step(task, batch, index):
    calls["n"] += 1
    loss = real(task, batch, index)
    return loss * float("nan") if calls["n"] == 5 and os.environ.get("RANK") == "0" else loss


BinaryClassification.training_step = step
runpy.run_module("src.train", run_name="__main__", alter_sys=True)

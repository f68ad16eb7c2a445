"""Run by torchrun in place of ``-m src.train``: the same training, but rank 0's clock says the time limit is
reached at its first check while rank 1's says it never is (clocks of separate machines differ)."""

import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.training import time_limit  # noqa: E402

readings = iter([0.0])  # rank 0: the start, then a day later at every reading
time_limit.monotonic = (lambda: next(readings, 86_400.0)) if os.environ.get("RANK") == "0" else (lambda: 0.0)
runpy.run_module("src.train", run_name="__main__", alter_sys=True)

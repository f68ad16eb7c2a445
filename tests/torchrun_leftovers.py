"""Run by torchrun in place of ``-m src.train``: the same training, then, as the interpreter exits, how many
DistributedDataParallel wrappers are still alive. A wrapper left for the exit to collect tears its gloo group
down while the interpreter is half gone, which now and then aborts a finished run (SIGABRT)."""

import atexit
import gc
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def count_wrappers() -> None:
    from torch.nn.parallel import DistributedDataParallel

    alive = sum(isinstance(thing, DistributedDataParallel) for thing in gc.get_objects())
    print(f"DDP wrappers alive at exit: {alive}", flush=True)


atexit.register(count_wrappers)
runpy.run_module("src.train", run_name="__main__", alter_sys=True)

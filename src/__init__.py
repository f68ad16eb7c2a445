"""nnlab: learn and try neural-network ideas with Hydra-composed PyTorch models."""

import os
import time
from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run_id() -> str:
    """Time to the millisecond and the process id: two runs never share a folder."""
    now = time.time()
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}_{os.getpid()}"


OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT), replace=True)
OmegaConf.register_new_resolver("run_id", _run_id, use_cache=True, replace=True)

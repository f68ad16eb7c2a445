"""nnlab: learn and try neural-network ideas with Hydra-composed PyTorch models."""

import gc
import os
import re
import sys
import time
from pathlib import Path

# A command (`python -m src.train`, ...) first imports torch, Hydra and TensorBoard: ~300,000 objects that
# live as long as the process. While they load, each full pass of the garbage collector visits all that
# came before (five passes, 0.6-0.8 s of a 5 s run on a small CPU). The collector waits until the imports
# are done; then `commands_imported` freezes what they made, so that later passes skip it.
if sys.argv[0] == "-m":  # while Python imports the package of the module that `-m` names
    gc.disable()


def commands_imported() -> None:
    """A command's libraries are loaded: garbage collection resumes, without visiting their objects again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


from omegaconf import OmegaConf  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run_id() -> str:
    """Time to the millisecond and the process id: two runs never share a folder."""
    now = time.time()
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}_{os.getpid()}"


def _run_name(*parts: str) -> str:
    """A run's folder name: its choices, then what was set on the command line (``hydra.job.override_dirname``,
    items separated by ``|``), keys shortened to their last part: ``two_layer_gd_activation-relu_lr-0.5``.
    Only characters a Hydra override takes unquoted, so ``ckpt_path=<run>/checkpoints/last.ckpt`` works."""
    words = []
    for part in parts:
        for item in str(part).split("|"):
            key, equals, value = item.partition("=")
            word = f"{key.rsplit('.', 1)[-1]}-{value}" if equals else key
            words.append(re.sub(r"[^\w.+-]", "", re.sub(r"[/,=:]", "-", word)))
    return "_".join(word for word in words if word)[:100]


OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT), replace=True)
OmegaConf.register_new_resolver("run_id", _run_id, use_cache=True, replace=True)
OmegaConf.register_new_resolver("run_name", _run_name, replace=True)

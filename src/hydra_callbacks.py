"""Hydra callbacks: what must happen after Hydra composed the config and before it touches the disk."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.cli import release_stderr
from src.errors import EXIT_USER_ERROR


class RunStart(Callback):
    """Hydra composed the command line: release the held stderr (``src.cli``). Then try to make the
    run folder: Hydra makes it (``paths.log_dir``/...) before any of our code runs, and a path under
    a regular file, or in a folder we may not write, would end in its traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()
        if "paths" in config:
            _make_or_exit(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()
        if "paths" in config:
            _make_or_exit(config, "sweep")


def _make_or_exit(config: DictConfig, mode: str) -> None:
    HydraConfig.instance().set_config(config)  # the folder's name reads Hydra's choices; Hydra sets it again itself
    folder = config.hydra[mode].dir
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log_dir = config.paths.log_dir
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: paths.log_dir={log_dir!r}: cannot create the run folder {folder} ({error.strerror})", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)

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
from src.errors import EXIT_USER_ERROR, Rule, check, integer, positive_int, report_user_errors, setting
from src.training.checkpoint import FAILED


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
        report_user_errors(lambda: _check_sweep_counts(config.hydra))
        if "paths" in config:
            _make_or_exit(config, "sweep")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """One line per job, from what its folder holds (any launcher: jobs may run in other processes);
        exit 2 when a job failed."""
        sweep = Path(config.hydra.sweep.dir)
        jobs = sorted((folder for folder in sweep.iterdir() if (folder / ".hydra").is_dir()), key=_job_number) if sweep.is_dir() else []
        failed = 0
        for folder in jobs:
            if (folder / FAILED).is_file():
                failed += 1
                print(f"{folder.name}: failed: {(folder / FAILED).read_text().strip()}", file=sys.stderr)
            else:
                print(f"{folder.name}: {'ok' if (folder / 'metrics.json').is_file() else 'did not finish'}", file=sys.stderr)
        if failed:
            print(f"{failed} of {len(jobs)} jobs failed", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)


def _check_sweep_counts(hydra: DictConfig) -> None:
    """Counts that Optuna and joblib refuse only with a traceback ("No trials are completed yet", "n_jobs == 0 ...")."""
    nonzero = Rule(lambda value: integer.accepts(value) and value != 0, "a non-zero integer (-1: every CPU)")
    for group, name, rule in [("sweeper", "n_trials", positive_int), ("sweeper", "n_jobs", positive_int), ("launcher", "n_jobs", nonzero)]:
        if name in (hydra.get(group) or {}):
            check(f"hydra.{group}.{name}", hydra[group][name], rule)


def _job_number(folder: Path) -> int:
    number = folder.name.rsplit("_", 1)[-1]
    return int(number) if number.isdigit() else -1


def _make_or_exit(config: DictConfig, mode: str) -> None:
    HydraConfig.instance().set_config(config)  # the folder's name reads Hydra's choices; Hydra sets it again itself
    folder = config.hydra[mode].dir
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {setting('paths.log_dir', config.paths.log_dir)}: cannot create the run folder {folder} ({error.strerror})", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)

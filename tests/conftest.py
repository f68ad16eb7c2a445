from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src import REPO_ROOT
from src.train import train
from src.training.callbacks import Callback

CONF_DIR = str(REPO_ROOT / "conf")


def make_config(tmp_path: Path, *overrides: str) -> DictConfig:
    """The composed config, writing into tmp_path instead of logs/."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def run_training(tmp_path: Path, *overrides: str) -> dict[str, float]:
    return train(make_config(tmp_path, *overrides))


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def csv_file(tmp_path: Path):
    """Write a CSV under tmp_path and return its path."""

    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


class InterruptAtStep18(Callback):
    """As Ctrl-C at step 18 would: the run saves last.ckpt and raises Interrupted."""

    def on_step_end(self, trainer):
        if trainer.state.step == 18:
            trainer.interrupted_by = "SIGINT"

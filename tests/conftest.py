from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if "PYTEST_XDIST_WORKER" in os.environ:
    # Each pytest-xdist worker is one process per core: torch's own thread pool in each (and in the
    # processes the tests start) would oversubscribe the cores, and its spinning threads slow all down.
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src import REPO_ROOT
from src.train import train
from src.training.callbacks import Callback

CONF_DIR = str(REPO_ROOT / "conf")

# Where data=mnist, fashion_mnist and cifar10 look (data.root=null) in every test and the processes they
# start: small stand-ins, never a download. data=image_folder and data=arrays get files of their own.
# One folder per process: each pytest-xdist worker writes and removes its own, and this file, imported
# twice (as pytest's conftest and as tests.conftest), names the same one both times.
TEST_DATA = Path(tempfile.gettempdir()) / f"nnlab-test-data-{os.getpid()}"
os.environ["NNLAB_DATA"] = str(TEST_DATA)
DATA_FILES = {
    "image_folder": [f"data.path={TEST_DATA / 'pictures'}", "data.image_size=[16,12]"],
    "arrays": [f"data.path={TEST_DATA / 'arrays.npz'}"],
}


@pytest.fixture(scope="session", autouse=True)
def published_data_stand_ins():
    from tests.published_formats import write_arrays, write_caches, write_image_folder

    shutil.rmtree(TEST_DATA, ignore_errors=True)  # left by an earlier process with this id
    write_caches(TEST_DATA)
    write_image_folder(TEST_DATA / "pictures")
    write_arrays(TEST_DATA / "arrays.npz")
    yield
    shutil.rmtree(TEST_DATA, ignore_errors=True)


def make_config(tmp_path: Path, *overrides: str, name: str = "train") -> DictConfig:
    """The composed config of entry point ``name`` (conf/<name>.yaml), writing into tmp_path instead of logs/."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=[f"paths.output_dir={tmp_path}", *overrides])


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


def read_events(path):
    """Everything TensorBoard would show of the run in ``path`` (every point of every tag)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator

"""The TensorBoard run folder holds what the issue promises, read back with tensorboard itself."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import run_training


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tb") / "moons_run"
    run_training(path, "data=moons", "model=mlp", "optimizer=adam", "trainer.max_steps=300", "logger.histogram_every_n_epochs=10")
    return path


def read_events(path):
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_run_folder_holds_config_metrics_checkpoints_and_events(run_dir):
    assert (run_dir / "config.yaml").read_text().count("_target_: torch.optim.Adam") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "test/loss"} <= set(metrics)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    # One event file, in the run folder itself: no sibling folder for the hparams.
    assert [p.parent for p in run_dir.rglob("events.out.tfevents.*")] == [run_dir]


def test_scalars_histograms_images_text_graph_and_hparams(run_dir):
    events = read_events(run_dir)
    tags = events.Tags()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "train/lr"} <= set(tags["scalars"])
    assert any(tag.startswith("weights/") for tag in tags["histograms"])
    assert any(tag.startswith("gradients/") for tag in tags["histograms"])
    assert {"train/decision_boundary", "test/confusion_matrix"} <= set(tags["images"])
    assert any("confusion_matrix_table" in tag for tag in tags["tensors"])
    assert tags["graph"]
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"optimizer.lr" in hparams["_hparams_/experiment"] and b"test/acc" in hparams["_hparams_/experiment"]
    final_acc = events.Scalars("test/acc")[-1].value
    assert final_acc == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["test/acc"])
    steps = [event.step for event in events.Scalars("train/loss")]
    assert steps == sorted(steps) and steps[-1] == 300


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_real_tensorboard_server_shows_the_run(run_dir):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir.parent), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline and not runs:
            try:
                runs = json.load(urllib.request.urlopen(f"{base}/data/runs", timeout=5))
            except OSError:
                pass
            time.sleep(0.5)
        assert runs == ["moons_run"]
        tags = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=10))
        assert {"train/loss", "val/acc", "test/acc"} <= set(tags["moons_run"])
        points = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/scalars?run=moons_run&tag=val/acc", timeout=10))
        assert points and 0.5 < points[-1][2] <= 1.0
    finally:
        server.terminate()
        server.wait(timeout=10)

"""The commands as a user types them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from src import REPO_ROOT


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "src.train", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_default_job_prints_metrics_then_the_run_folder(tmp_path):
    result = run(f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    run_dir = Path(lines[-1])
    assert run_dir.parent == tmp_path / "train" and run_dir.is_dir()
    metrics = dict(item.split("=") for item in lines[-2].split())
    assert float(metrics["train/acc"]) >= 0.90
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["train/acc"] >= 0.90 and saved["step"] == 10_000
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["optimizer"]["lr"] == 1.2 and config["model"]["hidden"] == [4]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))


def test_multirun_gives_every_job_its_own_folder(tmp_path):
    result = run("-m", "optimizer=gd,minibatch", "activation=tanh,relu", "trainer.max_steps=5", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    folders = sorted(path.parent for path in tmp_path.rglob("metrics.json"))
    assert len(folders) == 4 and len(set(folders)) == 4
    for folder in folders:
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    activations = sorted(yaml.safe_load((f / "config.yaml").read_text())["activation"]["_target_"] for f in folders)
    assert activations == ["torch.nn.ReLU", "torch.nn.ReLU", "torch.nn.Tanh", "torch.nn.Tanh"]


def test_a_command_loads_its_libraries_without_full_garbage_collections(tmp_path):
    """`python -m src.train` imports torch, Hydra and TensorBoard with the collector off, then freezes what they
    made; a program that imports the package keeps Python's collector as it was."""
    (tmp_path / "sitecustomize.py").write_text(
        "import atexit, gc\n"
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'stop' and info['generation'] == 2 and full.append(1))\n"
        "atexit.register(lambda: print('gc', len(full), gc.isenabled(), gc.get_freeze_count()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for args, full, frozen in ((["-m", "src.train", "--cfg", "job"], 0, True), (["-c", "import src.train"], None, False)):
        result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
        _, collections, enabled, frozen_objects = result.stdout.strip().splitlines()[-1].split()
        assert enabled == "True" and (int(frozen_objects) > 100_000) == frozen, result.stdout[-300:]
        if full is not None:
            assert int(collections) == full

"""The loop's everyday tools (#11): progress, the run log, the per-step history, callbacks, accumulation,
schedules, the weights the test split is scored on, the LR range test."""

import csv
import re
import signal
import subprocess
import sys
import time

import pytest

from src import REPO_ROOT
from tests.conftest import run_cli, run_training


def test_a_progress_bar_shows_steps_of_the_total_and_the_latest_metrics(tmp_path, capsys):
    run_training(tmp_path, "trainer.max_steps=50", "trainer.progress_bar=true", "logger=none")
    bar = capsys.readouterr().err.split("\r")[-1]
    assert re.search(r"100%.*\b50/50\b.*step/s.*train/loss=0\.\d+", bar), bar


def test_without_a_terminal_one_plain_line_comes_every_few_seconds(tmp_path, capsys):
    run_training(tmp_path, "trainer.max_steps=150", "trainer.progress_bar=false", "trainer.log_every_seconds=1e-9", "logger=none")
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("step ")]
    assert len(lines) >= 100 and "\r" not in out.out + out.err
    assert re.fullmatch(r"step 50/150 \(33%\), epoch 49, [\d.e+]+ steps/s, 00:00 left", lines[49]), lines[49]
    # after the first check (step 100), the latest metrics
    assert re.fullmatch(r"step 149/150 \(99%\), epoch 148, [\d.e+]+ steps/s, 00:00 left train/loss=0\.\d+ train/acc=0\.\d+", lines[148]), lines[148]


def test_everything_a_run_prints_is_kept_in_its_train_log_failure_included(tmp_path):
    result = run_cli("src.train", "trainer.max_steps=200", "trainer.log_every_seconds=1e-9", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "train" / result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    kept = (run_dir / "train.log").read_text()
    for line in result.stdout.strip().splitlines():
        assert line in kept
    assert "  lr: 1.2" in kept and "| **total** | MLP | | 17 (17 trainable) |" in kept  # the config, the model summary
    assert re.search(r"step 199/200 \(100%\)", kept) and "trained 200 epochs, 200 steps" in kept

    failed = run_cli("src.train", "optimizer.lr=-1", f"paths.log_dir={tmp_path / 'bad'}")
    assert failed.returncode == 2 and failed.stderr.strip().splitlines()[-1] == "error: optimizer.lr=-1: must be a number in (0, 1e+06]"
    (log,) = (tmp_path / "bad").rglob("train.log")
    assert log.read_text().strip().splitlines()[-1].endswith("ERROR error: optimizer.lr=-1: must be a number in (0, 1e+06]")


def history(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_csv_history_holds_every_check_of_every_member_and_the_mean(tmp_path):
    metrics = run_training(tmp_path, "trainer.max_steps=300", "trainer.seeds=2", "logger=csv")
    rows = history(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["step", "name", "value", "member", "wall_time"]
    losses = {(row["member"], int(row["step"])): float(row["value"]) for row in rows if row["name"] == "train/loss"}
    assert sorted(losses) == sorted((member, step) for member in ("", "seed_42", "seed_43") for step in (100, 200, 300))
    assert losses["seed_42", 300] == pytest.approx(metrics["per_seed"]["42"]["train/loss"])
    assert losses["", 300] == pytest.approx(metrics["train/loss"])
    assert losses["", 200] == pytest.approx((losses["seed_42", 200] + losses["seed_43", 200]) / 2)
    assert not list(tmp_path.glob("events.out.tfevents.*"))  # the csv logger alone


@pytest.mark.slow
def test_the_csv_history_survives_a_kill_with_every_check_but_the_last(tmp_path):
    reference = run_cli("src.train", "trainer.max_steps=600", f"paths.log_dir={tmp_path / 'whole'}")
    assert reference.returncode == 0, reference.stderr
    (whole,) = (tmp_path / "whole").rglob("metrics.csv")
    expected = {(row["step"], row["name"]): row["value"] for row in history(whole)}
    process = subprocess.Popen(
        [sys.executable, "-m", "src.train", "trainer.max_steps=1000000", f"paths.log_dir={tmp_path / 'killed'}"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            files = list((tmp_path / "killed").rglob("metrics.csv"))
            if files and "500,train/loss" in files[0].read_text():
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    rows = history(files[0])
    steps = sorted({int(row["step"]) for row in rows})
    assert steps == list(range(100, steps[-1] + 1, 100)) and steps[-1] >= 500
    for row in rows:  # every row whole, and the same as the run that was not killed
        assert row["wall_time"] and (int(row["step"]) > 600 or expected[row["step"], row["name"]] == row["value"])

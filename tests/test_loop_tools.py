"""The loop's everyday tools (#11): progress, the run log, the per-step history, callbacks, accumulation,
schedules, the weights the test split is scored on, the LR range test."""

import re

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

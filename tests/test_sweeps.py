"""Sweeps on existing engines: Hydra's joblib and submitit launchers and the Optuna sweeper."""

import json
import subprocess
import sys

import pytest
import yaml

from src import REPO_ROOT


def sweep(tmp_path, *args):
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", *args, "logger=none", f"paths.log_dir={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, sorted(tmp_path.rglob("metrics.json"))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launcher_runs_every_job_in_its_own_folder(tmp_path, launcher):
    _, files = sweep(tmp_path, f"launcher={launcher}", "optimizer=gd,minibatch", "activation=tanh,relu", "trainer.max_steps=5")
    assert len(files) == 4 and len({f.parent for f in files}) == 4
    chosen = sorted(
        (yaml.safe_load((f.parent / "config.yaml").read_text())["optimizer"]["batch_size"] or 0,
         yaml.safe_load((f.parent / "config.yaml").read_text())["activation"]["_target_"])
        for f in files
    )
    assert chosen == [(0, "torch.nn.ReLU"), (0, "torch.nn.Tanh"), (64, "torch.nn.ReLU"), (64, "torch.nn.Tanh")]
    assert all(json.loads(f.read_text())["step"] == 5 for f in files)


@pytest.mark.slow
def test_optuna_search_optimizes_the_monitored_metric(tmp_path):
    result, files = sweep(
        tmp_path, "hparams_search=optuna", "data=moons", "model=mlp", "optimizer=adam", "trainer.max_steps=40",
        "hydra.sweeper.n_trials=4",
    )
    assert len(files) == 4
    accuracies = [json.loads(f.read_text())["val/acc"] for f in files]
    assert f"Best value: {max(accuracies)}" in result.stderr + result.stdout
    assert "setup plugin" not in result.stdout  # Optuna's alembic announcing its plugins on Hydra's console
    lrs = {yaml.safe_load((f.parent / "config.yaml").read_text())["optimizer"]["lr"] for f in files}
    assert len(lrs) == 4  # each trial its own learning rate


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, launcher):
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", "optimizer.lr=0,1.2", "trainer.max_steps=5", "logger=none",
         f"paths.log_dir={tmp_path}", *([f"launcher={launcher}"] if launcher != "basic" else [])],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    jobs = sorted(folder for folder in tmp_path.glob("train/multirun_*/*") if folder.is_dir())
    assert [job.name.rsplit("_", 1)[1] for job in jobs] == ["0", "1"]
    failed, ok = jobs
    assert (failed / "failed").read_text() == "optimizer.lr=0: must be a number in (0, 1e+06]\n"
    assert not (failed / "metrics.json").exists() and (ok / "metrics.json").is_file()  # the second job ran
    assert result.stderr.strip().splitlines()[-3:] == [
        f"{failed.name}: failed: optimizer.lr=0: must be a number in (0, 1e+06]", f"{ok.name}: ok", "1 of 2 jobs failed",
    ]


@pytest.mark.slow
def test_optuna_records_a_failing_trial_and_searches_on(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", "hparams_search=optuna", "data=moons", "model=mlp", "optimizer=adam",
         "hydra.sweeper.n_trials=4", "trainer.max_steps=5", "logger=none", "trainer.gradient_clip_val=choice(-1.0,1.0)",
         f"paths.log_dir={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    failed = list(tmp_path.rglob("failed"))
    finished = list(tmp_path.rglob("metrics.json"))
    assert len(failed) + len(finished) == 4 and failed and finished
    best = yaml.safe_load(next(tmp_path.rglob("optimization_results.yaml")).read_text())
    assert best["best_params"]["trainer.gradient_clip_val"] == 1.0


def test_an_optuna_search_whose_every_trial_fails_ends_in_one_line_per_job(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", "hparams_search=optuna", "data=moons", "model=mlp", "hydra.sweeper.n_trials=3",
         "trainer.max_steps=5", "logger=none", "trainer.precision=16-mixed", f"paths.log_dir={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "3 of 3 jobs failed"
    assert all(": failed: trainer.precision='16-mixed': mixed precision in float16 needs CUDA" in line for line in lines[-4:-1])
    assert len(list(tmp_path.rglob("failed"))) == 3 and not list(tmp_path.rglob("metrics.json"))


@pytest.mark.parametrize(
    "choice, setting, rule",
    [
        ("hparams_search=optuna", "hydra.sweeper.n_trials=0", "a positive integer"),
        ("hparams_search=optuna", "hydra.sweeper.n_jobs=-1", "a positive integer"),
        ("launcher=joblib", "hydra.launcher.n_jobs=0", "a non-zero integer (-1: every CPU)"),
    ],
)
def test_a_sweep_of_no_trials_or_no_workers_is_refused_in_one_line_before_any_folder(tmp_path, choice, setting, rule):
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", choice, setting, "optimizer.lr=0.1,0.2", "logger=none", f"paths.log_dir={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"error: {setting}: must be {rule}"
    assert not any(tmp_path.iterdir())

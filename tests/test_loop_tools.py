"""The loop's everyday tools (#11): progress, the run log, the per-step history, callbacks, accumulation,
schedules, the weights the test split is scored on, a new run from a checkpoint's weights, the LR range test."""

import csv
import json
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from src import REPO_ROOT
from src.evaluate import evaluate
from src.errors import ConfigError, UserError
from src.lr_find import RangeTest, lr_find, range_test, steepest_descent
from src.models.members import member_state
from src.tasks.classification import BinaryClassification
from src.training.checkpoint import load_checkpoint
from src.training.schedules import WarmupCosine
from src.training import time_limit
from src.training.callbacks import Callback
from src.training.signals import Interrupted
from tests.conftest import make_config, read_events, run_cli, run_training


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
    assert sorted(losses) == sorted((member, step) for member in ("", "seed_42", "seed_43") for step in (0, 100, 200, 300))
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
    assert steps == list(range(0, steps[-1] + 1, 100)) and steps[-1] >= 500  # step 0: the untrained model
    for row in rows:  # every row whole, and the same as the run that was not killed
        assert row["wall_time"] and (int(row["step"]) > 600 or expected[row["step"], row["name"]] == row["value"])


def test_the_test_split_is_scored_on_the_best_checks_weights_unless_asked_for_the_last(tmp_path):
    overfitting = ["data=moons", "model=mlp", "optimizer=adam", "optimizer.lr=0.05", "trainer.max_steps=800", "logger=none"]
    best = run_training(tmp_path / "best", *overfitting)
    last = run_training(tmp_path / "last", *overfitting, "trainer.test_weights=last")
    assert load_checkpoint(tmp_path / "best" / "checkpoints" / "best.ckpt")["loop"]["step"] < 800  # it overfits after
    assert (best["test_weights"], last["test_weights"]) == ("best", "last")
    assert best["test/loss"] == pytest.approx(evaluate(str(tmp_path / "best" / "checkpoints" / "best.ckpt"))["test/loss"])
    assert last["test/loss"] == pytest.approx(evaluate(str(tmp_path / "last" / "checkpoints" / "last.ckpt"))["test/loss"])
    assert best["test/loss"] < 0.75 * last["test/loss"]
    assert best["train/loss"] == last["train/loss"]  # the training itself is the same


@pytest.mark.parametrize("seeds", [1, 2])
def test_accumulating_gradients_over_4_batches_equals_one_batch_4_times_as_large(tmp_path, seeds):
    common = ["data=digits", "model=mlp", "optimizer=minibatch", "trainer.max_steps=40", "logger=none", f"trainer.seeds={seeds}"]
    large = run_training(tmp_path / "large", *common, "optimizer.batch_size=128")
    parts = run_training(tmp_path / "parts", *common, "optimizer.batch_size=32", "trainer.accumulate_grad_batches=4")
    small = run_training(tmp_path / "small", *common, "optimizer.batch_size=32")
    weights = {name: load_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")["model"] for name in ("large", "parts", "small")}
    for key, tensor in weights["large"].items():
        torch.testing.assert_close(weights["parts"][key], tensor, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(weights["small"]["model.layers.1.weight"], weights["large"]["model.layers.1.weight"])
    assert parts["train/step_loss"] == pytest.approx(large["train/step_loss"], rel=1e-5)
    assert parts["epoch"] == large["epoch"] > small["epoch"]


def test_warmup_then_cosine_rises_linearly_then_falls_to_the_floor():
    factor = WarmupCosine(warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert [factor(step) for step in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert factor(60) == pytest.approx(0.55)  # half-way down the cosine: between 1 and the floor
    assert factor(110) == factor(500) == pytest.approx(0.1)


def test_a_step_schedule_advances_every_step_and_spans_the_planned_steps(tmp_path):
    run_training(tmp_path, "data=moons", "model=mlp", "optimizer=adam", "scheduler=warmup_cosine", "scheduler.warmup_steps=150",
                 "trainer.max_steps=400", "logger=csv")
    lr = {int(row["step"]): float(row["value"]) for row in history(tmp_path / "metrics.csv") if row["name"] == "train/lr"}
    assert lr == pytest.approx({0: 0.001 / 150, 100: 0.001 * 101 / 150, 200: 0.001 * 0.5 * (1 + math.cos(math.pi * 50 / 250)),
                                300: 0.001 * 0.5 * (1 + math.cos(math.pi * 150 / 250)), 400: 0.0}, abs=1e-12)


def test_a_plateau_schedule_follows_the_monitored_metric_in_its_direction(tmp_path):
    metrics = run_training(tmp_path, "data=moons", "model=mlp", "optimizer=adam", "scheduler=plateau", "scheduler.patience=0",
                           "scheduler.threshold=0.5", "trainer.monitor=val/acc", "trainer.max_steps=300", "logger=csv")
    lr = [float(row["value"]) for row in history(tmp_path / "metrics.csv") if row["name"] == "train/lr"]
    # val/acc is maximized: after the first check none beats the best by half (threshold 0.5, relative), so each
    # halves the lr; a check logs the lr the steps before it used
    assert lr == pytest.approx([0.001, 0.001, 0.001, 0.0005]) and metrics["train/lr"] == pytest.approx(0.0005)  # step 0 first
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["optimizers"][0]["param_groups"][0]["lr"] == pytest.approx(0.00025)


def averaged_weights(run_dir, name="ema"):
    return load_checkpoint(run_dir / "checkpoints" / f"{name}.ckpt")["model"]


def test_ema_weights_are_evaluated_beside_the_model_and_written_for_evaluate(tmp_path):
    common = ["data=moons", "model=mlp", "optimizer=adam", "trainer.max_steps=300", "logger=none", "callbacks=[ema]"]
    metrics = run_training(tmp_path / "slow", *common, "callbacks.ema.decay=0.99")
    last, ema = load_checkpoint(tmp_path / "slow" / "checkpoints" / "last.ckpt")["model"], averaged_weights(tmp_path / "slow")
    assert not torch.allclose(ema["model.layers.1.weight"], last["model.layers.1.weight"], atol=1e-3)
    assert metrics["val/ema/loss"] != metrics["val/loss"]
    assert metrics["test/ema/acc"] == pytest.approx(evaluate(str(tmp_path / "slow" / "checkpoints" / "ema.ckpt"))["test/acc"])
    # a decay near 0 follows the weights: the average is the last weights
    run_training(tmp_path / "fast", *common, "callbacks.ema.decay=1e-9")
    fast, last = averaged_weights(tmp_path / "fast"), load_checkpoint(tmp_path / "fast" / "checkpoints" / "last.ckpt")["model"]
    for name, tensor in last.items():
        torch.testing.assert_close(fast[name], tensor)


@pytest.mark.parametrize("callbacks", ["[ema]", "[swa]"])
def test_weight_averages_are_restored_on_resume(tmp_path, callbacks):
    args = ["data=moons", "model=mlp", "optimizer=minibatch", "trainer.max_epochs=12", "trainer.max_steps=null",
            "logger=none", f"callbacks={callbacks}", "callbacks.swa.start_fraction=0.25" if "swa" in callbacks else "callbacks.ema.decay=0.9"]
    name = callbacks.strip("[]")
    run_training(tmp_path / "whole", *args)
    with pytest.raises(Interrupted):
        run_training(tmp_path / "part", *args, "+callbacks.stop._target_=tests.conftest.InterruptAtStep18")
    run_training(tmp_path / "rest", *args, f"ckpt_path={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    whole, rest = averaged_weights(tmp_path / "whole", name), averaged_weights(tmp_path / "rest", name)
    for key, tensor in whole.items():
        assert torch.equal(rest[key], tensor), key
    assert not torch.equal(whole["model.layers.1.weight"], load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")["model"]["model.layers.1.weight"])


CLOCK = [0.0]


class OneSecondAStep(Callback):
    """The time limit's clock, one second a training step."""

    def on_step_end(self, trainer):
        CLOCK[0] += 1.0


def test_a_time_limit_ends_the_run_at_the_first_check_after_it_and_a_resumed_run_spends_the_same_budget(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(time_limit, "monotonic", lambda: CLOCK[0])
    CLOCK[0] = 0.0
    # The default job checks every 100 steps: 250 "seconds" are over at the check of step 300.
    args = ["trainer.max_steps=1000", "logger=none", "callbacks=[time_limit]", f"+callbacks.clock._target_={__name__}.OneSecondAStep"]
    metrics = run_training(tmp_path / "first", *args, "callbacks.time_limit.minutes=4.1667")
    assert metrics["step"] == 300 and json.loads((tmp_path / "first" / "metrics.json").read_text())["step"] == 300
    assert "time limit: 4.1667 minutes of training reached at step 300; training ends here" in capsys.readouterr().out
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["callbacks"]["0.TimeLimit"] == {"seconds": 300.0}
    assert run_training(tmp_path / "again", *args, "callbacks.time_limit.minutes=4.1667", f"ckpt_path={last}")["step"] == 400
    assert run_training(tmp_path / "more", *args, "callbacks.time_limit.minutes=10", f"ckpt_path={last}")["step"] == 600


def test_a_callbacks_state_that_this_run_lacks_is_left_out_of_a_resume_with_a_warning(tmp_path, capsys):
    run_training(tmp_path / "limited", "trainer.max_steps=200", "logger=none", "callbacks=[time_limit]")
    last = tmp_path / "limited" / "checkpoints" / "last.ckpt"
    metrics = run_training(tmp_path / "averaged", "trainer.max_steps=300", "logger=none", "callbacks=[ema]", f"ckpt_path={last}")
    assert metrics["step"] == 300 and "val/ema/loss" not in metrics  # the EMA starts afresh, the time is not loaded into it
    assert f"{last} holds the state of a TimeLimit this run does not have at that place; it is left out" in capsys.readouterr().err


def test_a_time_limit_of_no_time_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^callbacks\.time_limit\.minutes=0: must be a number > 0$"):
        run_training(tmp_path, "logger=none", "callbacks=[time_limit]", "callbacks.time_limit.minutes=0")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A moons MLP trained 30 Adam steps: its last.ckpt and the metrics it ended with."""
    folder = tmp_path_factory.mktemp("pretrained")
    metrics = run_training(folder, "data=moons", "model=mlp", "optimizer=adam", "trainer.max_steps=30", "logger=none")
    return folder / "checkpoints" / "last.ckpt", metrics


@pytest.mark.parametrize("seeds", [1, 2])
def test_a_new_run_starts_from_a_checkpoints_weights_with_its_own_optimizer_and_step_count(tmp_path, pretrained, seeds):
    checkpoint, before = pretrained
    weights = load_checkpoint(checkpoint)["model"]
    # Plain SGD at an lr too small to move them: the run ends on the checkpoint's weights, scored as the checkpoint was.
    metrics = run_training(
        tmp_path, "data=moons", "model=mlp", "optimizer=minibatch", "optimizer.lr=1e-12", "trainer.max_steps=3", "logger=none",
        f"trainer.seeds={seeds}", f"init_from={checkpoint}",
    )
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert saved["loop"]["step"] == 3 and "momentum_buffer" not in str(saved["optimizers"]) and "exp_avg" not in str(saved["optimizers"])
    for member in range(seeds):  # one model's weights start every member
        model = member_state(saved["model"], member) if seeds > 1 else saved["model"]
        for name, tensor in weights.items():
            torch.testing.assert_close(model[name], tensor, rtol=0, atol=1e-9)
    assert metrics["val/acc"] == pytest.approx(before["val/acc"]) and metrics["val/loss"] == pytest.approx(before["val/loss"], rel=1e-6)


def test_a_fine_tuning_run_resumed_with_its_own_overrides_ends_where_it_would_have(tmp_path, pretrained):
    job = ["data=moons", "model=mlp", "optimizer=minibatch", "optimizer.lr=0.05", "logger=none", f"init_from={pretrained[0]}"]
    run_training(tmp_path / "whole", *job, "trainer.max_steps=12")
    run_training(tmp_path / "part", *job, "trainer.max_steps=5")
    run_training(tmp_path / "rest", *job, "trainer.max_steps=12", f"ckpt_path={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    whole, rest = (load_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt") for name in ("whole", "rest"))
    assert rest["loop"]["step"] == 12
    assert all(torch.equal(whole["model"][name], rest["model"][name]) for name in whole["model"])


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["model.hidden=[8]"], r"init_from='.*last.ckpt': does not match this model \(the checkpoint has model.layers.5.(weight|bias), which this model lacks\)"),
        (["data=digits"], r"init_from='.*last.ckpt': does not match this model \(model.layers.1.weight has shape \(64, 2\) in the checkpoint, \(64, 64\)"),
    ],
)
def test_a_checkpoint_that_cannot_start_this_run_is_refused_in_one_line(tmp_path, pretrained, overrides, line):
    checkpoint = pretrained[0]
    with pytest.raises(UserError, match=line):
        run_training(tmp_path, "data=moons", "model=mlp", "trainer.max_steps=3", "logger=none", f"init_from={checkpoint}", *overrides)
    with pytest.raises(UserError, match=r"init_from='.*nosuch.ckpt': no such checkpoint file"):
        run_training(tmp_path, "trainer.max_steps=3", "logger=none", f"init_from={tmp_path / 'nosuch.ckpt'}")


@pytest.fixture(scope="module")
def pretrained_seeds(tmp_path_factory):
    """The moons MLP of seeds 42 and 43, trained 30 Adam steps as one run: its last.ckpt."""
    folder = tmp_path_factory.mktemp("pretrained_seeds")
    run_training(folder, "data=moons", "model=mlp", "optimizer=adam", "trainer.max_steps=30", "trainer.seeds=2", "logger=none")
    return folder / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("seeds, init_member, started_from", [(1, 43, [1]), (3, 42, [0, 0, 0]), (2, None, [0, 1])])
def test_a_run_of_several_seeds_starts_a_new_run_from_the_member_chosen_or_member_by_member(tmp_path, pretrained_seeds, seeds, init_member, started_from):
    stacked = load_checkpoint(pretrained_seeds)["model"]
    chosen = [] if init_member is None else [f"init_member={init_member}"]
    run_training(
        tmp_path, "data=moons", "model=mlp", "optimizer=minibatch", "optimizer.lr=1e-12", "trainer.max_steps=3", "logger=none",
        f"trainer.seeds={seeds}", f"init_from={pretrained_seeds}", *chosen,
    )
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["model"]
    for member, source in enumerate(started_from):
        model = member_state(saved, member) if seeds > 1 else saved
        for name, tensor in member_state(stacked, source).items():
            torch.testing.assert_close(model[name], tensor, rtol=0, atol=1e-9)


def test_a_member_that_cannot_start_this_run_is_refused_in_one_line(tmp_path, pretrained_seeds):
    job = ["data=moons", "model=mlp", "trainer.max_steps=3", "logger=none"]
    for overrides, line in [
        ([f"init_from={pretrained_seeds}"], "init_from='{}': holds the models of 2 seeds (42, 43) and this run trains 1: start from one of them with init_member=<seed>"),
        ([f"init_from={pretrained_seeds}", "init_member=7"], "init_member=7: not a seed of this run; its seeds: 42, 43"),
        ([f"init_from={pretrained_seeds}", "init_member=x"], "init_member='x': must be an integer"),
        (["init_member=43"], "init_member=43: chooses the seed of init_from's checkpoint to start from, but init_from is not set"),
    ]:
        with pytest.raises(UserError) as error:
            run_training(tmp_path, *job, *overrides)
        assert str(error.value) == line.format(pretrained_seeds)
    assert not (tmp_path / "checkpoints").exists()


def test_the_steepest_descent_of_a_made_up_curve_is_where_it_falls_fastest():
    lrs = list(np.logspace(-6, 0, 61))
    losses = [1.0 - 0.5 * math.tanh(2 * (math.log10(lr) + 2)) for lr in lrs]  # falls fastest at 1e-2
    assert steepest_descent(lrs, losses) == pytest.approx(1e-2, rel=0.05)


def test_a_suggestion_at_the_end_of_an_lr_range_that_never_diverged_is_doubted():
    lrs = list(np.logspace(-6, 1, 71))
    inside = [1.0 - 0.5 * math.tanh(2 * (math.log10(lr) + 2)) for lr in lrs]  # falls fastest at 1e-2
    still_falling = [1.0 - 0.01 * lr for lr in lrs]  # the planar net's curve: fastest at the last lr scored
    made = {name: RangeTest(lrs, losses, losses, steepest_descent(lrs, losses)) for name, losses in [("in", inside), ("end", still_falling)]}
    assert made["in"].doubt(10.0) is None
    assert made["end"].suggestion == lrs[-2]
    assert made["end"].doubt(10.0) == (
        "the smoothed loss still fell fastest at the last lr scored (7.9) and never diverged: a larger lr may train "
        "faster; raise lr_find.max_lr (now 10) to see where the loss stops falling"
    )
    made["end"].diverged = True  # the test stopped at a loss gone up: the lr just before it is a fair suggestion
    assert made["end"].doubt(10.0) is None
    assert RangeTest(lrs[:4], inside[:4], inside[:4], None, diverged=True).doubt(10.0).startswith("no suggestion: too few steps")


def test_the_lr_range_test_suggests_an_lr_and_leaves_a_curve_but_no_run_state(tmp_path):
    result = run_cli("src.lr_find", "data=moons", "model=mlp", "optimizer=adam", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # torch warns on float() of a loss that requires grad
    suggested = float(re.search(r"suggested lr: ([\d.e-]+) .*optimizer\.lr=", result.stdout).group(1))
    assert 1e-4 < suggested < 0.5
    (run_dir,) = (tmp_path / "lr_find").iterdir()
    rows = history(run_dir / "lr_find.csv")
    lrs = [float(row["lr"]) for row in rows]
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] <= 10 * (1 + 1e-9) and len(rows) <= 100
    assert all(b / a == pytest.approx(lrs[1] / lrs[0]) for a, b in zip(lrs, lrs[1:]))
    losses = [float(row["smoothed_loss"]) for row in rows]
    assert min(losses) < 0.8 * losses[0] and losses[-1] > min(losses)  # it learned, then the lr got too large
    assert Image.open(run_dir / "lr_find.png").size == (640, 400)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()
    events = read_events(run_dir)
    assert [e.value for e in events.Scalars("lr_find/lr")] == pytest.approx(lrs, rel=1e-6)
    assert [e.value for e in events.Scalars("lr_find/smoothed_loss")] == pytest.approx(losses, rel=1e-5)
    (curve,) = events.Images("lr_find/loss_vs_lr")
    assert (curve.width, curve.height) == (640, 400)


def test_the_lr_range_test_computes_as_the_run_will_clipped_in_its_precision_and_matrix_products(tmp_path, monkeypatch):
    steep = ["lr_find.min_lr=1", "lr_find.max_lr=10", "lr_find.num_steps=10", "lr_find.stop_factor=1e9", "logger=none"]
    free = range_test(make_config(tmp_path, *steep, name="lr_find"))
    clipped = range_test(make_config(tmp_path, *steep, "trainer.gradient_clip_val=1e-6", name="lr_find"))
    assert max(free.losses) - min(free.losses) > 0.01
    assert max(clipped.losses) - min(clipped.losses) < 1e-4  # each step moves the weights by at most lr·1e-6
    with pytest.raises(ConfigError, match=r"^trainer\.precision='16-mixed': mixed precision in float16 needs CUDA; this run is on cpu"):
        range_test(make_config(tmp_path, "trainer.precision=16-mixed", name="lr_find"))
    # An accumulated step is one batch 4 times as large, in parts: the same losses as that batch in one pass.
    minibatch = [*steep, "optimizer=minibatch", "lr_find.max_lr=3"]
    whole = range_test(make_config(tmp_path, *minibatch, "optimizer.batch_size=64", name="lr_find"))
    parts = range_test(make_config(tmp_path, *minibatch, "optimizer.batch_size=16", "trainer.accumulate_grad_batches=4", name="lr_find"))
    small = range_test(make_config(tmp_path, *minibatch, "optimizer.batch_size=16", name="lr_find"))
    assert parts.losses == pytest.approx(whole.losses, rel=1e-5)
    assert small.losses != pytest.approx(whole.losses, rel=1e-3)

    seen, training_step = [], BinaryClassification.training_step

    def recording(task, *args):
        seen.append(torch.get_float32_matmul_precision())
        return training_step(task, *args)

    monkeypatch.setattr(BinaryClassification, "training_step", recording)
    lr_find(make_config(tmp_path / "high", *steep, "trainer.matmul_precision=high", name="lr_find"))
    assert seen == ["high"] * 10 and torch.get_float32_matmul_precision() == "highest"


def test_the_lr_range_test_refuses_a_task_of_two_optimizers_in_one_line(tmp_path):
    result = run_cli("src.lr_find", "experiment=gan_ring", f"paths.log_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: lr_find: this task trains 2 optimizers in turn; the range test takes a task with one"
    ]

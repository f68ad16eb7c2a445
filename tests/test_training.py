"""The generic loop trains for real: accuracy reached, exact resume, same seed same numbers."""

import json
import re

import pytest
import torch

from src.errors import UserError
from src.training.checkpoint import load_checkpoint
from src.training.signals import Interrupted
from tests.conftest import make_config, run_training

QUIET = ["logger=none"]


def test_one_neuron_cannot_learn_the_flower(tmp_path):
    metrics = run_training(tmp_path, "model=logreg", "trainer.max_steps=2000", *QUIET)
    assert 0.40 < metrics["train/acc"] < 0.60


def test_minibatch_mlp_learns_digits(tmp_path):
    metrics = run_training(
        tmp_path, "data=digits", "model=mlp", "activation=relu", "optimizer=adam", "trainer.max_epochs=10",
        "trainer.max_steps=null", *QUIET,
    )
    assert metrics["val/acc"] > 0.93 and metrics["test/acc"] > 0.93


def test_softmax_task_on_three_blobs(tmp_path):
    metrics = run_training(tmp_path, "data=blobs", "model=mlp", "optimizer=adam", "trainer.max_steps=300", *QUIET)
    assert metrics["test/acc"] > 0.85


def test_regression_on_a_csv(tmp_path, csv_file):
    rows = "\n".join(f"{x / 10},{2 * (x / 10) - 1}" for x in range(-30, 30))
    path = csv_file("x,y\n" + rows + "\n")
    metrics = run_training(
        tmp_path, "data=csv", f"data.path={path}", "data.target=y", "data.target_type=regression", "model=logreg",
        "optimizer=gd", "optimizer.lr=0.5", "trainer.max_steps=300", *QUIET,
    )
    assert metrics["test/mse"] < 1e-4


def test_a_tiny_batch_is_overfit(tmp_path):
    metrics = run_training(
        tmp_path, "debug=overfit", "data=digits", "data.limit_train_rows=32", "model=mlp", "optimizer=adam",
        "optimizer.lr=0.01", "trainer.max_epochs=300", *QUIET,
    )
    assert metrics["train/loss"] < 1e-3 and metrics["train/acc"] == 1.0


def test_train_metrics_on_a_sample_change_what_is_measured_never_what_is_trained(tmp_path):
    digits = ["data=digits", "model=mlp", "optimizer=minibatch", "trainer.max_steps=60", "logger=none"]
    sampled = run_training(tmp_path / "auto", *digits)
    everything = run_training(tmp_path / "all", *digits, "trainer.train_eval_rows=all")
    counted = run_training(tmp_path / "count", *digits, "trainer.train_eval_rows=100000")
    assert sampled["val/loss"] == everything["val/loss"] and sampled["train/step_loss"] == everything["train/step_loss"]
    assert sampled["train/loss"] != everything["train/loss"]
    assert counted["train/loss"] == everything["train/loss"]


def test_same_seed_same_numbers(tmp_path):
    args = ["data=moons", "model=mlp", "optimizer=minibatch", "model.dropout=0.2", "trainer.max_steps=200", *QUIET]
    first = run_training(tmp_path / "a", *args)
    second = run_training(tmp_path / "b", *args)
    other = run_training(tmp_path / "c", *args, "trainer.seed=7")
    assert first == second
    assert first["train/loss"] != other["train/loss"]


def weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize(
    ("optimizer", "scheduler"),
    [("minibatch", ["scheduler=cosine"]), ("adam", ["scheduler=cosine"]),
     ("adam", ["scheduler=warmup_cosine", "scheduler.warmup_steps=10"]), ("minibatch", ["scheduler=one_cycle"]),
     ("adam", ["scheduler=plateau", "scheduler.patience=0", "scheduler.threshold=0.05"])],
    ids=["minibatch-cosine", "adam-cosine", "adam-warmup_cosine", "minibatch-one_cycle", "adam-plateau"],
)
def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path, capsys, optimizer, scheduler):
    args = [
        "data=moons", "model=mlp", f"optimizer={optimizer}", "model.dropout=0.1", *scheduler,
        "trainer.max_epochs=12", "trainer.max_steps=null", "trainer.val_every_n_epochs=1", *QUIET,
    ]
    whole = run_training(tmp_path / "whole", *args)
    # Interrupted mid-epoch (4 batches per epoch on 240 training rows), as Ctrl-C would; then resumed from last.ckpt.
    with pytest.raises(Interrupted):
        run_training(tmp_path / "part", *args, "+callbacks.stop._target_=tests.conftest.InterruptAtStep18")
    assert weights(tmp_path / "part")["loop"]["batch_in_epoch"] == 2
    capsys.readouterr()
    resumed = run_training(tmp_path / "rest", *args, f"ckpt_path={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    assert resumed["step"] == whole["step"] == 48
    assert re.search(r"^trained 12 epochs, 48 steps \(resumed at step 18: 30 steps in [\d.]+ s\)$", capsys.readouterr().out, re.M)
    for name, value in weights(tmp_path / "whole")["model"].items():
        assert torch.equal(value, weights(tmp_path / "rest")["model"][name]), name
    assert {k: v for k, v in resumed.items() if k != "train/step_loss"} == {
        k: v for k, v in whole.items() if k != "train/step_loss"
    }
    lr = make_config(tmp_path, *args).optimizer.lr
    assert whole["train/lr"] < lr  # the schedule changed it


def test_one_cycle_takes_a_pct_start_whose_phases_all_have_steps_and_refuses_the_others(tmp_path):
    # 0.1 was refused ("ZeroDivisionError"): the scheduler's try-out planned 10 steps, and 0.1 of 10 leaves the
    # warm-up phase empty. A run whose own steps leave one empty (0.5 of 2) ended in torch's traceback instead.
    metrics = run_training(tmp_path / "ok", "scheduler=one_cycle", "scheduler.pct_start=0.1", "trainer.max_steps=50", *QUIET)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.2, total_steps=50, pct_start=0.1, cycle_momentum=False)
    for _ in range(50):
        optimizer.step()
        schedule.step()
    assert metrics["step"] == 50 and metrics["train/lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    for pct_start, steps, line in [
        (0.5, 2, "scheduler.pct_start=0.5: leaves one of OneCycle's phases empty over this run's 2 steps (torch divides by its length): choose another"),
        (1.0, 20, "scheduler.pct_start=1.0: must be a number in [0, 1)"),
    ]:
        with pytest.raises(UserError) as error:
            run_training(tmp_path / str(steps), "scheduler=one_cycle", f"scheduler.pct_start={pct_start}", f"trainer.max_steps={steps}", *QUIET)
        assert str(error.value) == line


def test_best_checkpoint_holds_the_best_monitored_model(tmp_path):
    run_training(
        tmp_path, "data=moons", "model=mlp", "optimizer=sgd", "optimizer.lr=0.5", "trainer.max_epochs=8",
        "trainer.max_steps=null", *QUIET,
    )
    best = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert best["loop"]["best_score"] == last["loop"]["best_score"]
    assert best["loop"]["best_score"] <= json.loads((tmp_path / "metrics.json").read_text())["val/loss"]


def test_early_stopping(tmp_path):
    metrics = run_training(
        tmp_path, "data=moons", "model=mlp", "optimizer=adam", "optimizer.lr=0.5", "trainer.max_epochs=500",
        "trainer.max_steps=null", "trainer.patience=3", "trainer.monitor=val/acc", "trainer.mode=max", *QUIET,
    )
    assert metrics["epoch"] < 500


def test_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # The learning rate grows tenfold every epoch until the weights blow up.
    with pytest.raises(UserError, match=r"train/loss became (?:nan|inf) at step (\d+).*last good checkpoint: .*last.ckpt \(step (\d+)\)") as error:
        run_training(
            tmp_path, "model=mlp", "activation=relu", "scheduler=exponential", "scheduler.gamma=10",
            "trainer.val_every_n_epochs=1", "trainer.checkpoint_every_n_epochs=1", *QUIET,
        )
    bad_step, saved_step = map(int, re.search(r"at step (\d+).*\(step (\d+)\)", str(error.value)).groups())
    assert 1 < saved_step < bad_step
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["loop"]["step"] == saved_step
    assert all(torch.isfinite(value).all() for value in last["model"].values())


def test_a_model_summary_lists_each_layer_its_output_shape_and_parameters(tmp_path):
    run_training(tmp_path, "experiment=cnn_digits", "model.channels=[4,8]", "model.hidden=[16]", "trainer.max_steps=1", "logger=none")
    text = (tmp_path / "model.md").read_text()
    assert "| features.0 | Conv2d | 2×4×8×8 | 36 |" in text  # 1→4 channels, 3×3, no bias (batch norm follows), on 2 rows
    assert "| classifier.5 | Linear | 2×10 | 170 |" in text  # 16 → 10 classes
    weights = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["model"]
    total = sum(t.numel() for name, t in weights.items() if not any(b in name for b in ("running_", "num_batches")))
    assert f"| **total** | CNN | | {total:,} ({total:,} trainable) |" in text

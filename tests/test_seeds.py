"""trainer.seeds: K members trained as one stacked model end where each seed alone ends."""

import csv
import json

import pytest
import torch

from src.errors import ConfigError
from src.evaluate import evaluate
from src.predict import predict
from src.training.checkpoint import load_checkpoint
from tests.conftest import read_events, run_cli, run_training

SEEDS = [5, 9]

FAMILIES = {
    "logreg": ["model=logreg", "trainer.max_steps=200"],
    "mlp_relu_minibatch_clipped": [
        "model=mlp", "activation=relu", "data=digits", "optimizer=minibatch", "trainer.max_steps=60",
        "trainer.gradient_clip_val=0.5",
    ],
    "mlp_batch_norm": ["model=mlp", "model.batch_norm=true", "data=digits", "optimizer=minibatch", "trainer.max_steps=30"],
    "cnn_batch_norm": ["experiment=cnn_digits", "model.dropout=0", "model.channels=[4,8]", "model.hidden=[16]", "trainer.max_steps=12"],
    "rnn_gru": ["experiment=rnn_digits", "model.cell=gru", "model.hidden_size=16", "trainer.max_steps=12"],
    "lstm_forecast": ["experiment=rnn_sine", "model.hidden_size=8", "trainer.max_steps=10", "trainer.max_epochs=null"],
    "gan_adam": [
        "experiment=gan_ring", "model.generator_hidden=[32]", "model.discriminator_hidden=[32]", "task.eval_samples=200",
        "trainer.max_steps=30",
    ],
    "gan_batch_norm_generator": [
        "experiment=gan_ring", "model.generator_batch_norm=true", "model.generator_hidden=[32]", "model.discriminator_hidden=[32]",
        "task.eval_samples=200", "trainer.max_steps=30",
    ],
    "pacgan_3": [
        "experiment=gan_ring_pac", "model.pack=3", "model.generator_hidden=[32]", "model.discriminator_hidden=[32]",
        "task.eval_samples=200", "trainer.max_steps=30",
    ],
}


def _weights(run, checkpoint: str = "last.ckpt") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / checkpoint)["model"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_member_ends_where_its_seed_alone_ends(tmp_path, family):
    overrides = [*FAMILIES[family], "logger=none", "trainer.max_epochs=null", "trainer.val_every_n_epochs=1",
                 "trainer.min_delta=1e-4"]  # improvements far above float noise: the same best check alone and stacked
    together = run_training(tmp_path / "together", *overrides, f"trainer.seeds=[{SEEDS[0]},{SEEDS[1]}]")
    stacked, best = _weights(tmp_path / "together"), _weights(tmp_path / "together", "best.ckpt")
    for index, seed in enumerate(SEEDS):
        alone = run_training(tmp_path / f"seed_{seed}", *overrides, f"trainer.seed={seed}")
        member = together["per_seed"][str(seed)]
        for name, value in alone.items():
            if "/" in name:
                assert member[name] == pytest.approx(value, rel=1e-4, abs=1e-5), (seed, name)
        for name, tensor in _weights(tmp_path / f"seed_{seed}").items():
            torch.testing.assert_close(stacked[name][index], tensor, rtol=1e-4, atol=1e-5, msg=f"{seed} {name}")
        for name, tensor in _weights(tmp_path / f"seed_{seed}", "best.ckpt").items():  # each member's own best check
            torch.testing.assert_close(best[name][index], tensor, rtol=1e-4, atol=1e-5, msg=f"best {seed} {name}")


def test_metrics_hold_the_mean_spread_and_each_seed(tmp_path):
    metrics = run_training(tmp_path, "model=mlp", "data=digits", "optimizer=minibatch", "trainer.max_steps=40", "logger=none", "trainer.seeds=3")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics
    assert set(saved["per_seed"]) == {"42", "43", "44"}
    accuracies = [member["val/acc"] for member in saved["per_seed"].values()]
    assert saved["val/acc"] == pytest.approx(sum(accuracies) / 3)
    assert saved["val/acc/min"] == min(accuracies) and saved["val/acc/max"] == max(accuracies)
    assert saved["val/acc/std"] == pytest.approx(torch.tensor(accuracies).std().item())
    assert len(set(accuracies)) > 1  # the members differ: each drew its own weights and batches
    assert saved["step"] == 40 and saved["epoch"] == saved["per_seed"]["42"]["epoch"]


def test_one_tensorboard_run_per_seed_beside_the_mean(tmp_path):
    run_training(tmp_path, "trainer.max_steps=300", "trainer.seeds=2")
    curves = {}
    for folder in (tmp_path, tmp_path / "seed_42", tmp_path / "seed_43"):
        curves[folder.name] = [point.value for point in read_events(folder).Scalars("train/loss")]
    mean = curves[tmp_path.name]
    assert len(mean) == len(curves["seed_42"]) > 1
    assert mean == pytest.approx([(a + b) / 2 for a, b in zip(curves["seed_42"], curves["seed_43"])], rel=1e-5)


def test_resume_with_several_seeds_ends_as_an_uninterrupted_run(tmp_path):
    overrides = ["model=mlp", "data=digits", "optimizer=adam", "optimizer.batch_size=128", "logger=none", "trainer.seeds=2"]
    whole = run_training(tmp_path / "whole", *overrides, "trainer.max_steps=50")
    run_training(tmp_path / "first", *overrides, "trainer.max_steps=23", "trainer.checkpoint_every_n_steps=1")
    resumed = run_training(
        tmp_path / "resumed", *overrides, "trainer.max_steps=50", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"
    )
    assert _without_step_losses(resumed["per_seed"]) == _without_step_losses(whole["per_seed"])
    for name, tensor in _weights(tmp_path / "whole").items():
        assert torch.equal(_weights(tmp_path / "resumed")[name], tensor), name


def test_a_gan_resumes_its_members_noise(tmp_path):
    overrides = [*FAMILIES["gan_adam"], "logger=none", "trainer.max_epochs=null", "trainer.seeds=2"]
    whole = run_training(tmp_path / "whole", *overrides)
    run_training(tmp_path / "first", *overrides[:-2], "trainer.max_steps=13", "trainer.seeds=2", "trainer.checkpoint_every_n_steps=1")
    resumed = run_training(tmp_path / "resumed", *overrides, f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}")
    assert _without_step_losses(resumed["per_seed"]) == _without_step_losses(whole["per_seed"])


def _without_step_losses(per_seed: dict) -> dict:
    """The first run's end (step 23) was a check the whole run did not have: the windows of step losses differ."""
    return {seed: {k: v for k, v in member.items() if "step_" not in k} for seed, member in per_seed.items()}


def test_a_checkpoint_of_other_seeds_count_is_refused(tmp_path):
    run_training(tmp_path / "two", "trainer.max_steps=5", "logger=none", "trainer.seeds=2")
    with pytest.raises(Exception, match="number of seeds: 2 in the checkpoint, 3 in this run"):
        run_training(tmp_path / "three", "trainer.max_steps=10", "logger=none", "trainer.seeds=3",
                     f"ckpt_path={tmp_path / 'two' / 'checkpoints' / 'last.ckpt'}")


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ensemble")
    metrics = run_training(run, "model=mlp", "data=digits", "optimizer=adam", "trainer.max_steps=60", "logger=none", "trainer.seeds=3")
    return run, metrics


def test_evaluate_reports_each_member_and_the_ensemble(ensemble_run):
    run, metrics = ensemble_run
    result = evaluate(str(run / "checkpoints" / "best.ckpt"))  # the weights the run tested
    for seed in ("42", "43", "44"):
        assert result["per_seed"][seed]["test/acc"] == pytest.approx(metrics["per_seed"][seed]["test/acc"])
    assert result["test/acc"] == pytest.approx(metrics["test/acc"])
    assert 0.5 < result["test/acc/ensemble"] <= 1
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test/acc/ensemble"] == result["test/acc/ensemble"]
    assert saved["per_seed"]["42"]["val/acc"] == metrics["per_seed"]["42"]["val/acc"]  # the training's stay


def _digit_rows(n: int) -> str:
    from sklearn.datasets import load_digits

    images = load_digits().data[:n]
    return "\n".join([",".join(f"p{i}" for i in range(64))] + [",".join(str(v) for v in row) for row in images]) + "\n"


def test_predict_averages_the_members_or_picks_one(ensemble_run, tmp_path):
    run, _ = ensemble_run
    rows = tmp_path / "digits.csv"
    rows.write_text(_digit_rows(30))

    def predictions(run_folder, member=None):
        out = tmp_path / "predictions.csv"
        predict(str(run_folder / "checkpoints" / "last.ckpt"), str(rows), str(out), member)
        return [(row["prediction"], float(row["probability"])) for row in csv.DictReader(out.open())]

    alone = tmp_path / "alone"
    run_training(alone, "model=mlp", "data=digits", "optimizer=adam", "trainer.max_steps=60", "logger=none", "trainer.seed=43")
    member = predictions(run, 43)
    assert [label for label, _ in member] == [label for label, _ in predictions(alone)]
    assert [p for _, p in member] == pytest.approx([p for _, p in predictions(alone)], abs=1e-5)
    ensemble, members = predictions(run), [predictions(run, seed) for seed in (42, 43, 44)]
    assert ensemble not in members
    # The ensemble's probability of its class is the members' mean probability of that class; on rows where
    # every member picks the same class, that is the mean of their probabilities.
    for row, (label, probability) in enumerate(ensemble):
        if all(m[row][0] == label for m in members):
            assert probability == pytest.approx(sum(m[row][1] for m in members) / 3, abs=1e-5)


@pytest.mark.parametrize(
    "value, words",
    [("0", "must be an integer in \\[1, 1,024\\] or a non-empty list of integers in \\[0, 2³² − 1024\\)"),
     ("[]", "must be a non-empty list of integers in"), ("[3,4,3]", "each seed once; repeated: 3"),
     ("1.5", "must be an integer in \\[1, 1,024\\]"), ("[1,x]", "must be a non-empty list of integers in"), ("2000", "must be an integer in")],
)
def test_bad_seeds_are_refused_in_one_line(tmp_path, value, words):
    with pytest.raises(ConfigError, match=rf"^trainer\.seeds=.*: {words}"):
        run_training(tmp_path, f"trainer.seeds={value}", "logger=none")


def test_bad_seeds_exit_2_with_one_line(tmp_path):
    result = run_cli("src.train", "trainer.seeds=[1,1]", f"paths.log_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: trainer.seeds=[1, 1]: each seed once; repeated: 1"]


def test_a_sweep_over_seeds_gives_one_job_per_setting(tmp_path):
    result = run_cli("src.train", "-m", "trainer.seeds=2", "optimizer=gd,adam", "trainer.max_steps=5", "logger=none",
                     f"paths.log_dir={tmp_path}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(tmp_path.rglob("metrics.json"))
    assert len(jobs) == 2
    for job in jobs:
        assert set(json.loads(job.read_text())["per_seed"]) == {"42", "43"}

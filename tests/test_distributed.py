"""torchrun with 2 processes on CPU (gloo) takes the same steps as one process with the same global batch."""

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from src import REPO_ROOT
from src.build import build_training
from src.errors import ConfigError, UserError, report_user_errors
from src.training.checkpoint import load_checkpoint
from src.models.rank_dropout import separate_dropout_masks
from src.training.distributed import shard_weights, step_loss, teardown
from tests.conftest import make_config

# 240 training rows in batches of 59: rank 0 holds 30 rows of each full batch, rank 1 29 (the last batch's 4: 2 each)
JOB = ["data=moons", "model=mlp", "optimizer=adam", "optimizer.batch_size=59", "trainer.max_epochs=15",
       "trainer.max_steps=null", "logger=none"]
# --standalone: a free port for the rendezvous, not 29500, which a test in another pytest-xdist worker may hold
TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m", "src.train"]


def failure(stderr: str) -> str:
    """A failed torchrun's stderr: a rank's own error (a traceback, a C++ abort's message) comes before torchrun's
    long summary of the failure."""
    return stderr if len(stderr) < 6000 else f"{stderr[:4000]}\n…\n{stderr[-2000:]}"


def run(command, log_dir, *extra, job=JOB):
    result = subprocess.run(
        [*command, *job, *extra, f"paths.log_dir={log_dir}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, failure(result.stderr)
    runs = [folder for named in log_dir.iterdir() for folder in named.iterdir()]  # logs/<name>/<run>
    assert len(runs) == 1  # only rank 0 keeps a run folder
    return runs[0], result.stdout


def printed_by_ranks(script: str, folder: Path) -> list[dict]:
    """What each of the 2 processes of ``torchrun tests/<script> <folder>`` wrote into folder/rank<r>.json."""
    result = subprocess.run([*TORCHRUN[:-2], str(Path(__file__).with_name(script)), str(folder)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, failure(result.stderr)
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    """With two stacked seeds: each member's gradient is averaged over the ranks' shards."""
    one, _ = run([sys.executable, "-m", "src.train"], tmp_path / "one", "trainer.seeds=2")
    # The same training through a script that counts, at each rank's exit, the DDP wrappers still alive.
    two, printed = run([*TORCHRUN[:-2], str(Path(__file__).with_name("torchrun_leftovers.py"))], tmp_path / "two", "trainer.seeds=2")
    assert printed.count("DDP wrappers alive at exit: 0") == 2, printed[-2000:]  # each rank's left with its group
    a = load_checkpoint(one / "checkpoints" / "last.ckpt")["model"]
    b = load_checkpoint(two / "checkpoints" / "last.ckpt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    metrics_one = json.loads((one / "metrics.json").read_text())
    metrics_two = json.loads((two / "metrics.json").read_text())
    assert metrics_two["val/acc"] == pytest.approx(metrics_one["val/acc"], abs=1e-6)
    assert metrics_two["per_seed"]["43"]["val/acc"] == pytest.approx(metrics_one["per_seed"]["43"]["val/acc"], abs=1e-6)
    assert metrics_two["train/step_loss"] == pytest.approx(metrics_one["train/step_loss"], rel=1e-4)  # reduced over ranks


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_config_mistake_under_torchrun_is_told_once_by_rank_0_and_other_errors_by_every_rank(monkeypatch, capsys, tmp_path, rank):
    def fail(error):
        raise error

    error_file = tmp_path / "error.json"  # what torchrun's failure summary shows for this worker
    monkeypatch.setenv("RANK", rank)  # as torchrun sets them in each worker
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    for error, told in ((ConfigError("optimizer.lr", -1, "must be positive"), rank == "0"), (UserError("data.path='x': no such file"), True)):
        with pytest.raises(SystemExit) as stop:
            report_user_errors(lambda: fail(error))
        assert stop.value.code == 2
        assert capsys.readouterr().err == (f"error: {error}\n" if told else "")
        assert json.loads(error_file.read_text())["message"] == f"error: {error}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings, steps",
    [
        # Steps of 52 rows (4 batches of 13): each rank takes its 26 and goes through them in 2 parts.
        (["optimizer.batch_size=13", "trainer.accumulate_grad_batches=4", "trainer.max_epochs=4"], 4 * 5),
        # Steps of 3 rows: rank 0 holds 2 of them, rank 1 one; both go through one part (2 and 1 would not match).
        (["optimizer.batch_size=1", "optimizer.lr=0.05", "trainer.accumulate_grad_batches=3", "trainer.max_epochs=1"], 80),
    ],
)
def test_accumulated_steps_under_torchrun_equal_one_process(tmp_path, settings, steps):
    one, _ = run([sys.executable, "-m", "src.train"], tmp_path / "one", *settings)
    two, _ = run(TORCHRUN, tmp_path / "two", *settings)
    a, b = (load_checkpoint(path / "checkpoints" / "last.ckpt") for path in (one, two))
    assert a["loop"]["step"] == b["loop"]["step"] == steps
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_step_skipped_for_a_nan_loss_on_one_rank_is_skipped_on_every_rank(tmp_path):
    script = [*TORCHRUN[:-2], str(Path(__file__).with_name("torchrun_nan_on_rank_0.py"))]
    run_dir, _ = run(script, tmp_path, "trainer.on_nonfinite_loss=skip", "trainer.max_epochs=3")
    saved = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert saved["loop"]["step"] == 15  # 5 batches of 59 an epoch, the skipped one counted
    assert all(torch.isfinite(tensor).all() for tensor in saved["model"].values())  # no rank stepped on NaN gradients


@pytest.mark.slow
def test_a_time_limit_reached_on_one_rank_ends_the_run_on_every_rank_at_the_same_check(tmp_path):
    script = [*TORCHRUN[:-2], str(Path(__file__).with_name("torchrun_time_up_on_rank_0.py"))]
    run_dir, printed = run(script, tmp_path, "callbacks=[time_limit]", "callbacks.time_limit.minutes=1", "trainer.val_every_n_epochs=1")
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["loop"]["step"] == 5  # the first check: 5 batches an epoch
    assert "time limit: 1 minutes of training reached at step 5; training ends here" in printed


@pytest.mark.slow
def test_batch_norm_without_gradients_under_torchrun_normalizes_over_every_ranks_rows(tmp_path):
    ranks = printed_by_ranks("torchrun_batch_norm_without_gradients.py", tmp_path)
    rows = torch.randn(10, 3, generator=torch.Generator().manual_seed(0)) * 3 + 1
    one = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        out = one(rows)  # one process, training mode: the statistics of all 10 rows
    for rank, printed in enumerate(ranks):
        torch.testing.assert_close(torch.tensor(printed["out"]), out[rank::2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.tensor(printed["running_mean"]), one.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(printed["running_var"]), one.running_var, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_resume_under_torchrun_ends_where_one_uninterrupted_process_ends(tmp_path):
    batches = "optimizer.batch_size=239"  # each epoch's last batch is one row: rank 1 has none of it
    whole, _ = run([sys.executable, "-m", "src.train"], tmp_path / "whole", batches)
    part, _ = run(TORCHRUN, tmp_path / "part", batches, "trainer.max_steps=17")
    assert load_checkpoint(part / "checkpoints" / "last.ckpt")["loop"]["step"] == 17
    rest, _ = run(TORCHRUN, tmp_path / "rest", batches, f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}")
    a = load_checkpoint(whole / "checkpoints" / "last.ckpt")
    b = load_checkpoint(rest / "checkpoints" / "last.ckpt")
    assert a["loop"]["step"] == b["loop"]["step"]
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_dropout_under_torchrun_draws_each_ranks_own_mask_and_keeps_the_generators_alike(tmp_path):
    ranks = printed_by_ranks("torchrun_dropout_masks.py", tmp_path)
    assert [printed["kind"] for printed in ranks] == ["RankDropout"] * 2
    first, second = (torch.tensor([printed[name] for printed in ranks]) for name in ("first", "second"))
    assert set(first.unique().tolist()) == {0.0, 2.0} and 0.3 < (first == 0).float().mean() < 0.7  # p = 0.5, the rest × 2
    assert not torch.equal(first[0], first[1]) and not torch.equal(first, second)  # each rank's own, each forward anew
    assert ranks[0]["next_draw"] == ranks[1]["next_draw"]  # the ranks' generators stay alike
    assert all(printed["eval"] == [[1.0] * 16] * 6 for printed in ranks)
    # The LSTM's dropout between its layers: each rank's own, each forward anew; without dropout (eval) the same.
    first, second = (torch.tensor([printed[name] for printed in ranks]) for name in ("lstm_first", "lstm_second"))
    assert not torch.allclose(first[0], first[1]) and not torch.allclose(first, second)
    assert ranks[0]["lstm_eval"] == ranks[1]["lstm_eval"]


def test_a_recurrent_layers_dropout_under_torchrun_is_drawn_from_a_seed_of_the_shared_stream_and_the_rank():
    torch.manual_seed(5)
    lstm = torch.nn.LSTM(4, 3, num_layers=3, dropout=0.5)
    sequence = torch.randn(7, 2, 4)
    draws = torch.Generator().manual_seed(0)
    seed, next_draw = int(torch.randint(2**62, (1,), generator=draws)), torch.rand(2, generator=draws)
    torch.manual_seed(seed)
    expected = lstm(sequence)[0]  # the forward with the default generator seeded by the shared draw + rank 0
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        separate_dropout_masks(lstm)
        torch.manual_seed(0)
        output = lstm(sequence)[0]
        torch.testing.assert_close(torch.rand(2), next_draw)  # one draw taken from the shared stream, the rest put back
        torch.testing.assert_close(output, expected, rtol=0, atol=0)
        wrong_size, state = torch.zeros(7, 2, 5), torch.get_rng_state()
        with pytest.raises(RuntimeError, match="input.size"):
            lstm(wrong_size)  # the forward fails: the stream is put back all the same, less its one draw
        shared = torch.Generator()
        shared.set_state(state)
        torch.randint(2**62, (1,), generator=shared)
        torch.testing.assert_close(torch.rand(2), torch.rand(2, generator=shared))
        state = torch.get_rng_state()
        lstm.eval()(sequence)
        assert torch.equal(torch.get_rng_state(), state)  # without dropout nothing is drawn
    finally:
        dist.destroy_process_group()


def test_the_loop_under_torchrun_gives_the_model_dropouts_of_each_ranks_own_masks(tmp_path):
    _, task, _, _ = build_training(make_config(tmp_path, "data=moons", "model=mlp", "model.dropout=0.3", "trainer.seeds=2"))
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        step_loss(task, 2, sync_batchnorm=False)  # what the trainer wraps the task with under torchrun (2 processes)
    finally:
        dist.destroy_process_group()
    assert [type(module).__name__ for module in task.modules() if isinstance(module, torch.nn.Dropout)] == ["RankDropout"] * 2


@pytest.mark.slow
@pytest.mark.parametrize("job", [JOB, ["experiment=rnn_sine", "model.num_layers=2", "model.hidden_size=8", "logger=none"]], ids=["mlp", "lstm"])
def test_a_run_with_dropout_resumed_under_torchrun_ends_where_it_would_have(tmp_path, job):
    """The LSTM's dropout is the one between its layers, inside torch's LSTM."""
    dropout = ("model.dropout=0.3", "optimizer.batch_size=59")
    whole, _ = run(TORCHRUN, tmp_path / "whole", *dropout, "trainer.max_epochs=4", job=job)
    part, _ = run(TORCHRUN, tmp_path / "part", *dropout, "trainer.max_steps=7", job=job)
    rest, _ = run(TORCHRUN, tmp_path / "rest", *dropout, "trainer.max_epochs=4", f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}", job=job)
    a, b = (load_checkpoint(folder / "checkpoints" / "last.ckpt") for folder in (whole, rest))
    assert a["loop"]["step"] == b["loop"]["step"] > 7
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])


def test_teardown_frees_the_ddp_wrapper_holding_the_process_group_before_it_leaves_the_group(tmp_path):
    """A gloo group that outlives teardown, held by a DDP wrapper in a reference cycle, was torn down at the
    interpreter's exit, where a rank now and then aborted ("terminate called without an active exception")."""
    data, task, _, _ = build_training(make_config(tmp_path, "data=moons", "model=mlp", "logger=none"))
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    gc.disable()  # as when no allocation happens to start a collection
    try:
        wrapped = step_loss(task, 2, sync_batchnorm=False)
        wrapped(next(data.batches("train", 16)), 0).backward()
        wrapped.cycle = [wrapped]  # as DDP's own references to itself make one after a step (not in every process here)
        held = weakref.ref(wrapped)
        del wrapped
        assert held() is not None  # in a cycle: reference counting alone does not free it
        teardown()
        assert held() is None and not dist.is_initialized()
    finally:
        gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()


def test_weighted_shards_average_to_the_global_batch_mean():
    """DistributedDataParallel averages the ranks' gradients: each rank's mean loss, weighted, must average
    to the mean over the whole batch however unequally the batch splits (and with ranks that hold none)."""
    values = torch.randn(100, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for rows, batch_size, world in [(100, 30, 2), (100, 33, 3), (100, 33, 4), (100, None, 3), (100, 7, 4)]:
        full = min(batch_size or rows, rows)
        for last, batch in enumerate((values[:full], values[rows - (rows % full or full) :])):  # a full batch, the last
            weighted = []
            for rank in range(world):
                weights = shard_weights(rows, batch_size, rank, world)
                weight = 1.0 if weights is None else weights[last]
                shard = batch[rank::world]
                weighted.append(weight * (shard.mean() if len(shard) else batch[:1].mean()))
            assert sum(weighted) / world == pytest.approx(batch.mean().item(), rel=1e-12)
    assert shard_weights(100, 20, 1, 2) is None  # every batch splits evenly
    with pytest.raises(ConfigError, match=r"optimizer.batch_size.*below the number of processes \(2\)"):
        shard_weights(100, 1, 0, 2)


# A CNN with batch norm (2 layers), without dropout (each rank draws masks of its own, not one process's); 1,167 training rows:
# batches of 64 split 32/32 between the ranks, the epoch's last batch of 15 rows 8/7.
CNN_JOB = ["experiment=cnn_digits", "model.channels=[4,8]", "model.hidden=[16]", "model.dropout=0", "optimizer.batch_size=64",
           "trainer.max_epochs=2", "logger=none"]
# The same batches through an MLP with a batch norm after its hidden layer (stacked, its members run one after another).
MLP_JOB = ["data=digits", "model=mlp", "model.hidden=[16]", "model.batch_norm=true", "optimizer=minibatch", "optimizer.batch_size=64",
           "trainer.max_epochs=2", "trainer.max_steps=null", "logger=none"]


@pytest.mark.slow
@pytest.mark.parametrize("job, seeds, sync", [("cnn", 1, "true"), ("cnn", 2, "true"), ("cnn", 1, "false"), ("mlp", 2, "true")])
def test_batch_norm_under_torchrun_normalizes_over_every_ranks_rows_as_one_process_does(tmp_path, job, seeds, sync):
    runs = {}
    for name, command in (("one", [sys.executable, "-m", "src.train"]), ("two", TORCHRUN)):
        result = subprocess.run(
            [*command, *(CNN_JOB if job == "cnn" else MLP_JOB), f"trainer.seeds={seeds}", f"trainer.sync_batchnorm={sync}",
             f"paths.log_dir={tmp_path / name}"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, failure(result.stderr)
        (runs[name],) = (run for folder in (tmp_path / name).iterdir() for run in folder.iterdir())  # logs/<name>/<run>
    a, b = (load_checkpoint(runs[name] / "checkpoints" / "last.ckpt")["model"] for name in ("one", "two"))
    assert any("running_var" in name for name in a)
    if sync == "false":  # each rank's own statistics: near, not at, one process
        assert max(float((a[name] - b[name]).abs().max()) for name in a) > 1e-3
        return
    for name in a:  # the running statistics too: every rank's, as one process keeps them
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    metrics_one, metrics_two = (json.loads((runs[name] / "metrics.json").read_text()) for name in ("one", "two"))
    assert metrics_two["val/loss"] == pytest.approx(metrics_one["val/loss"], rel=1e-4)


# The ring GAN, shortened; batches of 125 split 63/62 between the ranks. Packs of 1: a rank packs its own rows.
# Adam's eps raised from 1e-8: gradients at the level of float noise (which the ranks' partial sums change) would
# take full steps of lr.
GAN_JOB = ["experiment=gan_ring", "data.n_samples=1000", "optimizer.batch_size=125", "optimizer.eps=0.001", "trainer.max_epochs=3",
           "callbacks=none", "logger=none"]


@pytest.mark.slow
@pytest.mark.parametrize("settings", [["trainer.seeds=1"], ["trainer.seeds=2"], ["model.generator_batch_norm=true"]])
def test_a_gan_under_torchrun_draws_one_processs_noise_and_ends_as_one_process(tmp_path, settings):
    """Every rank's random generators hold the same state: drawing each its own share of the noise, the ranks
    drew the same values, so the global batch's fakes came in identical pairs. With batch norms in the generator,
    its forward in the discriminator's turn (no gradients) normalizes over both ranks' rows."""
    runs = {}
    for name, command in (("one", [sys.executable, "-m", "src.train"]), ("two", TORCHRUN)):
        result = subprocess.run(
            [*command, *GAN_JOB, *settings, f"paths.log_dir={tmp_path / name}"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, failure(result.stderr)
        (runs[name],) = (run for folder in (tmp_path / name).iterdir() for run in folder.iterdir())
    a, b = (load_checkpoint(runs[name] / "checkpoints" / "last.ckpt") for name in ("one", "two"))
    assert a["loop"]["step"] == b["loop"]["step"] == 24
    for name in a["model"]:  # the ranks' repeated noise put them 0.004-0.012 apart; float sums in other orders 5e-5
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=1e-3, atol=2e-4)

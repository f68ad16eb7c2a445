"""Runs survive kills, signals, full disks and NaN losses; run folders are never shared."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src import REPO_ROOT
from src.errors import UserError
from src.tasks.classification import BinaryClassification
from src.training import checkpoint as checkpoint_module
from src.training.checkpoint import load_checkpoint
from tests.conftest import read_events, run_cli, run_training

# Dropout, a schedule, mini-batches and checkpoints mid-epoch: every kind of state a resume needs.
JOB = [
    "data=moons", "model=mlp", "optimizer=adam", "model.dropout=0.2", "scheduler=cosine",
    "trainer.max_epochs=150", "trainer.max_steps=null", "trainer.checkpoint_every_n_steps=7", "logger=none",
]


def start(log_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "src.train", *JOB, f"paths.log_dir={log_dir}", *extra],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def newest_run(log_dir: Path) -> Path:
    return max((log_dir / "train").iterdir(), key=lambda path: path.stat().st_mtime_ns)


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.ckpt")


def assert_same_end(a: dict, b: dict) -> None:
    assert a["loop"] == b["loop"]
    for part in ("model",):
        for name, value in a[part].items():
            assert torch.equal(value, b[part][name]), name
    for saved, other in zip(a["optimizers"], b["optimizers"]):
        for key, state in saved["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(other["state"][key][name])), name


def runs_in(log_dir: Path) -> set[Path]:
    return set((log_dir / "train").iterdir()) if (log_dir / "train").exists() else set()


def kill_at_a_random_moment(log_dir: Path, checkpoint: Path | None, rng: random.Random) -> Path | None:
    """Start the job (resuming from ``checkpoint``), SIGKILL it a random moment after its first
    checkpoint, and return the newest last.ckpt there is to resume from: its own, else ``checkpoint``."""
    before = runs_in(log_dir)
    process = start(log_dir, *([f"ckpt_path={checkpoint}"] if checkpoint else []))
    own: Path | None = None
    deadline = time.monotonic() + 120
    while own is None and process.poll() is None and time.monotonic() < deadline:
        own = next((r / "checkpoints" / "last.ckpt" for r in runs_in(log_dir) - before if (r / "checkpoints" / "last.ckpt").exists()), None)
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))
    process.kill()  # whether it is mid-step, mid-write, or already done: the outcome must not depend on it
    process.wait(timeout=60)
    mine = [r / "checkpoints" / "last.ckpt" for r in runs_in(log_dir) - before]
    return next((path for path in mine if path.exists()), checkpoint)


def resume(log_dir: Path, checkpoint: Path) -> Path:
    before = runs_in(log_dir)
    process = start(log_dir, f"ckpt_path={checkpoint}")
    assert process.wait(timeout=300) == 0, process.stderr.read()
    (run,) = runs_in(log_dir) - before
    return run


def assert_same_run(run: Path, reference: Path) -> None:
    assert_same_end(final_state(run), final_state(reference))
    assert (run / "metrics.json").read_text() == (reference / "metrics.json").read_text()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path):
    whole = start(tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    (reference,) = runs_in(tmp_path / "whole")

    rng = random.Random(0)
    log_dir = tmp_path / "killed"
    checkpoint = None
    for _ in range(3):
        checkpoint = kill_at_a_random_moment(log_dir, checkpoint, rng)
    if checkpoint is None:  # every kill came before the first checkpoint (a very slow machine): start over
        assert start(log_dir).wait(timeout=300) == 0
        checkpoint = max(runs_in(log_dir), key=lambda r: r.stat().st_mtime_ns) / "checkpoints" / "last.ckpt"
    finished = resume(log_dir, checkpoint)
    assert_same_run(finished, reference)
    # A kill after the final checkpoint, on purpose: resuming a finished run changes nothing.
    assert_same_run(resume(log_dir, finished / "checkpoints" / "last.ckpt"), reference)


def test_resuming_a_finished_run_checks_nothing_again_and_logs_no_training_points(tmp_path):
    job = ["data=moons", "model=mlp", "optimizer=adam", "trainer.max_epochs=20", "trainer.max_steps=null", "trainer.patience=1"]
    finished = run_training(tmp_path / "first", *job)
    checkpoint = load_checkpoint(tmp_path / "first" / "checkpoints" / "last.ckpt")
    again = run_training(tmp_path / "again", *job, f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}")
    assert again == finished
    assert load_checkpoint(tmp_path / "again" / "checkpoints" / "last.ckpt")["loop"] == checkpoint["loop"]
    events = read_events(tmp_path / "again")
    assert not [tag for tag in events.Tags()["scalars"] if not tag.startswith("test/")]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_prints_the_resume_command_and_resuming_finishes_the_job(tmp_path):
    whole = start(tmp_path / "whole")
    assert whole.wait(timeout=300) == 0
    process = start(tmp_path / "stopped")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "stopped").rglob("last.ckpt")):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    command = err.strip().splitlines()[-1]
    assert command.startswith("resume with: python -m src.train ") and "ckpt_path=" in command
    checkpoint = Path(command.split("ckpt_path=")[1])
    step = load_checkpoint(checkpoint)["loop"]["step"]
    assert f"SIGTERM at step {step}" in err
    resumed = start(tmp_path / "stopped", f"ckpt_path={checkpoint}")
    assert resumed.wait(timeout=300) == 0
    assert_same_end(final_state(newest_run(tmp_path / "stopped")), final_state(newest_run(tmp_path / "whole")))


def test_two_runs_started_together_never_share_a_folder(tmp_path):
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "src.train", "trainer.max_steps=3", "logger=none", f"paths.log_dir={tmp_path}"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0
    assert len(list((tmp_path / "train").iterdir())) == 2


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_until_the_disk_fills(fd):
        calls["n"] += 1
        if calls["n"] > 8:  # model.md, then two files (last, best), two fsyncs each, then one more last.ckpt
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(checkpoint_module.os, "fsync", fsync_until_the_disk_fills)
    with pytest.raises(UserError, match=r"^cannot write .*(last|best)\.ckpt: No space left on device$"):
        run_training(tmp_path, "model=mlp", "trainer.max_steps=2000", "trainer.checkpoint_every_n_epochs=100", "logger=none")
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")  # the last good one is intact
    assert saved["loop"]["step"] in (100, 200)
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


@pytest.mark.parametrize(
    "error, tried",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB"), " (tried to allocate 2.00 GiB)"),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 51200 bytes."), " (tried to allocate 51200 bytes)"),
    ],
)
def test_a_run_out_of_memory_names_what_shrinks_it_and_keeps_its_checkpoints(tmp_path, monkeypatch, error, tried):
    real, calls = BinaryClassification.training_step, {"n": 0}

    def step(self, batch, index):
        calls["n"] += 1
        if calls["n"] == 150:
            raise error
        return real(self, batch, index)

    monkeypatch.setattr(BinaryClassification, "training_step", step)
    with pytest.raises(UserError) as refusal:
        run_training(tmp_path, "optimizer=minibatch", "trainer.max_steps=300", "trainer.checkpoint_every_n_steps=100", "logger=none")
    assert str(refusal.value) == (
        f"out of memory{tried}: lower optimizer.batch_size (now 64) or trainer.eval_batch_size (now 4096), or set "
        "trainer.accumulate_grad_batches or trainer.precision=bf16-mixed; the checkpoints written so far are kept"
    )
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["loop"]["step"] == 100
    metrics = run_training(tmp_path / "resumed", "optimizer=minibatch", "trainer.max_steps=300", "logger=none", f"ckpt_path={tmp_path}/checkpoints/last.ckpt")
    assert metrics["step"] == 300


def test_other_runtime_errors_are_not_taken_for_a_full_memory(tmp_path, monkeypatch):
    def step(self, batch, index):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(BinaryClassification, "training_step", step)
    with pytest.raises(RuntimeError, match="^mat1 and mat2 shapes cannot be multiplied$"):
        run_training(tmp_path, "trainer.max_steps=3", "logger=none")


def nan_at_step(monkeypatch, bad_call: int):
    real = BinaryClassification.training_step
    calls = {"n": 0}

    def step(self, batch, index):
        calls["n"] += 1
        loss = real(self, batch, index)
        return loss * float("nan") if calls["n"] == bad_call else loss

    monkeypatch.setattr(BinaryClassification, "training_step", step)


def test_nan_loss_stops_naming_the_step(tmp_path, monkeypatch):
    nan_at_step(monkeypatch, 137)
    with pytest.raises(UserError, match=r"train/loss became nan at step 137; .*last good checkpoint: .*last\.ckpt \(step 100\)"):
        run_training(tmp_path, "trainer.max_steps=300", "trainer.checkpoint_every_n_epochs=100", "logger=none")
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["loop"]["step"] == 100


def test_a_loss_not_finite_before_any_update_points_at_the_initial_weights_not_the_lr(tmp_path):
    with pytest.raises(UserError, match=r"^train/loss became nan at step 1; the run is stopped \(the loss of the initial weights, "
                                        r"before any update: look at model\.init and model\.init_std, and at the data's scale\); "
                                        r"no checkpoint was written before it$"):
        run_training(tmp_path, "model=mlp", "activation=relu", "model.init=normal", "model.init_std=1e30", "logger=none")


def test_nan_loss_step_is_skipped_when_configured(tmp_path, monkeypatch, capsys):
    nan_at_step(monkeypatch, 137)
    metrics = run_training(tmp_path, "trainer.max_steps=300", "trainer.on_nonfinite_loss=skip", "logger=none")
    assert "step 137: train/loss is nan, step skipped" in capsys.readouterr().err
    assert metrics["step"] == 300 and metrics["train/loss"] < 0.7
    weights = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["model"]
    assert all(torch.isfinite(value).all() for value in weights.values())


def test_wrong_types_and_ranges_name_the_key(tmp_path):
    for override, message in [
        ("trainer.max_epochs=abc", r"^trainer\.max_epochs='abc': must be a positive integer or null$"),
        ("trainer.checkpoint_every_n_steps=0", r"^trainer\.checkpoint_every_n_steps=0: must be a positive integer or null$"),
        ("trainer.on_nonfinite_loss=ignore", r"^trainer\.on_nonfinite_loss='ignore': must be one of stop, skip$"),
        ("trainer.train_eval_rows=0", r"^trainer\.train_eval_rows=0: must be a positive integer or one of auto, all$"),
    ]:
        with pytest.raises(UserError, match=message):
            run_training(tmp_path, override, "logger=none")


def test_an_output_folder_that_cannot_be_made_gets_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"^paths\.output_dir='.*file/run': cannot create the run folder \(Not a directory\)$"):
        run_training(blocker / "run", "logger=none")


@pytest.mark.parametrize("multirun", [False, True])
def test_a_log_dir_under_a_regular_file_gets_one_line_before_hydra_makes_folders(tmp_path, multirun):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("src.train", *(["-m"] if multirun else []), f"paths.log_dir={blocker / 'logs'}", "trainer.max_steps=1", "logger=none")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: paths.log_dir='{blocker / 'logs'}': cannot create the run folder ")
    assert result.stderr.strip().endswith("(Not a directory)") and len(result.stderr.strip().splitlines()) == 1


def test_a_full_disk_while_tensorboard_writes_stops_the_logging_in_one_line_and_training_goes_on(tmp_path, monkeypatch, capsys):
    from tensorboard.summary.writer.record_writer import RecordWriter

    real_write, calls = RecordWriter.write, {"n": 0}

    def write_until_the_disk_fills(self, data):
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(RecordWriter, "write", write_until_the_disk_fills)
    metrics = run_training(tmp_path, "trainer.max_steps=3000", "trainer.checkpoint_every_n_epochs=500")
    captured = capsys.readouterr()
    warnings = [line for line in (captured.out + captured.err).splitlines() if "TensorBoard" in line and not line.startswith(" ")]
    assert warnings == [f"warning: cannot write TensorBoard events to {tmp_path} (No space left on device); training goes on without them"]
    assert "Traceback" not in captured.err and "Exception in thread" not in captured.err
    assert metrics["step"] == 3000 and metrics["train/acc"] > 0.85
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["loop"]["step"] == 3000


# Runs a module as `python -m` would, with a SIGKILL injected inside a durable write: after the
# temporary file of the nth write to a file named TARGET is complete, just before its rename.
KILL_INSIDE_WRITE = """
import os, runpy, signal, sys
target, nth, module = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_replace, seen = os.replace, {"n": 0}
def replace(source, destination):
    if str(destination).endswith(target):
        seen["n"] += 1
        if seen["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(source, destination)
os.replace = replace
sys.argv = [module, *sys.argv[4:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_killed_inside_write(target: str, nth: int, module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILL_INSIDE_WRITE, target, str(nth), module, *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )


def test_a_kill_inside_the_write_of_metrics_json_leaves_the_previous_file(tmp_path):
    run_training(tmp_path, "trainer.max_steps=50", "logger=none")
    before = (tmp_path / "metrics.json").read_text()
    result = run_killed_inside_write("metrics.json", 1, "src.evaluate", f"ckpt_path={tmp_path / 'checkpoints' / 'best.ckpt'}", "split=train")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (tmp_path / "metrics.json").read_text() == before  # not half of the new one
    assert json.loads(before)["step"] == 50


def test_a_kill_inside_the_write_of_best_ckpt_leaves_the_previous_one(tmp_path):
    result = run_killed_inside_write(
        "best.ckpt", 2, "src.train", *JOB[:5], "trainer.max_epochs=60", "trainer.max_steps=null", "trainer.val_every_n_epochs=1",
        "trainer.checkpoint_every_n_epochs=1", "logger=none", f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    (run,) = runs_in(tmp_path)
    best, last = load_checkpoint(run / "checkpoints" / "best.ckpt"), load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert best["loop"]["step"] <= last["loop"]["step"]  # the first best, written with the first last.ckpt
    assert set(best["model"]) == set(last["model"])


@pytest.mark.slow
def test_eight_joblib_jobs_on_two_cores_never_share_a_folder(tmp_path):
    result = run_cli(
        "src.train", "-m", "launcher=joblib", "trainer.seed=1,2,3,4,5,6,7,8", "trainer.max_steps=2", "logger=none",
        f"paths.log_dir={tmp_path}", timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "train").iterdir()
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir() and (path / "metrics.json").exists())
    assert len(jobs) == 8
    seeds = sorted(load_checkpoint(job / "checkpoints" / "last.ckpt")["config"]["trainer"]["seed"] for job in jobs)
    assert seeds == list(range(1, 9))


@pytest.mark.parametrize("python_state_as", ["tensor", "list"])  # a list in checkpoints written before 2026-11-29
def test_generator_states_come_back_from_a_checkpoint_file_exactly(tmp_path, python_state_as):
    import numpy as np

    from src.training.checkpoint import restore_rng_states, rng_states, serialize

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    states = rng_states()
    if python_state_as == "list":
        states["python"]["internal"] = states["python"]["internal"].tolist()
    (tmp_path / "last.ckpt").write_bytes(serialize({"model": {}, "rng": states}))
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(4), np.random.seed(4), random.seed(4)
    restore_rng_states(load_checkpoint(tmp_path / "last.ckpt")["rng"])
    drawn = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(drawn[0], expected[0]) and np.array_equal(drawn[1], expected[1]) and drawn[2] == expected[2]

"""Time the framework against a plain PyTorch loop written here (same model, data, seed, batch order).

    .venv/bin/python bench/bench.py [--repeats 3]

Prints, per job, the best of N interleaved repeats of the CPU time this process used (all its
threads: the framework's checkpoint and TensorBoard writers count; on a shared virtual machine CPU
time varies less than wall time), the ratio framework / plain loop of those bests and the median of
each round's own ratio ("paired"), the same two for the framework without loggers against the plain
loop that also scores the framework's checks (the same work but for checkpoints and the run folder), and the
wall time of `python -m src.train trainer.max_steps=1` against a process that only imports torch and
builds an optimizer. Not a test: these machines are noisy, so read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import operator
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from src import REPO_ROOT  # noqa: E402
from src.build import build_data, build_optimizer, build_task  # noqa: E402
from src.train import train  # noqa: E402
from src.training.trainer import AUTO_CHECK_STEPS  # noqa: E402

JOBS = {
    "planar GD, 10,000 whole-batch steps (default job)": [],
    "digits MLP 64-128-10 relu, batch 64, 50 epochs": [
        "data=digits", "model=mlp", "model.hidden=[128]", "activation=relu", "optimizer=minibatch",
        "trainer.max_epochs=50", "trainer.max_steps=null",
    ],
    "digits CNN (experiment=cnn_digits), Adam, 40 epochs": ["experiment=cnn_digits"],
}
# Optimization steps per job (for the framework's throughput): 1,167 training digits in batches of 64 = 19 per epoch.
STEPS = dict(zip(JOBS, [10_000, 50 * 19, 40 * 19]))
# trainer.seeds=K against one seed, per job (issue #10's targets: at most 2×, 3× and K× the time of one seed).
SEEDS = dict(zip(JOBS, [16, 16, 4]))


def config(overrides: list[str], out: Path):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={out}", *overrides])


DEVICE = torch.device("cpu")


def clock() -> float:
    """CPU seconds of this process on the CPU; wall seconds after the GPU's queue drains on CUDA."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def run_framework(overrides: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        cfg = config([*overrides, f"trainer.device={DEVICE.type}"], Path(out))
        start = clock()
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own lines would break the table
            metrics = train(cfg)
        return clock() - start, metrics["train/loss"]


def run_plain(overrides: list[str], checks: bool = False) -> tuple[float, float]:
    """The loop a PyTorch user writes by hand, on the framework's own data tensors and model class; with
    ``checks``, it also scores the framework's rows at the framework's checks (the step losses' mean, loss and
    accuracy of the validation split and of the training sample, one sync a check), as such a user would to
    watch a run: the same work as the framework with ``logger=none``, less its checkpoints and run folder."""
    with tempfile.TemporaryDirectory() as out:
        cfg = config(overrides, Path(out))
    start = clock()
    torch.manual_seed(cfg.trainer.seed)
    data = build_data(cfg.data).to(DEVICE)
    model = build_task(cfg, data.spec).model.to(DEVICE)  # the same module the framework builds, same init
    x, y = data.splits["train"]
    binary = data.num_classes == 2
    loss_fn = F.binary_cross_entropy_with_logits if binary else F.cross_entropy

    def loss_of(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss_fn(out.squeeze(-1) if binary else out, target)

    make_optimizer, batch_size = build_optimizer(cfg.optimizer)  # e.g. torch.optim.SGD with the config's lr
    optimizer = make_optimizer(model.parameters())
    epochs = cfg.trainer.max_epochs or 10**9
    cosine = cfg.get("scheduler") and cfg.scheduler._target_.endswith("CosineAnnealingLR")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs) if cosine else None
    data.sample_for_evaluation("train", cfg.trainer.train_eval_rows)  # the rows the framework's train/loss is scored on
    scored = {"train": next(data.batches("train", None)), **({"val": data.splits["val"]} if "val" in data.splits else {})}
    steps_per_epoch = 1 if batch_size is None else -(-len(y) // batch_size)
    check_every = max(1, AUTO_CHECK_STEPS // steps_per_epoch)
    history, window = [], []

    def check(splits: dict[str, tuple]) -> None:
        model.eval()
        with torch.no_grad():
            metrics = {"train/step_loss": torch.stack(window).mean()} if window else {}
            for split, (xs, ys) in splits.items():
                out = model(xs)
                metrics[f"{split}/loss"] = loss_of(out, ys)
                right = (torch.sigmoid(out.squeeze(-1)) > 0.5).float() == ys if binary else out.argmax(-1) == ys
                metrics[f"{split}/acc"] = right.float().mean()
        history.append(dict(zip(metrics, torch.stack(list(metrics.values())).tolist())))
        window.clear()
        model.train()

    model.train()
    steps = 0
    max_steps = cfg.trainer.max_steps or 10**12
    for epoch in range(epochs):
        if batch_size is None:
            batches = [(x, y)]
        else:
            seed = cfg.trainer.seed * 1_000_003 + epoch  # the framework's batch order
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(DEVICE)
            batches = ((x[order[i : i + batch_size]], y[order[i : i + batch_size]]) for i in range(0, len(y), batch_size))
        for xb, yb in batches:
            out = model(xb)
            loss = loss_of(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if checks:
                window.append(loss.detach())
            steps += 1
            if steps >= max_steps:
                break
        if scheduler is not None:
            scheduler.step()
        if checks and ((epoch + 1) % check_every == 0 or epoch + 1 == epochs) and window:
            check(scored)
        if steps >= max_steps:
            break
    if checks:
        if window:
            check(scored)
        final = history[-1]["train/loss"]
        if "test" in data.splits:  # scored once at the end, as the framework does
            check({"test": data.splits["test"]})
        return clock() - start, final
    model.eval()
    x, y = scored["train"]
    with torch.no_grad():
        out = model(x)
        final = loss_of(out, y).item()
    return clock() - start, final


def interleaved(repeats: int, overrides: list[str]) -> tuple[list[float], list[float], list[float], list[float]]:
    """The plain loop's, the framework's, the framework's with ``logger=none`` and the plain loop's with the
    framework's checks seconds in ``repeats`` rounds, one run of each per round; all must end at the same loss."""
    plain, framework, quiet, checked = [], [], [], []
    for _ in range(repeats):
        seconds, plain_loss = run_plain(overrides)
        plain.append(seconds)
        seconds, framework_loss = run_framework(overrides)
        framework.append(seconds)
        quiet.append(run_framework([*overrides, "logger=none"])[0])
        seconds, checked_loss = run_plain(overrides, checks=True)
        checked.append(seconds)
    tolerance = 1e-4 if DEVICE.type == "cpu" else 1e-2  # GPU kernels sum in other orders
    for loss in (framework_loss, checked_loss):
        assert abs(plain_loss - loss) < tolerance, (plain_loss, loss)  # the same work was done
    return plain, framework, quiet, checked


def paired(ours: list[float], plain: list[float], compare: Callable[[float, float], float]) -> float:
    """The median over rounds of ``compare(ours, plain)``: each run against the plain loop's run of its own round,
    so that a slow minute of the machine weighs on both sides (a second reading beside the ratio of two minima)."""
    return statistics.median(compare(o, p) for o, p in zip(ours, plain))


def seconds_per_epoch(launcher: list[str], job: list[str], out: str) -> float:
    """The training loop's wall time per epoch, as the run prints it ("trained E epochs, S steps in T s")."""
    result = subprocess.run(
        [*launcher, *job, "logger=none", f"paths.log_dir={out}"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    )
    epochs, seconds = re.search(r"trained (\d+) epochs, \d+ steps in ([\d.]+) s", result.stdout).groups()
    return float(seconds) / int(epochs)


def process_seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO_ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    options = parser.parse_args()
    if options.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: no CUDA device for torch {torch.__version__}")
    repeats = options.repeats
    global DEVICE
    DEVICE = torch.device(options.device)
    torch.set_num_threads(1)  # tiny tensors: threads only add noise
    unit = "wall seconds (CUDA synchronized)" if DEVICE.type == "cuda" else "CPU seconds of this process"
    print(f"torch {torch.__version__}, {DEVICE.type}, {unit}, best of {repeats} interleaved repeats")
    print(f"{'job':52} {'plain s':>8} {'framework s':>12} {'no logger s':>12} {'ratio':>6} {'ratio, no logger':>17} {'steps/s':>9}"
          f" {'paired':>7} {'paired, no logger':>18} {'checked plain s':>16} {'no logger/checked':>18} {'paired':>7}")
    run_framework(["trainer.max_steps=1"])  # warm-up: first imports (an optimizer's torch._dynamo, TensorBoard)
    for name, overrides in JOBS.items():
        plain, framework, quiet, checked = interleaved(repeats, overrides)
        p, f, q, c = min(plain), min(framework), min(quiet), min(checked)
        print(f"{name:52} {p:8.2f} {f:12.2f} {q:12.2f} {f / p:6.3f} {q / p:17.3f} {STEPS[name] / f:9.0f}"
              f" {paired(framework, plain, operator.truediv):7.3f} {paired(quiet, plain, operator.truediv):18.3f}"
              f" {c:16.2f} {q / c:18.3f} {paired(quiet, checked, operator.truediv):7.3f}")

    # What a run costs whatever its length: the digits MLP job cut to one epoch (19 steps, one check).
    mlp = next(overrides for name, overrides in JOBS.items() if name.startswith("digits MLP"))
    plain, framework, quiet, checked = interleaved(repeats, [o if not o.startswith("trainer.max_epochs=") else "trainer.max_epochs=1" for o in mlp])
    print(f"fixed cost of a run (digits MLP, 1 epoch: 19 steps, 1 check): plain loop {1000 * min(plain):.0f} ms; the framework adds "
          f"{1000 * paired(framework, plain, operator.sub):.0f} ms, {1000 * paired(quiet, plain, operator.sub):.0f} ms with logger=none"
          f" (paired); the plain loop with the same checks {1000 * min(checked):.0f} ms")

    bar, no_bar = [], []
    for _ in range(repeats):  # the bar writes to a terminal; here to memory, which costs the same formatting
        with contextlib.redirect_stderr(io.StringIO()):
            bar.append(run_framework(["trainer.progress_bar=true"])[0])
        no_bar.append(run_framework(["trainer.progress_bar=false"])[0])
    print(f"progress bar, default job: {min(bar):.2f} s with it, {min(no_bar):.2f} s without: ratio {min(bar) / min(no_bar):.3f}")

    print(f"\n{'seeds: K members in one stacked model':52} {'K':>3} {'1 seed s':>9} {'K seeds s':>10} {'ratio':>6} {'per model':>10}")
    for name, overrides in JOBS.items():
        members = SEEDS[name]
        one, many = [], []
        for _ in range(repeats):
            one.append(run_framework([*overrides, "logger=none"])[0])
            many.append(run_framework([*overrides, "logger=none", f"trainer.seeds={members}"])[0])
        ratio = min(many) / min(one)
        print(f"{name:52} {members:3} {min(one):9.2f} {min(many):10.2f} {ratio:6.2f} {members / ratio:9.1f}x")

    with tempfile.TemporaryDirectory() as out:
        whole = {
            k: min(process_seconds([sys.executable, "-m", "src.train", "logger=none", f"trainer.seeds={k}", f"paths.log_dir={out}"])
                   for _ in range(repeats))
            for k in (1, 16)
        }
    print(f"process, default job: `trainer.seeds=16` {whole[16]:.2f} s, `trainer.seeds=1` {whole[1]:.2f} s: ratio {whole[16] / whole[1]:.2f}\n")

    baseline = [sys.executable, "-c", "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1)"]
    with tempfile.TemporaryDirectory() as out:
        ours = [sys.executable, "-m", "src.train", "trainer.max_steps=1", f"paths.log_dir={out}"]
        base_s = min(process_seconds(baseline) for _ in range(repeats))
        ours_s = min(process_seconds(ours) for _ in range(repeats))
    print(f"process: `python -m src.train trainer.max_steps=1` {ours_s:.2f} s; "
          f"`import torch` + an optimizer alone {base_s:.2f} s; difference {ours_s - base_s:.2f} s")

    if DEVICE.type == "cpu":  # data parallel: the same global batch of 256, on 1 and on 2 processes (gloo)
        job = ["data=digits", "model=mlp", "model.hidden=[256,256]", "activation=relu", "optimizer=minibatch",
               "optimizer.batch_size=256", "trainer.max_epochs=40", "trainer.max_steps=null"]
        torchrun = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node=2", "-m", "src.train"]
        one, two = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                one.append(seconds_per_epoch([sys.executable, "-m", "src.train"], job, a))
                two.append(seconds_per_epoch(torchrun, job, b))
        speedup = min(one) / min(two)
        print(f"DDP, digits MLP 64-256-256-10, global batch 256: 1 process {1000 * min(one):.1f} ms/epoch, "
              f"2 processes {1000 * min(two):.1f} ms/epoch: speed-up {speedup:.2f}, scaling efficiency {speedup / 2:.0%}")


if __name__ == "__main__":
    main()

"""Study 4: batch sizes at equal epochs and equal time; update rules and learning-rate decay on moons."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import COLOURS, load_runs, output_folder, place_in, save_figure, table, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)
RULES = {"torch.optim.SGD": "mini-batch", "torch.optim.Adam": "Adam"}
NOTES = {"mini-batch": 0.80, "momentum": 0.80, "Adam": 0.94}  # the notes' training accuracies at lr 0.0007


def batch_label(run) -> str:
    size = run.get("optimizer.batch_size")
    return "gradient descent (whole batch)" if size is None else "stochastic (1)" if size == 1 else f"mini-batch {size}"


def rule_label(run) -> str:
    optimizer = run.config["optimizer"]
    rule = "momentum" if optimizer.get("momentum") else RULES[optimizer["_target_"]]
    return f"{rule}, " + ("lr 0.1 with decay" if run.config.get("scheduler") else f"lr {optimizer['lr']}")


def batch_sizes(runs) -> list[str]:
    runs = sorted(runs, key=lambda r: r.get("optimizer.batch_size") or 10**9)
    figure, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(12, 4))
    rows = []
    for colour, run in zip(COLOURS, runs):
        for index, member in enumerate(run.members()):
            _, acc, seconds = member.scalars("val/acc")
            _, epochs, _ = member.scalars("epoch")
            label = batch_label(run) if index == 0 else None
            by_epoch.plot(epochs, acc, color=colour, alpha=0.6, linewidth=1, label=label)
            by_time.plot(seconds, acc, color=colour, alpha=0.6, linewidth=1, label=label)
        _, epochs, _ = run.scalars("epoch")
        _, _, seconds = run.scalars("val/acc")
        rows.append([batch_label(run), run.spread("val/acc", percent=True), run.metrics["step"],
                     f"{seconds[-1] / max(epochs[-1] - epochs[0], 1):.3f} s"])
    by_epoch.set(xlabel="epoch", ylabel="val/acc", title="equal epochs (one line per seed)")
    by_time.set(xlabel="seconds since the first check (log scale)", ylabel="val/acc", title="equal wall time")
    by_time.set_xscale("symlog", linthresh=0.01)
    by_epoch.legend()
    ranked = sorted(runs, key=lambda r: r.metrics["val/acc"], reverse=True)
    first, second = ranked[0], ranked[1]
    separated = min(first.values("val/acc")) > max(second.values("val/acc"))
    seeds = len(first.values("val/acc"))
    return [
        "## Whole batch, one example, or mini-batches\n\nThe digits (flat, standardized), a 64-64-10 relu MLP, plain "
        f"SGD updates at lr 0.1 (0.01 for batches of 1), 30 epochs, validated every epoch, {seeds} seeds per setting "
        "trained together (`trainer.seeds`); time is the run's own wall clock from its TensorBoard events (all "
        "seeds at once).",
        table(["optimizer", "val/acc after 30 epochs: mean ± std (min–max)", "steps", "seconds per epoch"], rows),
        save_figure(figure, OUT / "batch_sizes.png"),
        f"Per epoch, smaller batches take more steps and learn more; per second, each step also costs time. "
        f"After 30 epochs {batch_label(first)} leads with {first.spread('val/acc', percent=True)}, "
        + ("ahead of every seed of the next, " if separated else "but its seeds overlap those of ")
        + f"{batch_label(second)}: {second.spread('val/acc', percent=True)}.",
    ]


def update_rules(runs) -> list[str]:
    runs = sorted(runs, key=rule_label)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    rows = []
    for colour, run in zip(COLOURS, runs):
        for index, member in enumerate(run.members()):
            steps, loss, _ = member.scalars("train/loss")
            axis.plot(steps, loss, color=colour, alpha=0.6, linewidth=1, label=rule_label(run) if index == 0 else None)
        stuck = run.stuck_at_chance("train/acc", 0.5)
        rows.append([rule_label(run), run.spread("train/acc", percent=True), run.spread("train/loss"), ", ".join(stuck) or "none"])
    axis.set(xlabel="step", ylabel="train/loss", yscale="log", title="one line per seed")
    axis.legend(fontsize=8)
    constant = {rule: next((r for r in runs if rule_label(r) == f"{rule}, lr 0.0007"), None) for rule in NOTES}
    placed = [
        f"{rule} {100 * NOTES[rule]:.0f}% is {place_in(NOTES[rule], run.values('train/acc'))}, measured {run.spread('train/acc', percent=True)}"
        for rule, run in constant.items() if run is not None
    ]
    adam, others = constant.get("Adam"), [r for rule, r in constant.items() if rule != "Adam" and r is not None]
    holds = adam is not None and others and all(min(adam.values("train/acc")) > max(r.values("train/acc")) for r in others)
    ahead = adam is not None and others and all(adam.metrics["train/acc"] > r.metrics["train/acc"] for r in others)
    verdict = (
        "holds: every Adam seed beats every seed of the other two" if holds
        else "holds on average only: Adam's mean is the highest, but the seeds overlap" if ahead
        else "does not hold here: Adam's mean is not the highest"
    )
    if adam is not None and adam.stuck_at_chance("train/acc", 0.5):
        dead = adam.stuck_at_chance("train/acc", 0.5)
        alive = [m["train/acc"] for seed, m in adam.per_seed.items() if seed not in dead]
        verdict += (
            f" (Adam's seed {', '.join(dead)} is a dead network at chance; the other {len(alive)} average "
            f"{100 * sum(alive) / len(alive):.1f}%, from {100 * min(alive):.1f}% to {100 * max(alive):.1f}%)"
        )
    decayed = ", ".join(
        f"{rule_label(r).split(',')[0]} {r.spread('train/acc', percent=True)}" for r in runs if "decay" in rule_label(r)
    )
    seeds = len(runs[0].values("train/acc"))
    return [
        "## Update rules on moons\n\nThe notes' source: 300 moons points (noise 0.2, numpy seed 3), a [2, 5, 2, 1] "
        "relu-relu-sigmoid network with He initialization, batches of 64, 10,000 epochs. It reports about 80% for "
        "plain mini-batch, 80% for momentum (β = 0.9, its rule v = β·v + (1−β)·dW) and 94% for Adam (0.9, 0.999, "
        f"1e-8) at lr 0.0007. Here each setting trains {seeds} seeds together (initial weights and batch order "
        "differ); the decay rows start at lr 0.1 and decay as lr0 / (1 + 0.001·epoch). The last column names the "
        "seeds stuck at chance (training accuracy ≤ 52%): dead networks.",
        table(["update rule", "training accuracy: mean ± std (min–max)", "final train/loss", "seeds stuck at chance"], rows),
        "Where the notes' numbers fall: " + "; ".join(placed) + f". The notes' conclusion (Adam well ahead) {verdict}. "
        f"Starting from lr 0.1 and decaying: {decayed}.",
        save_figure(figure, OUT / "update_rules.png"),
    ]


def main() -> None:
    runs = load_runs(OUT / "runs")
    sections = []
    by_batch = [r for r in runs if "batch_sizes" in str(r.path)]
    by_rule = [r for r in runs if "moons_update_rules" in str(r.path)]
    if by_batch:
        sections += batch_sizes(by_batch)
    if by_rule:
        sections += update_rules(by_rule)
    write_report(OUT, "Optimization", "bash experiments/run_study.sh 04_optimization", sections)


if __name__ == "__main__":
    main()

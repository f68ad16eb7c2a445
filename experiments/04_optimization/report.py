"""Study 4: batch sizes at equal epochs and equal time; update rules and learning-rate decay on moons."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import load_runs, output_folder, save_figure, table, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)
RULES = {"torch.optim.SGD": "mini-batch", "torch.optim.Adam": "Adam"}


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
    for run in runs:
        steps, acc, seconds = run.scalars("val/acc")
        _, epochs, _ = run.scalars("epoch")
        by_epoch.plot(epochs, acc, label=batch_label(run))
        by_time.plot(seconds, acc, label=batch_label(run))
        rows.append([batch_label(run), f"{100 * run.metrics['val/acc']:.1f}%", run.metrics["step"], f"{seconds[-1] / max(epochs[-1] - epochs[0], 1):.3f} s"])
    by_epoch.set(xlabel="epoch", ylabel="val/acc", title="equal epochs")
    by_time.set(xlabel="seconds since the first check (log scale)", ylabel="val/acc", title="equal wall time")
    by_time.set_xscale("symlog", linthresh=0.01)
    by_epoch.legend()
    best_at_time = max(runs, key=lambda r: r.scalars("val/acc")[1][next((i for i, s in enumerate(r.scalars("val/acc")[2]) if s >= 1.0), -1)])
    return [
        "## Whole batch, one example, or mini-batches\n\nThe digits (flat, standardized), a 64-64-10 relu MLP, plain "
        "SGD updates at lr 0.1 (0.01 for batches of 1), 30 epochs, validated every epoch; time is the run's own "
        "wall clock from its TensorBoard events.",
        table(["optimizer", "val/acc after 30 epochs", "steps", "seconds per epoch"], rows),
        save_figure(figure, OUT / "batch_sizes.png"),
        f"Per epoch, smaller batches take more steps and learn more; per second, each step also costs time. "
        f"After one second of training the best is {batch_label(best_at_time)}.",
    ]


def update_rules(runs) -> list[str]:
    runs = sorted(runs, key=rule_label)
    figure, axis = plt.subplots(figsize=(7, 4))
    rows = []
    for run in runs:
        steps, loss, _ = run.scalars("train/loss")
        axis.plot(steps, loss, label=rule_label(run))
        rows.append([rule_label(run), f"{100 * run.metrics['train/acc']:.1f}%", run.metrics["train/loss"]])
    axis.set(xlabel="step", ylabel="train/loss", yscale="log")
    axis.legend(fontsize=8)
    accuracy = {row[0]: row[1] for row in rows}
    constant = ", ".join(f"{rule} {accuracy.get(f'{rule}, lr 0.0007', '—')}" for rule in ("mini-batch", "momentum", "Adam"))
    decayed = ", ".join(f"{rule} {accuracy.get(f'{rule}, lr 0.1 with decay', '—')}" for rule in ("mini-batch", "momentum", "Adam"))
    findings = (
        f"At lr 0.0007 this run reaches {constant} (the notes: 80%, 80%, 94%). The [5, 2] network is so small that "
        "where it ends depends on its initial weights and batch order (torch's generator here, numpy's there). "
        f"Starting from lr 0.1 and decaying: {decayed}: the large early steps travel far, the decay lets them settle."
    )
    return [
        "## Update rules on moons\n\nThe notes' source: 300 moons points (noise 0.2, numpy seed 3), a [2, 5, 2, 1] "
        "relu-relu-sigmoid network with He initialization, batches of 64, 10,000 epochs. It reports about 80% for "
        "plain mini-batch, 80% for momentum (β = 0.9) and 94% for Adam (0.9, 0.999, 1e-8) at lr 0.0007. The decay "
        "rows start at lr 0.1 and decay as lr0 / (1 + 0.001·epoch).",
        table(["update rule", "training accuracy", "final train/loss"], rows),
        findings,
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

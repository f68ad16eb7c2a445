"""Study 2: how many hidden units does the flower need?"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import load_runs, output_folder, save_figure, table, write_report

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)


def main() -> None:
    runs = sorted(load_runs(OUT / "runs"), key=lambda r: r.get("model.hidden")[0])
    sizes = [r.get("model.hidden")[0] for r in runs]
    accuracy = [r.metrics["train/acc"] for r in runs]
    costs = [r.metrics["train/loss"] for r in runs]

    columns = min(4, len(runs))
    rows_n = -(-len(runs) // columns)
    figure, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 4 * rows_n), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, run, size in zip(axes.flat, runs, sizes):
        axis.imshow(run.image("train/decision_boundary"))
        axis.set_title(f"n_h = {size}: {100 * run.metrics['train/acc']:.1f}%")
    boundaries = save_figure(figure, OUT / "boundaries.png")

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(range(len(sizes)), [100 * a for a in accuracy], marker="o")
    axis.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    axis.set_xlabel("hidden units n_h")
    axis.set_ylabel("training accuracy (%)")
    curve = save_figure(figure, OUT / "accuracy.png")

    best = max(accuracy)
    enough = next(s for s, a in zip(sizes, accuracy) if a >= best - 0.01)
    under = [s for s, a in zip(sizes, accuracy) if a < best - 0.05]
    findings = (
        f"The best accuracy is {100 * best:.1f}%. "
        + (f"With n_h ≤ {max(under)} the network underfits (more than 5 points below the best). " if under else "")
        + f"From n_h = {enough} on, more units stay within 1 point of the best: they stop helping. "
        f"The cost J still falls from {costs[sizes.index(enough)]:.3f} (n_h = {enough}) to {costs[-1]:.3f} "
        f"(n_h = {sizes[-1]}) while the accuracy does not rise: the extra units fit the noise at the petals' edges."
    )
    write_report(
        OUT,
        "Hidden layer size",
        "bash experiments/run_study.sh 02_hidden_layer_size",
        [
            "The notes' 2-layer tanh network on the planar flower, 5,000 whole-batch gradient-descent steps at lr 1.2, "
            "weights initialized as randn × 0.01 with zero biases.",
            table(["hidden units", "training accuracy", "final cost J"], [[s, f"{100 * r.metrics['train/acc']:.1f}%", r.metrics["train/loss"]] for s, r in zip(sizes, runs)]),
            findings,
            curve,
            "## Decision boundaries\n\n" + boundaries,
        ],
    )


if __name__ == "__main__":
    main()

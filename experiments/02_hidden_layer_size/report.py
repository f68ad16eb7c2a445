"""Study 2: how many hidden units does the flower need?"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import load_runs, output_folder, place_in, save_figure, table, write_report

# What the notebook the notes come from prints for each n_h (one run each, numpy's seed).
SOURCE = {1: 0.675, 2: 0.6725, 3: 0.9075, 4: 0.905, 5: 0.9125, 20: 0.90, 50: 0.9025}
HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)


def main() -> None:
    runs = sorted(load_runs(OUT / "runs"), key=lambda r: r.get("model.hidden")[0])
    sizes = [r.get("model.hidden")[0] for r in runs]
    accuracy = [r.metrics["train/acc"] for r in runs]  # the mean over seeds
    costs = [r.metrics["train/loss"] for r in runs]
    seeds = len(runs[0].values("train/acc"))

    columns = min(4, len(runs))
    rows_n = -(-len(runs) // columns)
    figure, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 4 * rows_n), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, run, size in zip(axes.flat, runs, sizes):
        axis.imshow(run.image("train/decision_boundary"))
        axis.set_title(f"n_h = {size}: {run.spread('train/acc', percent=True).split(' (')[0]}")
    boundaries = save_figure(figure, OUT / "boundaries.png")

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for position, run in enumerate(runs):
        axis.scatter([position] * seeds, [100 * a for a in run.values("train/acc")], color="tab:blue", alpha=0.5, s=14)
    axis.plot(range(len(sizes)), [100 * a for a in accuracy], marker="o", color="tab:blue", label=f"mean of {seeds} seeds")
    source = [SOURCE.get(s) for s in sizes]
    axis.plot([i for i, v in enumerate(source) if v], [100 * v for v in source if v], "x", color="tab:red", label="the notes' source")
    axis.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    axis.set_xlabel("hidden units n_h")
    axis.set_ylabel("training accuracy (%)")
    axis.legend()
    curve = save_figure(figure, OUT / "accuracy.png")

    best_run = max(runs, key=lambda r: r.metrics["train/acc"])
    best = best_run.metrics["train/acc"]
    enough = next(s for s, a in zip(sizes, accuracy) if a >= best - 0.01)
    under = [s for s, a in zip(sizes, accuracy) if a < best - 0.05]
    placed = [f"n_h = {s}: {100 * SOURCE[s]:.2f}% is {place_in(SOURCE[s], r.values('train/acc'))}" for s, r in zip(sizes, runs) if s in SOURCE]
    overlapping = [s for s, r in zip(sizes, runs) if r is not best_run and max(r.values("train/acc")) >= min(best_run.values("train/acc"))]
    findings = (
        f"The best mean accuracy is {best_run.spread('train/acc', percent=True)}, at n_h = {best_run.get('model.hidden')[0]}"
        + (f"; the seeds of n_h = {', '.join(map(str, overlapping))} overlap it, so no single size wins. " if overlapping else ", ahead of every seed of every other size. ")
        + (f"With n_h ≤ {max(under)} the network underfits (more than 5 points below the best). " if under else "")
        + f"From n_h = {enough} on, more units stay within 1 point of the best: they stop helping. "
        f"The cost J still falls from {costs[sizes.index(enough)]:.3f} (n_h = {enough}) to {costs[-1]:.3f} "
        f"(n_h = {sizes[-1]}) while the accuracy does not rise: the extra units fit the noise at the petals' edges.\n\n"
        "Where the source's numbers fall: " + "; ".join(placed) + ". The source concludes that n_h = 5 is best and "
        "that beyond it larger models overfit; across seeds, " + (
            "n_h = 5 does have the highest mean." if best_run.get("model.hidden")[0] == 5
            else f"the highest mean is at n_h = {best_run.get('model.hidden')[0]}, and the sizes from 3 on differ by less than their spread: the ranking among them is luck."
        )
    )
    write_report(
        OUT,
        "Hidden layer size",
        "bash experiments/run_study.sh 02_hidden_layer_size",
        [
            "The notes' 2-layer tanh network on the planar flower, 5,000 whole-batch gradient-descent steps at lr 1.2, "
            f"weights initialized as randn × 0.01 with zero biases; {seeds} seeds per size trained together "
            "(`trainer.seeds`: only the initial weights differ). Decision boundaries are the seeds' ensemble.",
            table(["hidden units", "training accuracy: mean ± std (min–max)", "final cost J: mean ± std (min–max)"],
                  [[s, r.spread("train/acc", percent=True), r.spread("train/loss")] for s, r in zip(sizes, runs)]),
            findings,
            curve,
            "## Decision boundaries\n\n" + boundaries,
        ],
    )


if __name__ == "__main__":
    main()

"""Study 3: activations on the flower and the digits: curves, accuracy, gradient norms, dead units."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import COLOURS, load_runs, output_folder, save_figure, table, write_report  # noqa: E402


from src.build import build_data, build_from_checkpoint  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)


def label(run) -> str:
    name = run.get("activation._target_").removeprefix("torch.nn.")
    slope = run.config["activation"].get("negative_slope")
    return f"{name} ({slope})" if slope is not None else name


def dead_unit_fraction(run, seed: str) -> list[float]:
    """Per hidden layer: the fraction of one seed's units that output ≤ 0 on every training example."""
    members = None if "per_seed" not in run.metrics else int(seed)
    task, _, config = build_from_checkpoint(str(run.path / "checkpoints" / "last.ckpt"), members)
    x, _ = build_data(config.data).splits["train"]
    outputs = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for m in task.model.layers if not isinstance(m, (torch.nn.Linear, torch.nn.Flatten))]
    with torch.no_grad():
        task.model(x)
    for hook in hooks:
        hook.remove()
    return [float((out <= 0).all(dim=0).float().mean()) for out in outputs]


def main() -> None:
    runs = load_runs(OUT / "runs")
    datasets = sorted({r.get("data._target_").rsplit(".", 1)[1] for r in runs})
    sections = [
        "An MLP with two hidden layers of 32 units (Xavier initialization), mini-batch SGD (64, lr 0.1), 200 epochs, "
        "with each hidden activation, on the planar flower (all 400 points) and the digits (flat 64 pixels, "
        "held-out validation and test splits); each setting trains 5 seeds together (`trainer.seeds`), and the "
        "tables give mean ± std (min–max) over them. Gradient norms come from the gradient histograms in each run's "
        "TensorBoard events (√ of their sum of squares over all seeds' tensors, divided by √5: the root mean square "
        "of the seeds' norms). The last column counts units that output ≤ 0 on every training example, per seed: "
        "for relu such a unit is dead (its gradient is zero for good); leaky relu still passes a slope of 0.001 or "
        "0.01 below zero, so its units can recover. The next column names seeds stuck at chance (dead networks)."
    ]
    for dataset in datasets:
        group = sorted((r for r in runs if r.get("data._target_").endswith(dataset)), key=label)
        split = "val" if any("val/acc" in r.metrics for r in group) else "train"
        rows = []
        figure, (loss_axis, grad_axis) = plt.subplots(1, 2, figsize=(12, 4))
        for colour, run in zip(COLOURS, group):
            members = run.members()
            for index, member in enumerate(members):
                steps, values, _ = member.scalars("train/loss")
                loss_axis.plot(steps, values, color=colour, alpha=0.5, linewidth=0.8, label=label(run) if index == 0 else None)
            scale = len(members) ** -0.5
            norms = {layer: (steps, [scale * n for n in values]) for layer, (steps, values) in run.gradient_norms().items()}
            first = sorted(norms)[0]
            grad_axis.semilogy(*norms[first], color=colour, label=label(run))
            dead = [dead_unit_fraction(run, seed) for seed in run.per_seed]
            chance = 0.5 if dataset == "planar_flower" else 0.1
            rows.append([
                label(run), run.spread(f"{split}/acc", percent=True), run.spread("train/loss"),
                f"{norms[first][1][0]:.2e} → {norms[first][1][-1]:.2e}",
                " / ".join(f"{norms[layer][1][0]:.1e}" for layer in sorted(norms)),
                ", ".join(run.stuck_at_chance(f"{split}/acc", chance)) or "none",
                " / ".join(f"{100 * min(d[i] for d in dead):.0f}–{100 * max(d[i] for d in dead):.0f}%" for i in range(len(dead[0]))),
            ])
        loss_axis.set(xlabel="step", ylabel="train/loss", title=f"{dataset}: loss")
        grad_axis.set(xlabel="step", ylabel="gradient norm", title=f"{dataset}: first layer's weight gradient")
        loss_axis.legend()
        figure_md = save_figure(figure, OUT / f"{dataset}.png")
        sections.append(f"## {dataset}\n\n" + table(
            ["activation", f"{split} accuracy", "final train/loss", "first-layer gradient norm, first → last",
             "gradient norm per layer, input → output (first histogram)", "seeds stuck at chance",
             "dead units per hidden layer (min–max over seeds)"], rows
        ) + "\n\n" + figure_md)
        ranked = sorted(group, key=lambda r: r.metrics[f"{split}/acc"], reverse=True)
        best, second = ranked[0], ranked[1]
        separated = min(best.values(f"{split}/acc")) > max(second.values(f"{split}/acc"))
        slowest = max(group, key=lambda r: r.metrics["train/loss"])
        slow_row = rows[group.index(slowest)]
        sections.append(
            f"Best mean accuracy on {dataset}: {label(best)}, {best.spread(f'{split}/acc', percent=True)}, "
            + ("ahead of every seed of the runner-up" if separated else "but its seeds overlap the runner-up's")
            + f", {label(second)}: {second.spread(f'{split}/acc', percent=True)}. Highest final loss: {label(slowest)}, "
            f"{slowest.spread('train/loss')}; its gradient norms per layer start at {slow_row[4]} (input → output). "
            "Sigmoid's derivative is at most 0.25, so its gradients shrink on their way back to the first layer. "
            "The notes list sigmoid, tanh, relu and leaky relu (max(0.001x, x)) without ranking them; here the "
            "ranking by mean is " + " > ".join(label(r) for r in ranked) + "."
        )
    write_report(OUT, "Activations", "bash experiments/run_study.sh 03_activations", sections)


if __name__ == "__main__":
    main()

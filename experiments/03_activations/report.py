"""Study 3: activations on the flower and the digits: curves, accuracy, gradient norms, dead units."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import load_runs, output_folder, save_figure, table, write_report  # noqa: E402

from src.build import build_data, build_from_checkpoint  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)


def label(run) -> str:
    name = run.get("activation._target_").removeprefix("torch.nn.")
    slope = run.config["activation"].get("negative_slope")
    return f"{name} ({slope})" if slope is not None else name


def dead_unit_fraction(run) -> list[float]:
    """Per hidden layer: the fraction of units that output ≤ 0 on every training example."""
    task, _, config = build_from_checkpoint(str(run.path / "checkpoints" / "last.ckpt"))
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
        "held-out validation and test splits). Gradient norms come from the gradient histograms in each run's "
        "TensorBoard events (√ of their sum of squares). The last column counts units that output ≤ 0 on every "
        "training example: for relu such a unit is dead (its gradient is zero for good); leaky relu still passes a "
        "slope of 0.001 or 0.01 below zero, so its units can recover."
    ]
    for dataset in datasets:
        group = sorted((r for r in runs if r.get("data._target_").endswith(dataset)), key=label)
        split = "val" if any("val/acc" in r.metrics for r in group) else "train"
        rows = []
        figure, (loss_axis, grad_axis) = plt.subplots(1, 2, figsize=(12, 4))
        for run in group:
            steps, values, _ = run.scalars("train/loss")
            loss_axis.plot(steps, values, label=label(run))
            norms = run.gradient_norms()
            first = sorted(norms)[0]
            grad_axis.semilogy(*norms[first], label=label(run))
            dead = dead_unit_fraction(run)
            rows.append([
                label(run), f"{100 * run.metrics[f'{split}/acc']:.1f}%", run.metrics["train/loss"],
                f"{norms[first][1][0]:.2e} → {norms[first][1][-1]:.2e}",
                " / ".join(f"{norms[layer][1][0]:.1e}" for layer in sorted(norms)),
                " / ".join(f"{100 * d:.0f}%" for d in dead),
            ])
        loss_axis.set(xlabel="step", ylabel="train/loss", title=f"{dataset}: loss")
        grad_axis.set(xlabel="step", ylabel="gradient norm", title=f"{dataset}: first layer's weight gradient")
        loss_axis.legend()
        figure_md = save_figure(figure, OUT / f"{dataset}.png")
        sections.append(f"## {dataset}\n\n" + table(
            ["activation", f"{split} accuracy", "final train/loss", "first-layer gradient norm, first → last",
             "gradient norm per layer, input → output (first histogram)", "dead units per hidden layer"], rows
        ) + "\n\n" + figure_md)
        best = max(rows, key=lambda r: float(r[1].rstrip("%")))
        slowest = max(rows, key=lambda r: r[2])
        sections.append(
            f"Best accuracy on {dataset}: {best[0]} ({best[1]}). Highest final loss: {slowest[0]} ({slowest[2]:.4f}, "
            f"accuracy {slowest[1]}); its gradient norms per layer start at {slowest[4]} (input → output). Sigmoid's "
            "derivative is at most 0.25, so its gradients shrink on their way back to the first layer."
        )
    write_report(OUT, "Activations", "bash experiments/run_study.sh 03_activations", sections)


if __name__ == "__main__":
    main()

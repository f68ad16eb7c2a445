"""Study 7: the CNN, the RNN and the GAN, with their curves and pictures over training."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import load_runs, output_folder, save_figure, table, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = output_folder(HERE)


def over_training(run, tag: str, name: str, count: int = 4) -> str:
    images = run.images(tag)
    if len(images) <= count:
        chosen = images
    elif count == 1:
        chosen = images[-1:]
    else:  # evenly spread over training, first and last included
        chosen = [images[round(i * (len(images) - 1) / (count - 1))] for i in range(count)]
    figure, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 4), squeeze=False)
    for axis, (step, image) in zip(axes[0], chosen):
        axis.imshow(image)
        axis.set_title(f"step {step}")
        axis.axis("off")
    return save_figure(figure, OUT / f"{name}.png")


def curves(run, tags: list[str], name: str, log: bool = False) -> str:
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for tag in tags:
        steps, values, _ = run.scalars(tag)
        axis.plot(steps, values, label=tag)
    axis.set(xlabel="step", yscale="log" if log else "linear")
    axis.legend()
    return save_figure(figure, OUT / f"{name}.png")


def main() -> None:
    runs = {run.config["name"]: run for run in load_runs(OUT / "runs")}
    sections = ["The named experiments of the deep-model families, each rerun into this folder."]
    rows = []
    if "cnn_digits" in runs:
        run = runs["cnn_digits"]
        rows.append(["cnn_digits", "test/acc", run.metrics["test/acc"], "≥ 0.98"])
        sections += [
            "## CNN on the digits (1×8×8)",
            curves(run, ["train/loss", "val/loss"], "cnn_loss"),
            "First-layer filters and the misclassified test digits (actual→predicted in the run's TensorBoard text):",
            over_training(run, "model/first_layer_filters", "cnn_filters", count=1),
            over_training(run, "test/misclassified", "cnn_misclassified", count=1),
        ]
    if "rnn_adding" in runs:
        run = runs["rnn_adding"]
        rows.append(["rnn_adding", "test/mse", run.metrics["test/mse"], "< 0.01 (predicting 1: 0.167)"])
        sections += ["## RNN on the adding problem (T = 50)", curves(run, ["train/mse", "val/mse"], "adding_mse", log=True)]
    if "rnn_sine" in runs:
        run = runs["rnn_sine"]
        rows.append(["rnn_sine", "test/mse", run.metrics["test/mse"], "—"])
        sections += [
            "## RNN forecasting a sine wave",
            "300 steps forecast from the model's own outputs (blue) against the truth (red), over training:",
            over_training(run, "test/forecast", "sine_forecast", count=3),
        ]
    if "gan_ring" in runs:
        run = runs["gan_ring"]
        rows.append(["gan_ring", "val/modes_covered", run.metrics["val/modes_covered"], "≥ 7"])
        rows.append(["gan_ring", "val/high_quality", run.metrics["val/high_quality"], "≥ 0.80"])
        sections += [
            "## GAN on 8 Gaussians on a ring",
            curves(run, ["val/modes_covered"], "gan_modes") + "\n\n" + curves(run, ["val/high_quality"], "gan_quality"),
            "Generated (blue) against real (red) points over training:",
            over_training(run, "samples/generated_vs_real", "gan_samples"),
        ]
    sections.insert(1, table(["experiment", "metric", "value", "target"], rows))
    write_report(OUT, "CNN, RNN and GAN", "bash experiments/run_study.sh 07_deep_models", sections)


if __name__ == "__main__":
    main()

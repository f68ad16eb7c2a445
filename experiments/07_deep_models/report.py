"""Study 7: the CNN, the RNN and the GAN, with their curves and pictures over training."""

import math
import re
import statistics
import sys
from pathlib import Path

import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/common.py

from common import COLOURS, load_runs, output_folder, save_figure, table, write_report  # noqa: E402


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
    """Each tag: one thin line per seed, the mean over seeds thick."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for colour, tag in zip(COLOURS, tags):
        for member in run.members():
            axis.plot(*member.scalars(tag)[:2], color=colour, alpha=0.35, linewidth=0.8)
        axis.plot(*run.scalars(tag)[:2], color=colour, linewidth=2, label=f"{tag} (mean of {len(run.members())} seeds)")
    axis.set(xlabel="step", yscale="log" if log else "linear")
    axis.legend()
    return save_figure(figure, OUT / f"{name}.png")


# Lin et al., "PacGAN: The power of two samples in generative adversarial networks", NeurIPS 2018, Table 1:
# mean ± standard error over 10 trials of modes covered, high-quality samples (%) and reverse KL.
PUBLISHED = {  # the PacGAN rows as quoted in issue #14, means only
    "ring": [("GAN", "6.3 ± 0.5", "98.2 ± 0.2", "0.45 ± 0.09"), ("ALI", "6.6 ± 0.3", "97.6 ± 0.4", "0.36 ± 0.04"),
             ("PacGAN2", "7.9", "95.6", "0.07"), ("PacGAN3", "7.8", "97.7", "0.10"), ("PacGAN4", "7.8", "95.9", "0.07")],
    "grid": [("GAN", "17.3 ± 0.8", "94.8 ± 0.7", "0.70 ± 0.07"), ("ALI", "24.1 ± 0.4", "95.7 ± 0.6", "0.14 ± 0.03"),
             ("PacGAN2", "23.8", "91.3", "0.13"), ("PacGAN3", "24.6", "94.2", "0.06"), ("PacGAN4", "24.8", "93.6", "0.04")],
}


def mean_and_error(values: list[float], scale: float = 1.0, form: str = ".2f") -> str:
    """mean ± standard error (the sample standard deviation over √n), as the paper reports."""
    values = [scale * v for v in values]
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):{form}} ± {error:{form}}"


def packing_section(pack_runs: list) -> list[str]:
    rows = []
    for data in ("ring", "grid"):
        ours = sorted((run for run in pack_runs if run.config["data"]["_target_"].endswith(data)), key=lambda run: run.get("model.pack"))
        for run in ours:
            pack = run.get("model.pack")
            for prefix in scored_weights(run):
                weights = ", EMA of the weights" if prefix == "val/ema/" else ""
                rows.append([data, f"ours: {'GAN' if pack == 1 else f'PacGAN{pack}'}{weights} ({len(run.per_seed)} seeds)",
                             mean_and_error(run.values(f"{prefix}modes_covered"), form=".1f"),
                             mean_and_error(run.values(f"{prefix}high_quality"), 100, ".1f"),
                             mean_and_error(run.values(f"{prefix}reverse_kl"), form=".3f")])
        rows += [[data, f"paper: {name}", modes, quality, kl] for name, modes, quality, kl in PUBLISHED[data]]
    first = pack_runs[0]
    epochs = sorted({str(run.get("trainer.max_epochs")) for run in pack_runs})
    steps = sorted({f"{run.metrics['step']:,}" for run in pack_runs})
    points = sorted({f"{run.get('data.n_samples'):,}" for run in pack_runs})
    minutes = sorted(training_seconds(run) / 60 for run in pack_runs)
    ema = (first.config.get("callbacks") or {}).get("ema")
    averaged = f", and an exponential moving average of the weights (decay {ema['decay']}) scored beside them (the EMA rows)" if ema else ""
    collapsed = []
    for run in sorted(pack_runs, key=lambda run: (run.config["data"]["_target_"], run.get("model.pack"))):
        total = run.config["data"].get("modes", 25)  # the ring says how many; the grid has 5 × 5
        low = sum(value < total / 2 for value in run.values("val/modes_covered"))
        collapsed.append(f"{class_name(run.config['data'])}, pack {run.get('model.pack')}: {low} of {len(run.per_seed)}")
    return [
        "## Against the PacGAN paper (packing against mode collapse)",
        "`model.pack=m`: the discriminator judges m samples side by side. gan_ring's settings on "
        "the ring (ours has radius 2 and std 0.02: the paper's scaled by 2) and the grid; 2,500 samples from a "
        "fixed latent draw at the end; mean ± standard error over the seeds, as the paper reports (its Table 1 "
        "below ours: Lin et al., NeurIPS 2018). Rerun: `python -m src.train -m --config-dir "
        "experiments/07_deep_models/conf experiment=study_gan_pack`.",
        table(["data", "method", "modes covered", "high quality (%)", "reverse KL"], rows),
        "Seeds that collapsed onto fewer than half the modes: " + "; ".join(collapsed) + ".",
        f"Our runs: {' or '.join(steps)} steps of batch {first.get('optimizer.batch_size')} ({' or '.join(epochs)} "
        f"epochs of {' or '.join(points)} points; {len(first.members())} seeds trained together in "
        f"{minutes[0]:.0f}–{minutes[-1]:.0f} minutes here), Adam at {first.get('optimizer.lr')} (β1 {first.get('optimizer.betas')[0]}) decayed by a "
        f"cosine to 0, the R1 penalty (γ = {first.get('task.r1_gamma')}) on the discriminator, the generator's activation "
        f"{class_name(first.config['model'].get('generator_activation') or first.config['activation'])} beside the "
        f"discriminator's {class_name(first.config['activation'])}{averaged}. The paper's: 400 epochs of "
        "100,000 points in batches of 100 (some 400,000 steps) at 1e-4 (β1 0.8), a batch-norm generator and a maxout "
        "discriminator. A packed discriminator gets m times fewer verdicts per batch. The samples that miss lie on thin "
        "bridges between neighbouring modes (the pictures above): the generator maps one connected latent plane onto "
        "separate modes.",
    ]


def scored_weights(run) -> list[str]:
    """The metric prefixes a GAN run was scored under: its weights (``val/``) and, with the EMA callback, their average."""
    return [prefix for prefix in ("val/", "val/ema/") if f"{prefix}high_quality" in run.metrics]


def class_name(option: dict) -> str:
    """``torch.nn.ReLU`` of an option's ``_target_`` as ``ReLU``."""
    return option["_target_"].rsplit(".", 1)[-1]


def training_seconds(run) -> float:
    """The training time the run's log reports ("trained … in 910.106 s")."""
    return float(re.search(r"trained .* in ([0-9.]+) s", (run.path / "train.log").read_text()).group(1))


def row(run, metric: str, target: str, percent: bool = False) -> list:
    return [run.config["name"], metric, run.spread(metric, percent), target]


def main() -> None:
    loaded = load_runs(OUT / "runs")
    runs = {run.config["name"]: run for run in loaded if run.config["name"] != "gan_pack"}
    pack_runs = [run for run in loaded if run.config["name"] == "gan_pack"]
    seeds = sorted({len(run.members()) for run in loaded})
    sections = [
        f"The named experiments of the deep-model families, each rerun into this folder with {' or '.join(map(str, seeds))} seeds trained "
        "together (`trainer.seeds`); values are mean ± std (min–max) over the seeds, pictures show the seeds' "
        "ensemble (the CNN, the forecast) or the first seed (the GAN)."
    ]
    rows = []
    if "cnn_digits" in runs:
        run = runs["cnn_digits"]
        rows.append(row(run, "test/acc", "≥ 0.98"))
        stuck = run.stuck_at_chance("test/acc", 0.1)
        sections += [
            "## CNN on the digits (1×8×8)",
            curves(run, ["train/loss", "val/loss"], "cnn_loss"),
            f"Seeds stuck at chance (test accuracy ≤ 12%): {', '.join(stuck) or 'none'}.",
            "First-layer filters and the misclassified test digits (actual→predicted in the run's TensorBoard text):",
            over_training(run, "model/first_layer_filters", "cnn_filters", count=1),
            over_training(run, "test/misclassified", "cnn_misclassified", count=1),
        ]
    if "rnn_adding" in runs:
        run = runs["rnn_adding"]
        rows.append(row(run, "test/mse", "< 0.01 (predicting 1: 0.167)"))
        failed = [seed for seed, value in zip(run.per_seed, run.values("test/mse")) if value > 0.1]
        sections += [
            "## RNN on the adding problem (T = 50)",
            curves(run, ["train/mse", "val/mse"], "adding_mse", log=True),
            f"Seeds that did not learn the task (test MSE above 0.1, near the 0.167 of always answering 1): {', '.join(failed) or 'none'}.",
        ]
    if "rnn_sine" in runs:
        run = runs["rnn_sine"]
        rows.append(row(run, "test/mse", "—"))
        sections += [
            "## RNN forecasting a sine wave",
            "300 steps of the validation split forecast from the model's own outputs (blue) against the truth "
            "(red), over training:",
            over_training(run, "val/forecast", "sine_forecast", count=3),
        ]
    for data, targets in (("ring", ("8", "≥ 0.97", "≤ 0.05")), ("grid", ("≥ 24.8", "≥ 0.95", "≤ 0.04"))):
        run = next((run for run in pack_runs if run.config["data"]["_target_"].endswith(data) and run.get("model.pack") == 1), None)
        if run is None:
            continue
        for prefix in scored_weights(run):
            for metric, target in zip(("modes_covered", "high_quality", "reverse_kl"), targets):
                rows.append([f"GAN, {data}", prefix + metric, run.spread(prefix + metric), target])
        sections += [
            f"## GAN on the {data}",
            curves(run, [prefix + "high_quality" for prefix in scored_weights(run)], f"gan_{data}_quality") + "\n\n"
            + curves(run, [prefix + "reverse_kl" for prefix in scored_weights(run)], f"gan_{data}_reverse_kl", log=True),
            "Generated (blue) against real (red) points over training, first seed:",
            over_training(run, "samples/generated_vs_real", f"gan_{data}_samples"),
        ]
    if pack_runs:
        sections += packing_section(pack_runs)
    sections.insert(1, table(["experiment", "metric", "mean ± std (min–max)", "target"], rows))
    write_report(OUT, "CNN, RNN and GAN", "bash experiments/run_study.sh 07_deep_models", sections)


if __name__ == "__main__":
    main()

"""The learning-rate range test: ``python -m src.lr_find [overrides as for src.train]``.

A fresh model, as the overrides configure it, trains for ``lr_find.num_steps`` steps with its lr
growing exponentially from ``lr_find.min_lr`` to ``lr_find.max_lr`` (Smith, "Cyclical Learning
Rates", 2017) until the smoothed loss exceeds ``lr_find.stop_factor`` times its best. The
suggestion is the lr where the smoothed loss falls fastest against log(lr). The run folder
(``logs/lr_find/<run>``) holds ``lr_find.csv``, ``lr_find.png`` and TensorBoard events with the
same curve; no checkpoint, no trained model: the test leaves nothing a later run reads.
"""

from __future__ import annotations

import csv
import inspect
import math
from dataclasses import dataclass
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from src import cli
from src.build import build_training
from src.errors import ConfigError, UserError, check, number, positive_int, report_user_errors
from src.run_log import log
from src.training.device import numerics, precision_tools, resolve_device
from src.training.gradients import accumulated_sizes, backward_pass, optimizer_step
from src.train import make_run_folder
from src.training.seeds import member_seeds
from src.training.trainer import Trainer
from src.visuals import tensor_of


@dataclass
class RangeTest:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    diverged: bool = False

    def doubt(self, max_lr: float) -> str | None:
        """Why the suggestion should not be taken as it is, or None."""
        if self.suggestion is None:
            return "no suggestion: too few steps before the loss diverged; lower lr_find.min_lr or raise lr_find.num_steps"
        if not self.diverged and self.suggestion == self.lrs[-2]:  # the last lr scored: the loss was still falling fastest
            return (
                f"the smoothed loss still fell fastest at the last lr scored ({self.suggestion:.2g}) and never diverged: "
                f"a larger lr may train faster; raise lr_find.max_lr (now {max_lr:g}) to see where the loss stops falling"
            )
        return None


def trainer_setting(config: DictConfig, key: str) -> Any:
    """``trainer.<key>`` (else the Trainer's default), which the range test follows as training would (device,
    precision, numerics, gradient clipping and accumulation), checked by the trainer's own rule."""
    default = inspect.signature(Trainer).parameters[key].default
    return check(f"trainer.{key}", config.trainer.get(key, default), Trainer.RULES[key])


def range_test(config: DictConfig) -> RangeTest:
    settings = config.lr_find
    low = check("lr_find.min_lr", settings.min_lr, number(0, low_open=True))
    high = check("lr_find.max_lr", settings.max_lr, number(low, low_open=True))
    steps = check("lr_find.num_steps", settings.num_steps, positive_int)
    beta = check("lr_find.smoothing", settings.smoothing, number(0, 1, high_open=True))
    stop_factor = check("lr_find.stop_factor", settings.stop_factor, number(1, low_open=True))
    if len(member_seeds(config.trainer.seed, config.trainer.get("seeds", 1))) > 1:
        raise ConfigError("trainer.seeds", config.trainer.seeds, "the range test trains one model: leave it at 1")
    data, task, make_optimizer, batch_size = build_training(config)
    device = resolve_device(trainer_setting(config, "device"))
    autocast, scaler = precision_tools(str(trainer_setting(config, "precision")), device)
    clip = trainer_setting(config, "gradient_clip_val")
    accumulate = trainer_setting(config, "accumulate_grad_batches")
    batch_size, part_size = accumulated_sizes(batch_size, accumulate, data.size("train"))
    backward = backward_pass(task.training_step, task, autocast, scaler, part_size)
    task.to(device)
    data.to(device)
    optimizers = task.configure_optimizers(make_optimizer)
    if len(optimizers) != 1:
        raise UserError(f"lr_find: this task trains {len(optimizers)} optimizers in turn; the range test takes a task with one")
    optimizer = optimizers[0]
    growth = (high / low) ** (1 / max(1, steps - 1))
    result = RangeTest([], [], [], None)
    average, best, epoch = 0.0, math.inf, 0
    task.train()
    while len(result.lrs) < steps:
        for batch in data.batches("train", batch_size, config.trainer.seed * 1_000_003 + epoch):
            lr = low * growth ** len(result.lrs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss = backward(batch, 0)
            optimizer_step(optimizer, scaler, clip)
            value = float(loss)
            average = beta * average + (1 - beta) * value
            smoothed = average / (1 - beta ** (len(result.lrs) + 1))
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smoothed)
            result.diverged = not math.isfinite(smoothed) or smoothed > stop_factor * best
            if result.diverged or len(result.lrs) == steps:
                break
            best = min(best, smoothed)
        else:
            epoch += 1
            continue
        break
    result.suggestion = steepest_descent(result.lrs, result.smoothed)
    return result


def steepest_descent(lrs: list[float], smoothed: list[float]) -> float | None:
    """The lr where the smoothed loss falls fastest against log(lr), leaving out the first tenth of the
    points (the average is still settling) and the last one (where the test stopped)."""
    start, end = len(lrs) // 10, len(lrs) - 1
    if end - start < 3:
        return None
    losses = np.array(smoothed[:end])
    finite = np.isfinite(losses)
    slopes = np.gradient(np.where(finite, losses, np.nanmax(losses[finite]) if finite.any() else 0.0), np.log10(lrs[:end]))
    return float(lrs[start + int(np.argmin(slopes[start:]))])


def plot(test: RangeTest, width: int = 640, height: int = 400) -> Image.Image:
    """Smoothed loss against lr (log axis, a tick per decade), the suggestion as a red line."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, width - 20, 20, height - 40
    x = np.log10(test.lrs)
    y = np.array(test.smoothed)
    shown = np.isfinite(y)
    y_low = float(y[shown].min())
    y_high = min(float(y[shown].max()), float(y[shown][0]) + 2 * (float(y[shown][0]) - y_low) + 1e-12)  # keep the dive readable
    x_low, x_high = float(x[0]), float(x[-1]) if len(x) > 1 else float(x[0]) + 1

    def point(lx: float, ly: float) -> tuple[float, float]:
        ly = min(max(ly, y_low), y_high)
        return (left + (lx - x_low) / max(x_high - x_low, 1e-12) * (right - left),
                bottom - (ly - y_low) / max(y_high - y_low, 1e-12) * (bottom - top))

    draw.rectangle((left, top, right, bottom), outline="black")
    for decade in range(math.ceil(x_low), math.floor(x_high) + 1):
        px, _ = point(decade, y_low)
        draw.line((px, bottom, px, bottom + 5), fill="black")
        draw.text((px - 12, bottom + 8), f"1e{decade}", fill="black")
    for fraction in (0.0, 0.5, 1.0):
        value = y_low + fraction * (y_high - y_low)
        _, py = point(x_low, value)
        draw.text((4, py - 6), f"{value:.3g}", fill="black")
    draw.text(((left + right) // 2 - 30, height - 16), "learning rate", fill="black")
    draw.text((left + 4, top + 4), "smoothed training loss", fill="black")
    draw.line([point(lx, ly) for lx, ly in zip(x[shown], y[shown])], fill=(31, 119, 180), width=2)
    if test.suggestion is not None:
        px, _ = point(math.log10(test.suggestion), y_low)
        draw.line((px, top, px, bottom), fill=(214, 39, 40), width=1)
        draw.text((min(px + 4, right - 110), top + 20), f"suggested {test.suggestion:.2g}", fill=(214, 39, 40))
    return image


def lr_find(config: DictConfig) -> RangeTest:
    run_dir = make_run_folder(config)
    with numerics(*(trainer_setting(config, key) for key in ("detect_anomaly", "matmul_precision", "deterministic"))):
        test = range_test(config)
    with open(run_dir / "lr_find.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["step", "lr", "loss", "smoothed_loss"])
        writer.writerows(zip(range(len(test.lrs)), test.lrs, test.losses, test.smoothed))
    picture = plot(test)
    picture.save(run_dir / "lr_find.png")
    if config.get("logger"):
        from src.training.tensorboard_logger import TensorBoardLogger

        logger = TensorBoardLogger(run_dir)
        for step, (lr, loss, smoothed) in enumerate(zip(test.lrs, test.losses, test.smoothed)):
            logger.log_scalars({"lr_find/loss": loss, "lr_find/smoothed_loss": smoothed, "lr_find/lr": lr}, step)
        logger.log_visuals({"lr_find/loss_vs_lr": tensor_of(picture)}, 0)
        logger.close()
    return test


@hydra.main(version_base="1.3", config_path="../conf", config_name="lr_find")
def main(config: DictConfig) -> None:
    test = report_user_errors(lambda: lr_find(config))
    stopped = f", stopped at lr {test.lrs[-1]:.2g} (the loss diverged)" if test.diverged else ""
    log.info(f"{len(test.lrs)} steps from lr {test.lrs[0]:.2g}{stopped}; the curve: {config.paths.output_dir}/lr_find.png")
    if test.suggestion is not None:
        log.info(f"suggested lr: {test.suggestion:.2g} (steepest descent of the smoothed loss): optimizer.lr={test.suggestion:.2g}")
    if doubt := test.doubt(config.lr_find.max_lr):
        log.warning(doubt)


if __name__ == "__main__":
    cli.run(main, "lr_find")

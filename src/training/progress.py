"""Progress: steps done of the planned total, the rate, the time left and the latest monitored metrics."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

from src.run_log import FILE_ONLY, log
from src.training.callbacks import Callback

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class Progress(Callback):
    """A callback: a tqdm bar on a terminal (``bar``); and every ``every_seconds`` one plain line, on the
    console when there is no bar (CI, nohup, SLURM logs) and in train.log in any case."""

    def __init__(self, bar: bool, every_seconds: float | None) -> None:
        self.show_bar, self.every_seconds = bar, every_seconds
        self.bar: tqdm | None = None
        self.shown = ""

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.total = int(trainer.total_steps)
        self.first_step, self.started = trainer.state.step, time.monotonic()
        self.next_line = self.started + (self.every_seconds or math.inf)
        if self.show_bar:
            self.bar = tqdm(total=self.total, initial=trainer.state.step, unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_step_end(self, trainer: "Trainer") -> None:
        if self.bar is not None:
            self.bar.update()
        if time.monotonic() >= self.next_line:
            self.next_line += self.every_seconds
            self._line(trainer.state.step, trainer.state.epoch)

    def on_check(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        monitored = trainer.monitor.name
        names = [name for name in (monitored, "train/loss", "val/acc", "train/acc") if name in metrics]
        self.shown = " ".join(f"{name}={metrics[name]:.4g}" for name in dict.fromkeys(names))
        if self.bar is not None:
            self.bar.set_postfix_str(self.shown, refresh=False)

    def on_teardown(self, trainer: "Trainer") -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _line(self, step: int, epoch: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = (step - self.first_step) / elapsed if elapsed > 0 else 0.0
        left = tqdm.format_interval((self.total - step) / rate) if rate > 0 else "?"
        line = f"step {step}/{self.total} ({step / self.total:.0%}), epoch {epoch}, {rate:.3g} steps/s, {left} left {self.shown}"
        log.info(line.rstrip(), extra=FILE_ONLY if self.bar is not None else None)


def trained_line(epochs: int, steps: int, resumed_at: int, seconds: float) -> str:
    """The run's closing line; after a resume the time is this process's part only, and says so."""
    if not resumed_at:
        return f"trained {epochs} epochs, {steps} steps in {seconds:.3f} s"
    return f"trained {epochs} epochs, {steps} steps (resumed at step {resumed_at}: {steps - resumed_at} steps in {seconds:.3f} s)"

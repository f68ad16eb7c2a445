"""The loop's events, named once: what a callback may subscribe to.

The loop calls, in this order: ``on_fit_start``; per epoch ``on_epoch_start``, per batch
``on_step_end`` (after the optimizers stepped), ``on_epoch_end``; ``on_check`` whenever metrics
were computed; ``on_fit_end`` with the final metrics. A callback reads what it needs from the
trainer (``trainer.state``, ``trainer.task``, ``trainer.run_dir``, ...) and overrides only the
events it needs; the rest do nothing.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class Callback(Protocol):
    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_epoch_start(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer") -> None: ...

    def on_epoch_end(self, trainer: "Trainer") -> None: ...

    def on_check(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...


EVENTS = tuple(name for name in vars(Callback) if name.startswith("on_"))


def subscribers(callbacks: list[Callback], event: str) -> list:
    """The bound methods of the callbacks that override ``event``: the loop calls only those."""
    return [getattr(callback, event) for callback in callbacks if getattr(type(callback), event) is not getattr(Callback, event)]


class ProgressLine(Callback):
    """On a terminal: one line, rewritten at each check, with the epoch, step and latest metrics."""

    def __init__(self) -> None:
        self.width = 0  # of the previous line, so a shorter one leaves no stale characters

    def on_check(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(("train/loss", "train/acc", "val/")))
        line = f"epoch {trainer.state.epoch} step {trainer.state.step} {shown}"
        print(f"\r{line:<{self.width}}", end="", file=sys.stderr, flush=True)
        self.width = len(line)

    def on_fit_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        print(file=sys.stderr)

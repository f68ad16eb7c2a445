"""The loop's events, named once: what a callback may subscribe to.

The loop calls, in this order: ``on_fit_start``; per epoch ``on_epoch_start``, per batch
``on_step_end`` (after the optimizers stepped), ``on_epoch_end``; ``on_check`` whenever metrics
were computed; ``on_fit_end`` with the final metrics; ``on_teardown`` last, also when the run stopped
on an error or a signal. A callback reads what it needs from the
trainer (``trainer.state``, ``trainer.task``, ``trainer.run_dir``, ...) and overrides only the
events it needs; the rest do nothing. A callback with state of its own overrides ``state_dict()`` and
``load_state_dict(state)``: last.ckpt keeps it, and a resume restores it before ``on_fit_start``.
To add metrics to every check, a callback appends a function of the splits' names to
``trainer.evaluations`` (see ``averaging.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class Callback(Protocol):
    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_epoch_start(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer") -> None: ...

    def on_epoch_end(self, trainer: "Trainer") -> None: ...

    def on_check(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...

    def on_teardown(self, trainer: "Trainer") -> None: ...

    def state_dict(self) -> dict[str, Any] | None:
        """What last.ckpt keeps of this callback (None: nothing)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """On resume, before ``on_fit_start``: what ``state_dict`` returned."""


EVENTS = tuple(name for name in vars(Callback) if name.startswith("on_"))


def subscribers(callbacks: list[Callback], event: str) -> list:
    """The bound methods of the callbacks that override ``event``: the loop calls only those."""
    return [getattr(callback, event) for callback in callbacks if getattr(type(callback), event) is not getattr(Callback, event)]

"""A budget of training time, as a callback (``callbacks=[time_limit]``)."""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING, Any

from src.errors import check, positive_number
from src.run_log import log
from src.training import distributed
from src.training.callbacks import Callback

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class TimeLimit(Callback):
    """Ends training at the first check after ``minutes`` of it, as ``trainer.max_epochs`` ends it: the final
    check, the test split, the checkpoints and metrics.json follow. The time is the training loop's, summed
    over the processes of a run (last.ckpt keeps it, so a resumed run goes on spending the same budget).

    Checks are where every rank stands at the same step: under torchrun the run ends there when any rank's
    clock says so (one collective a check)."""

    def __init__(self, minutes: float) -> None:
        self.budget = 60 * check("callbacks.time_limit.minutes", minutes, positive_number)
        self.spent = 0.0  # seconds, in the run's earlier processes

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.started = monotonic()

    def on_check(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        within = self.seconds() < self.budget
        if distributed.least_over_ranks(int(within), trainer.device) == 0 and trainer.max_epochs > trainer.state.epoch:
            trainer.max_epochs = trainer.state.epoch
            if trainer.rank == 0:
                log.info(f"time limit: {self.budget / 60:g} minutes of training reached at step {trainer.state.step}; training ends here")

    def seconds(self) -> float:
        return self.spent + monotonic() - self.started

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent = state["seconds"]

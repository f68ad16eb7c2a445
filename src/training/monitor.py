"""The monitored metric: which check was best (for best.ckpt) and when to stop early."""

from __future__ import annotations

from typing import Any

from src.errors import ConfigError


class Monitor:
    def __init__(self, name: str, mode: str, min_delta: float, patience: int | None) -> None:
        self.name, self.sign, self.min_delta, self.patience = name, 1 if mode == "min" else -1, min_delta, patience

    def improved(self, state: Any, metrics: dict[str, float]) -> bool:
        """Whether this check beat the best so far by more than min_delta; updates the loop state's record."""
        if self.name not in metrics:
            raise ConfigError("trainer.monitor", self.name, f"not a logged metric; these are: {', '.join(metrics)}")
        score = metrics[self.name]
        if state.best_score is None or self.sign * (state.best_score - score) > self.min_delta:
            state.best_score, state.checks_without_improvement = score, 0
            return True
        state.checks_without_improvement += 1
        if self.stopped(state):
            print(f"early stopping: {self.name} has not improved for {self.patience} checks")
        return False

    def stopped(self, state: Any) -> bool:
        return self.patience is not None and state.checks_without_improvement >= self.patience

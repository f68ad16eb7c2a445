"""The monitored metric: which check was best (for best.ckpt) and when to stop early."""

from __future__ import annotations

from typing import Any

from src.errors import ConfigError
from src.run_log import log


class Monitor:
    def __init__(self, name: str, mode: str, min_delta: float, patience: int | None) -> None:
        self.name, self.mode, self.min_delta, self.patience = name, mode, min_delta, patience
        self.sign = 1 if mode == "min" else -1

    @classmethod
    def of(cls, setting: str, mode: str, task: Any, splits: list[str], min_delta: float, patience: int | None) -> "Monitor":
        """``trainer.monitor`` and ``mode``; ``auto``: the task's own metric on the last evaluated split (val when there is one)."""
        name = f"{splits[-1]}/{task.monitor}" if setting == "auto" else setting
        return cls(name, task.monitor_mode if mode == "auto" else mode, min_delta, patience)

    def improved(self, state: Any, members: list[dict[str, float]]) -> list[bool]:
        """For each member (one, unless several seeds train together): whether this check beat its best
        so far by more than min_delta. Updates the loop state's record; the patience runs out when no
        member improves."""
        if self.name not in members[0]:
            raise ConfigError("trainer.monitor", self.name, f"not a logged metric; these are: {', '.join(members[0])}")
        scores = [metrics[self.name] for metrics in members]
        best = state.best_score if isinstance(state.best_score, list) else [state.best_score] * len(scores)
        improved = [old is None or self.sign * (old - score) > self.min_delta for old, score in zip(best, scores)]
        best = [score if up else old for score, old, up in zip(scores, best, improved)]
        state.best_score = best if len(best) > 1 else best[0]
        if any(improved):
            state.checks_without_improvement = 0
            return improved
        state.checks_without_improvement += 1
        if self.stopped(state):
            members_note = "" if len(members) == 1 else " by any member"
            log.info(f"early stopping: {self.name} has not improved{members_note} for {self.patience} checks")
        return improved

    def stopped(self, state: Any) -> bool:
        return self.patience is not None and state.checks_without_improvement >= self.patience

"""What the loop asks of a logger: implement these and pass it (or a list of them) to the trainer."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn

from src.visuals import Visual


class Logger(Protocol):
    #: At the start (step 0), at every this many checks, and at the end: ``log_histograms`` and
    #: ``log_visuals``. None: at the start and the end only; 0: never.
    histogram_every_n_checks: int | None
    figures_every_n_checks: int | None

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        """``train/loss``-style names and their values at an optimization step."""

    def log_histograms(self, model: nn.Module, step: int) -> None:
        """The model's weights and gradients."""

    def log_visuals(self, visuals: dict[str, Visual], step: int) -> None:
        """The task's pictures (CHW tensors: float in [0, 1], or uint8) and texts (markdown), by tag."""

    def log_graph(self, model: nn.Module, example: Tensor) -> None:
        """The model's graph, traced with ``example`` (once, at the end)."""

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's resolved config and its final metrics (once, at the end)."""

    def member(self, name: str) -> "Logger":
        """A logger of the same kind for one member's scalars (``seed_7``), beside this one's, when
        several seeds train together: its curves overlay the others'; this logger gets their mean."""

    def close(self) -> None:
        """Flush and release files."""

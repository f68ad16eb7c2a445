"""The contract between a task (what one batch means) and the generic training loop.

The loop owns iteration, devices, precision, clipping, schedules, logging and checkpoints. A task
owns the model(s) and says, for one batch, what each optimizer minimizes, and which metrics
describe a split. Tasks never loop over data themselves.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
Visual = Tensor | str  # a CHW image in [0, 1], or a markdown text


class Task(nn.Module):
    """Base class: one model, one optimizer, one loss."""

    #: Which optimizer steps, in order, on each batch: a GAN says (0, 1) or (0, 0, 1).
    optimizer_order: tuple[int, ...] = (0,)
    #: The name of each optimizer's loss in the logs (``train/<name>``).
    loss_names: tuple[str, ...] = ("loss",)
    #: The metric to monitor by default for best checkpoints and early stopping.
    monitor: str = "loss"
    monitor_mode: str = "min"
    #: The splits whose metrics each check computes (those the data has; the training split if none).
    evaluated_splits: tuple[str, ...] = ("train", "val")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def configure_optimizers(self, make_optimizer: OptimizerFactory) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.model.parameters())]

    def training_step(self, batch: Batch, optimizer_index: int) -> Tensor:
        """The loss that optimizer ``optimizer_index`` minimizes on this batch."""
        raise NotImplementedError

    def forward(self, batch: Batch, optimizer_index: int) -> Tensor:
        """training_step, as a forward pass: what DistributedDataParallel wraps to sync gradients."""
        return self.training_step(batch, optimizer_index)

    def evaluation_step(self, batch: Batch) -> dict[str, Tensor]:
        """Batch means of the metrics (``loss``, ``acc``, ...), as 0-d tensors; no gradients."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, batches: Iterator[Batch]) -> dict[str, Tensor]:
        """Metrics over a whole split: batch means weighted by batch size, synced once by the caller."""
        totals: dict[str, Tensor] = {}
        count = 0
        for batch in batches:
            n = len(batch[1])
            for name, value in self.evaluation_step(batch).items():
                totals[name] = totals.get(name, 0) + value.detach().float() * n
            count += n
        return {name: total / count for name, total in totals.items()}

    @torch.no_grad()
    def visualize(self, splits: dict[str, Batch]) -> dict[str, Visual]:
        """Figures for TensorBoard at the end of training (and every so often)."""
        return {}

    def example_input(self, batch: Batch) -> Tensor:
        """What the model graph is traced with."""
        return batch[0][:1]

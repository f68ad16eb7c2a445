"""One optimizer's gradients from one batch: under the precision's autocast, scaled, and in parts when
gradients are accumulated."""

from __future__ import annotations

from typing import Callable, ContextManager

import torch
from torch import Tensor

from src.data.datamodule import Batch
from src.tasks.task import Task


class Backward:
    def __init__(
        self, step_loss: Callable[[Batch, int], Tensor], task: Task, autocast: ContextManager, scaler: torch.amp.GradScaler, part_size: int | None
    ) -> None:
        """``step_loss(batch, optimizer_index)``: the task's training step (or it wrapped for several ranks);
        ``part_size``: the rows of a part when a batch goes through in parts, None for one pass."""
        self.step_loss, self.task, self.autocast, self.scaler, self.part_size = step_loss, task, autocast, scaler, part_size
        self.stacked = task.members > 1

    def __call__(self, batch: Batch, index: int) -> Tensor:
        """Backpropagate the batch's loss; return it, detached (one per member when stacked)."""
        return self._one_pass(batch, index) if self.part_size is None else self._in_parts(batch, index)

    def _one_pass(self, batch: Batch, index: int, share: float | None = None) -> Tensor:
        """The gradients of the batch's loss (times ``share``)."""
        with self.autocast:
            loss = self.step_loss(batch, index)
            if share is not None:
                loss = loss * share
        # 32 bits: the scaler is disabled and passes everything through. Members are independent:
        # the gradient of their losses' sum is, for each member, the gradient of its own loss.
        self.scaler.scale(loss.sum() if self.stacked else loss).backward()
        return loss.detach()

    def _in_parts(self, batch: Batch, index: int) -> Tensor:
        """The same, summed over parts of ``part_size`` rows, each loss weighted by its share of the rows:
        the gradients of a batch mean, without holding the whole batch's activations at once."""
        rows = 1 if self.stacked else 0  # the axis of the rows: stacked batches are [members, rows, ...]
        total = self.task.rows(batch)
        loss = 0.0
        for part in zip(*(tensor.split(self.part_size, rows) for tensor in batch)):
            loss = loss + self._one_pass(part, index, self.task.rows(part) / total)
        return loss

"""One optimizer's gradients from one batch: under the precision's autocast, scaled, and in parts when
gradients are accumulated; and the step they make."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from src.data.datamodule import Batch
from src.tasks.task import Task
from src.training.distributed import least_over_ranks

Backward = Callable[[Batch, int], Tensor]
ClipGradNorm = Callable[[list[Tensor], float], object]


def accumulated_sizes(batch_size: int | None, accumulate: int, train_rows: int) -> tuple[int | None, int | None]:
    """The rows of an accumulated step's batch (None: the whole split) and of each part it goes through in
    (None: one pass): a step of ``accumulate`` batches is one batch ``accumulate`` times as large, in parts."""
    if accumulate == 1:
        return batch_size, None
    return (batch_size * accumulate, batch_size) if batch_size else (None, -(-train_rows // accumulate))


def backward_pass(
    step_loss: Callable[[Batch, int], Tensor], task: Task, autocast: ContextManager, scaler: torch.amp.GradScaler, part_size: int | None
) -> Backward:
    """``backward(batch, optimizer_index, weight)`` backpropagates the batch's loss (times ``weight``, when
    given) and returns it so weighted, detached (one per member when stacked). ``step_loss``: the task's
    training step (or it wrapped for several ranks); ``part_size``: the rows of a part when a batch goes
    through in parts, None for one pass. Closures rather than methods: this runs every step, and a
    1-step epoch of the default whole-batch descent lasts 0.1-0.4 ms."""
    stacked = task.members > 1
    ranks = step_loss if isinstance(step_loss, DistributedDataParallel) else None
    # The last pass's loss, whose spent graph (backward freed its tensors) lives until the next pass has
    # built its own, as a hand-written loop's `loss` does: freed sooner, autograd rebuilds each parameter's
    # gradient accumulator every step (~14,000 instructions a step of the planar MLP; bench/instructions.py).
    spent: list[Tensor] = []

    def one_pass(batch: Batch, index: int, weight: float | None = None) -> Tensor:
        with autocast:
            loss = step_loss(batch, index)
            if weight is not None:
                loss = loss * weight
        # 32 bits: the scaler is disabled and passes everything through. Members are independent:
        # the gradient of their losses' sum is, for each member, the gradient of its own loss.
        scaler.scale(loss.sum() if stacked else loss).backward()
        spent[:] = [loss]
        return loss.detach()

    def in_parts(batch: Batch, index: int, weight: float | None = None) -> Tensor:
        """The same, summed over parts of about ``part_size`` rows, each loss weighted by its share of the rows:
        the gradients of a batch mean, without holding the whole batch's activations at once.

        Under DistributedDataParallel every rank goes through as many parts (the fewest any rank needs: each
        part's forward may hold collectives, synced batch norms') and the gradients are averaged once, after
        the last part; a rank's share of a step may hold a row more than another's, and so need a part more."""
        rows = 1 if stacked else 0  # the axis of the rows: stacked batches are [members, rows, ...]
        total = task.rows(batch)
        count = least_over_ranks(-(-total // part_size), batch[0].device)
        loss, parts = 0.0, list(zip(*(tensor.tensor_split(count, rows) for tensor in batch)))
        for number, part in enumerate(parts, 1):
            with ranks.no_sync() if ranks is not None and number < len(parts) else contextlib.nullcontext():
                loss = loss + one_pass(part, index, task.rows(part) / total * (1.0 if weight is None else weight))
        return loss

    return one_pass if part_size is None else in_parts


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    clip: float | None,
    clip_grad_norm: ClipGradNorm = torch.nn.utils.clip_grad_norm_,
) -> None:
    """Step on the gradients backward left: clipped to norm ``clip`` (when given) once unscaled, skipped by the
    scaler when they hold an inf or NaN under 16-bit precision, whose loss scale it then updates."""
    if clip is not None:
        scaler.unscale_(optimizer)
        clip_grad_norm([p for group in optimizer.param_groups for p in group["params"]], clip)
    scaler.step(optimizer)
    scaler.update()

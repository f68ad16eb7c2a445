"""Several processes, one model: ``torchrun --nproc_per_node=N -m src.train ...``.

Each rank computes the loss on its shard of every global batch; DistributedDataParallel averages
the gradients, so N processes take the same steps as one process with the same global batch.
Only rank 0 writes (logs, checkpoints, metrics.json).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from src.errors import ConfigError
from src.models.rank_dropout import separate_dropout_masks
from src.models.synced_batch_norm import synchronize_batch_norms


def world() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them; (0, 1) for a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    return world()[0] == 0


def tell_torchrun(line: str) -> None:
    """A worker's one-line error, also in the file torchrun reads when a worker fails (``TORCHELASTIC_ERROR_FILE``):
    its failure summary then shows the line instead of a link to its documentation."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with contextlib.suppress(OSError):
            Path(path).write_text(json.dumps({"message": line, "timestamp": int(time.time())}))


def setup(device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); each rank on its own GPU."""
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def step_loss(task: torch.nn.Module, world_size: int, sync_batchnorm: bool) -> Callable:
    """What computes a step's loss: the task's training_step, or, over several ranks, the task wrapped to
    average the gradients (its forward is training_step), its batch norms normalizing over every rank's
    rows with ``sync_batchnorm`` (else over each rank's own), its dropouts drawing each rank's own masks."""
    if world_size == 1:
        return task.training_step
    separate_dropout_masks(task)
    if sync_batchnorm:
        synchronize_batch_norms(task)
    return DistributedDataParallel(task, find_unused_parameters=len(set(task.optimizer_order)) > 1)


def shard_weights(rows: int, batch_size: int | None, rank: int, world: int) -> tuple[float, float] | None:
    """What this rank's mean loss is multiplied by, in a full batch and in an epoch's last batch, so that
    DistributedDataParallel's average over ranks is the global batch's mean where the ranks hold unequal
    shares of it: the rank's share of the batch's rows times the world size (0 for a rank with no row
    of a short last batch). None where every rank holds as many rows of every batch as the others."""
    full = min(batch_size or rows, rows)
    if full < world:
        raise ConfigError("optimizer.batch_size", batch_size, f"is below the number of processes ({world}): each needs rows of every batch")
    last = rows % full or full

    def weight(batch_rows: int) -> float:
        return len(range(rank, batch_rows, world)) * world / batch_rows

    return None if full % world == 0 and last % world == 0 else (weight(full), weight(last))


def least_over_ranks(value: int, device: torch.device) -> int:
    """The least of the ranks' ``value`` under torchrun (a collective, on ``device`` as the backend wants);
    ``value`` itself in one process."""
    return _over_ranks(value, device, dist.ReduceOp.MIN)


def _over_ranks(value: int, device: torch.device, op: dist.ReduceOp) -> int:
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return value
    reduced = torch.tensor(value, device=device)
    dist.all_reduce(reduced, op=op)
    return int(reduced)


def rows_of_one_draw(draw: Callable[[int], torch.Tensor], rows: int, device: torch.device, axis: int = 0) -> torch.Tensor:
    """``draw(rows)``: random values for this rank's ``rows`` of a batch (along ``axis``). Every rank's random
    generators hold the same state (seeded alike, restored alike on resume), so ranks drawing for themselves
    draw the same values. Under torchrun each rank draws for the whole global batch (the ranks' rows summed,
    a collective) and keeps its own rows, every world-th as its shard of the data: one process's draws."""
    total = _over_ranks(rows, device, dist.ReduceOp.SUM)
    if total == rows:
        return draw(rows)
    drawn = draw(total)
    return drawn.index_select(axis, torch.arange(dist.get_rank(), total, dist.get_world_size(), device=drawn.device))


def all_finite(loss: torch.Tensor) -> bool:
    """Whether a step's loss is finite, on every rank under torchrun (a device sync, and then a collective):
    the gradients were averaged, so a step that one rank skips must be skipped by all."""
    return bool(least_over_ranks(int(torch.isfinite(loss).all()), loss.device))


def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor / dist.get_world_size()


def teardown() -> None:
    """Leave the process group. A gloo group left for the interpreter's exit to tear down can abort the
    process ("terminate called without an active exception", SIGABRT) while its threads still run: drop
    what holds it (the DDP wrapper) first, or the group lives on after this until the exit. A DDP wrapper
    that has run a step sits in a reference cycle, which only the cyclic garbage collector frees: collect
    it now, not at some later allocation or at the exit."""
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()

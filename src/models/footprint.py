"""Whether a model's training fits in the CPU's memory, asked before it takes the memory.

Linux grants an allocation larger than the memory that is free and kills the process once the pages are
used: no message, no traceback, and a 24 GB machine asked for 10⁹ hidden units ends in ``Killed``. So the
model is first built on the meta device (shapes only: no memory, no random draws) and its tensors counted;
then what a training step's forward keeps for the backward pass is measured per row, on a few rows, and
scaled to the step's rows (the whole split, with the default whole-batch gradient descent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, ContextManager

import torch
from torch import Tensor, nn

from src.errors import UserError


def refuse_what_cannot_fit(make: Callable[[], nn.Module], members: int, gradients: bool) -> None:
    """One line when ``members`` models as ``make`` builds them (their weights and buffers, and with ``gradients``
    a gradient for each trainable weight) take more than this process's share of the memory. What a step's forward
    keeps is ``refuse_a_step_that_cannot_fit``'s to judge, and the optimizer's state comes on top: this stops
    only what cannot fit at all."""
    if (share := _memory_share()) is None:
        return
    try:
        with torch.device("meta"):
            model = make()
    except Exception:  # a model the meta device cannot build (it reads values) is judged by its real build
        return
    parameters = list(model.parameters())
    needed = (_bytes([*parameters, *model.buffers()]) + (_gradient_bytes(model) if gradients else 0)) * members
    if needed > share:
        count = sum(parameter.numel() for parameter in parameters) * members
        what = f"{count:,} parameters" + (f" ({members} seeds, trainer.seeds)" if members > 1 else "")
        held = "weights and gradients" if gradients else "weights"
        raise UserError(
            f"model: its {what} need {_in_words(needed)} for their {held} alone, and {_in_words(share)} of memory is "
            "available to this process: make the model smaller"
        )


def refuse_a_step_that_cannot_fit(
    model: nn.Module, two_rows: Tensor, four_rows: Tensor, autocast: ContextManager, rows: int, processes: int, batch_size: int | None
) -> None:
    """One line naming ``optimizer.batch_size`` when what ``model``'s forward keeps for the backward pass for the
    ``rows`` of a forward pass of a training step (this process's share of the batch, or of a part of it), with
    the gradients still to come, takes more than the memory available. A row's share is what the forward on
    ``four_rows`` keeps beyond the forward on ``two_rows`` (both in ``autocast``, as training runs): what does not
    grow with the rows (weights cast to bfloat16, say) cancels out."""
    if (share := _memory_share()) is None:
        return
    gradients = _gradient_bytes(model)
    try:
        with autocast:
            per_row = (saved_bytes(model, four_rows) - saved_bytes(model, two_rows)) / 2
    except Exception:  # a model that does not take these inputs is told so by the trainer's try-out
        return
    if per_row * rows + gradients <= share:
        return
    fits = int((share - gradients) / per_row) * processes if share > gradients else 0
    smaller_batch = (
        f"set optimizer.batch_size to {2 ** (fits.bit_length() - 1):,} or less (trainer.accumulate_grad_batches=N then makes a step of N "
        "batches), or " if fits else ""
    )
    setting = "null (the whole split, " if batch_size is None else f"{batch_size} ("
    raise UserError(
        f"optimizer.batch_size={setting}{rows:,} rows a forward pass): a training step needs ~{_in_words(int(per_row * rows) + gradients)} "
        f"for what its forward keeps for the backward pass and for the gradients, and {_in_words(share)} of memory is available: "
        f"{smaller_batch}make the model smaller"
    )


def saved_bytes(model: nn.Module, inputs: Tensor) -> int:
    """Bytes of the tensors ``model``'s forward on ``inputs`` keeps for the backward pass, each storage once, its
    weights and the inputs aside. The model runs in eval mode (no random draws, no statistics updated), in
    which a batch norm keeps what it keeps in training."""
    counted = {tensor.untyped_storage().data_ptr() for tensor in [inputs, *model.parameters(), *model.buffers()]}
    total = 0

    def keep(tensor: Tensor) -> Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in counted:
            counted.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            model(inputs)
    finally:
        model.train(training)
    return total


def _memory_share() -> int | None:
    """This process's share of the memory available: the CPU's, shared with the other processes torchrun started here."""
    available = available_memory()
    return None if available is None else available // int(os.environ.get("LOCAL_WORLD_SIZE", 1))


def available_memory() -> int | None:
    """Bytes of memory the kernel can hand out (Linux's MemAvailable) and of free swap, or less where a container's
    memory limit leaves less: what is refused cannot fit. None where /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        available = sum(int(fields[name].split()[0]) * 1024 for name in ("MemAvailable", "SwapFree"))
    except (OSError, ValueError, IndexError, KeyError):
        return None
    room = _room_in_container()
    return available if room is None else min(available, room)


#: A container's own memory cgroup, as its namespace shows it (cgroup v2, then v1): the limit, the usage, and the
#: memory.stat line of the page cache, which the kernel takes back before it kills.
CGROUPS = (
    (Path("/sys/fs/cgroup"), "memory.max", "memory.current", "file"),
    (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache"),
)


def _room_in_container() -> int | None:
    """What the memory limit of the process's cgroup still lets it take, its page cache counted as free; None
    without a limit (v2's ``max``, v1's near-2⁶³)."""
    for folder, limit_file, usage_file, cache in CGROUPS:
        try:
            limit = (folder / limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**60:
                return None
            stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
            return int(limit) - int((folder / usage_file).read_text()) + int(stat.get(cache, 0))
        except (OSError, ValueError):
            continue
    return None


def _bytes(tensors: list[Tensor]) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def _gradient_bytes(model: nn.Module) -> int:
    return _bytes([parameter for parameter in model.parameters() if parameter.requires_grad])


def _in_words(size: int) -> str:
    for unit, name in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if size >= unit:
            return f"{size / unit:.1f} {name}"
    return f"{size / 1e3:.1f} kB"

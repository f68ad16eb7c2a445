"""Whether a model's training fits in the CPU's memory, asked before its weights take any.

Linux grants an allocation larger than the memory that is free and kills the process once the pages are
used: no message, no traceback, and a 24 GB machine asked for 10⁹ hidden units ends in ``Killed``. So the
model is first built on the meta device (shapes only: no memory, no random draws) and its tensors counted.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from src.errors import UserError

def refuse_what_cannot_fit(make: Callable[[], nn.Module], members: int, gradients: bool) -> None:
    """One line when ``members`` models as ``make`` builds them (their weights and buffers, and with ``gradients``
    a gradient for each trainable weight) take more than the memory available to this process: the CPU's, shared
    with the other processes torchrun started here. Activations and the optimizer's state come on top; the
    check only catches what cannot fit at all."""
    if (available := available_memory()) is None:
        return
    try:
        with torch.device("meta"):
            model = make()
    except Exception:  # a model the meta device cannot build (it reads values) is judged by its real build
        return
    parameters = list(model.parameters())
    size = sum(tensor.numel() * tensor.element_size() for tensor in [*parameters, *model.buffers()])
    if gradients:
        size += sum(parameter.numel() * parameter.element_size() for parameter in parameters if parameter.requires_grad)
    needed = size * members
    share = available // int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if needed > share:
        count = sum(parameter.numel() for parameter in parameters) * members
        what = f"{count:,} parameters" + (f" ({members} seeds, trainer.seeds)" if members > 1 else "")
        held = "weights and gradients" if gradients else "weights"
        raise UserError(
            f"model: its {what} need {_in_words(needed)} for their {held} alone, and {_in_words(share)} of memory is "
            "available to this process: make the model smaller"
        )


def available_memory() -> int | None:
    """Bytes of memory the kernel can hand out without swapping (Linux's MemAvailable); None elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _in_words(size: int) -> str:
    for unit, name in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if size >= unit:
            return f"{size / unit:.1f} {name}"
    return f"{size / 1e3:.1f} kB"

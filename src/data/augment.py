"""Augmentation of training pictures, per batch on the device: the loop stays index-batched.

Each batch's random draws come from a generator seeded by the epoch's order seed and the batch's
position, so a resumed epoch draws what the uninterrupted one drew, and member ``s`` of stacked
seeds draws what a run of ``trainer.seed=s`` alone draws.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from src.errors import boolean, check_arguments, count


class FlipCrop:
    """Random horizontal flips (half the pictures) and random crops of a copy padded with ``pad`` zeros
    (after standardization, the mean) on each side: the usual CIFAR recipe."""

    def __init__(self, flip: bool = True, pad: int = 4) -> None:
        check_arguments("augment", locals(), {"flip": boolean, "pad": count(0, 64)})
        self.flip, self.pad = flip, pad

    def __call__(self, x: Tensor, generator: torch.Generator, batch_rows: int | None = None, rows: Tensor | None = None) -> Tensor:
        """``x``: the rows at positions ``rows`` of a batch of ``batch_rows`` (under torchrun, this rank's
        shard of the global batch; all of it by default), each drawn for as that row is in one process."""
        n, _, height, width = x.shape
        drawn = n if batch_rows is None else batch_rows

        def draw(sample, *size):  # the whole batch's draws, then those of the rows in x
            values = sample(*size, device=x.device, generator=generator)
            return values if rows is None else values[rows]

        if self.flip:
            flipped = draw(torch.rand, drawn) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        if self.pad:
            p = self.pad
            padded = F.pad(x, (p, p, p, p))
            top = draw(torch.randint, 0, 2 * p + 1, (drawn, 1))
            left = draw(torch.randint, 0, 2 * p + 1, (drawn, 1))
            rows = top + torch.arange(height, device=x.device)  # n × height
            cols = left + torch.arange(width, device=x.device)  # n × width
            picked = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
            x = picked.permute(0, 3, 1, 2)  # advanced indexing put the channels last
        return x


def batch_generator(device: torch.device, order_seed: int, start: int) -> torch.Generator:
    """The random draws of the batch at row ``start`` of the epoch whose order ``order_seed`` gives."""
    return torch.Generator(device=device).manual_seed((order_seed * 1_000_003 + start) % 2**63)

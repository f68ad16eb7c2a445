"""Dropout under torchrun with a mask of each rank's own.

Every rank's random generators hold the same state (seeded alike, restored alike on resume: one process's GAN
noise and exact resumes rest on it), so torch's dropout drew the same mask for rank 0's i-th row and rank 1's:
the same noise on a row of every shard. Here each forward takes one number from the shared generator (every
rank the same number, so the state stays shared and a resume replays it) and draws this rank's mask from a
generator seeded by that number and the rank. The masks are independent, as one process's are, but not its
values: that process draws the whole batch's mask at once.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


class RankDropout(nn.Dropout):
    """``nn.Dropout`` (zeroes with probability p, scales the rest by 1/(1-p)) drawing each rank's own mask."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        seed = int(torch.randint(2**62, (1,))) + dist.get_rank()
        mask = torch.empty_like(x).bernoulli_(1 - self.p, generator=torch.Generator(device=x.device).manual_seed(seed))
        return x * mask.div_(1 - self.p)  # as F.dropout computes it


def separate_dropout_masks(module: nn.Module) -> None:
    """In place: each ``nn.Dropout`` in ``module`` (0 < p < 1) becomes a RankDropout (stacked members run one after
    another share their template's children, so theirs too). A recurrent layer's own dropout between its layers
    (inside torch's RNN, LSTM or GRU) is not a module and stays as it is."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout and 0 < child.p < 1:
            setattr(module, name, RankDropout(child.p).train(child.training))
        else:
            separate_dropout_masks(child)

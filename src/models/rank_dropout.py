"""Dropout under torchrun with a mask of each rank's own.

Every rank's random generators hold the same state (seeded alike, restored alike on resume: one process's GAN
noise and exact resumes rest on it), so torch's dropout drew the same mask for rank 0's i-th row and rank 1's:
the same noise on a row of every shard. Here each forward takes one number from the shared generator (every
rank the same number, so the state stays shared and a resume replays it) and draws this rank's mask from a
generator seeded by that number and the rank. The masks are independent, as one process's are, but not its
values: that process draws the whole batch's mask at once. A recurrent layer's dropout between its layers is drawn
inside torch's RNN, LSTM or GRU from the device's default generator: around such a layer's forward that generator
is seeded the same way and then put back.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


def _rank_seed() -> int:
    """One draw from the shared generator (the same on every rank), made this rank's own."""
    return int(torch.randint(2**62, (1,))) + dist.get_rank()


class RankDropout(nn.Dropout):
    """``nn.Dropout`` (zeroes with probability p, scales the rest by 1/(1-p)) drawing each rank's own mask."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        mask = torch.empty_like(x).bernoulli_(1 - self.p, generator=torch.Generator(device=x.device).manual_seed(_rank_seed()))
        return x * mask.div_(1 - self.p)  # as F.dropout computes it


class RankRecurrentDropout:
    """Forward hooks around a recurrent layer with dropout between its layers: in training mode its forward runs with
    the default generators (the CPU's, and the input's CUDA device's) seeded by ``_rank_seed()``, and put back
    afterwards. (On CUDA, seeding also makes cuDNN start its dropout state anew, from a draw of one of them.)"""

    def __init__(self, rnn: nn.RNNBase) -> None:
        self.saved: list[list[tuple[torch.Generator, Tensor]]] = []
        rnn.register_forward_pre_hook(self.before)
        rnn.register_forward_hook(self.after, always_call=True)  # also when the forward raises

    def before(self, rnn: nn.RNNBase, args: tuple) -> None:
        if not rnn.training:
            self.saved.append([])
            return
        device = (args[0].data if isinstance(args[0], PackedSequence) else args[0]).device
        generators = [torch.default_generator] + ([torch.cuda.default_generators[device.index]] if device.type == "cuda" else [])
        seed = _rank_seed()  # drawn before the states are kept: the shared stream moves on by this one draw
        self.saved.append([(generator, generator.get_state()) for generator in generators])
        for generator in generators:
            generator.manual_seed(seed)

    def after(self, rnn: nn.RNNBase, args: tuple, output: object) -> None:
        for generator, state in self.saved.pop():
            generator.set_state(state)


def separate_dropout_masks(module: nn.Module) -> None:
    """In place: each ``nn.Dropout`` in ``module`` (0 < p < 1) becomes a RankDropout (stacked members run one after
    another share their template's children, so theirs too), and each recurrent layer with dropout between its
    layers gets RankRecurrentDropout's hooks."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout and 0 < child.p < 1:
            setattr(module, name, RankDropout(child.p).train(child.training))
        else:
            separate_dropout_masks(child)
    if isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers > 1:
        RankRecurrentDropout(module)

"""Learning-rate schedules, stepped once per epoch."""

from __future__ import annotations

import functools
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler


class InverseTimeDecay:
    """lr = lr0 / (1 + decay · epoch). A class, not a lambda, so its state goes into checkpoints."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, epoch: int) -> float:
        return 1.0 / (1.0 + self.decay * epoch)


def inverse_time_decay(optimizer: Optimizer, decay: float) -> LambdaLR:
    return LambdaLR(optimizer, InverseTimeDecay(decay))


def build_scheduler(
    factory: Callable[..., LRScheduler], optimizer: Optimizer, planned_epochs: int
) -> LRScheduler:
    """Cosine's ``T_max: null`` means the run's planned number of epochs."""
    if isinstance(factory, functools.partial) and factory.keywords.get("T_max", 0) is None:
        return factory(optimizer, T_max=planned_epochs)
    return factory(optimizer)

"""Learning-rate schedules: stepped every epoch (torch's default), every optimization step
(``interval: step``; warmup + cosine and OneCycle always), or at every check on the monitored metric
(ReduceLROnPlateau)."""

from __future__ import annotations

import functools
import math
from typing import Callable

from torch.optim import Optimizer

from src.errors import ConfigError, UserError, built_as, check, check_arguments, in_one_line, non_negative_int, null, number, positive_int
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

INTERVALS = ("epoch", "step")


class InverseTimeDecay:
    """lr = lr0 / (1 + decay · epoch). A class, not a lambda, so its state goes into checkpoints."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, epoch: int) -> float:
        return 1.0 / (1.0 + self.decay * epoch)


def inverse_time_decay(optimizer: Optimizer, decay: float) -> LambdaLR:
    return LambdaLR(optimizer, InverseTimeDecay(check("scheduler.decay", decay, number(0))))


class WarmupCosine:
    """The lr's factor at a step: linear from 1/warmup_steps up to 1 over ``warmup_steps``, then half a
    cosine down to ``min_lr_ratio`` at ``total_steps``, and flat after."""

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> None:
        self.warmup_steps, self.total_steps, self.min_lr_ratio = warmup_steps, total_steps, min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> LambdaLR:
    check_arguments(
        "scheduler", locals(), {"warmup_steps": non_negative_int, "total_steps": positive_int | null, "min_lr_ratio": number(0, 1)}
    )
    scheduler = LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_lr_ratio))
    scheduler.interval = "step"
    return scheduler


def build_scheduler(
    factory: Callable[..., LRScheduler], optimizer: Optimizer, planned_epochs: int, planned_steps: int, mode: str = "min"
) -> LRScheduler | ReduceLROnPlateau:
    """The scheduler, with what its config leaves to the run filled in: ``T_max: null`` (cosine) spans the
    planned epochs (steps with ``interval: step``), ``total_steps: null`` the planned steps, and a plateau's
    ``mode`` is the monitored metric's. ``scheduler.interval`` says when the loop steps it: ``epoch``,
    ``step`` or ``check``."""
    keywords = dict(factory.keywords) if isinstance(factory, functools.partial) else {}
    interval = keywords.pop("interval", "epoch")
    if keywords.get("T_max", 0) is None:
        keywords["T_max"] = planned_steps if interval == "step" else planned_epochs
    if keywords.get("total_steps", 0) is None:
        keywords["total_steps"] = planned_steps
    if isinstance(factory, functools.partial) and factory.func is OneCycleLR:
        _check_one_cycle_phases(keywords)
    try:
        if isinstance(factory, functools.partial):
            if isinstance(factory.func, type) and issubclass(factory.func, ReduceLROnPlateau):
                keywords.setdefault("mode", mode)
            scheduler = factory.func(optimizer, *factory.args, **keywords)
        else:
            scheduler = factory(optimizer)
    except (TypeError, ValueError, KeyError) as error:  # e.g. OneCycle's cycle_momentum with an optimizer without momentum
        raise UserError(f"scheduler: {in_one_line(error)}") from None
    built_as("scheduler._target_", scheduler, LRScheduler)  # a function target is judged by what it returns
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.interval = "check"
    elif isinstance(scheduler, OneCycleLR):
        scheduler.interval = "step"
    elif not hasattr(scheduler, "interval"):
        scheduler.interval = interval
    return scheduler


def _check_one_cycle_phases(keywords: dict) -> None:
    """torch's OneCycleLR divides by the length of each of its phases, in steps from ``pct_start × total_steps``:
    a phase of no length fails with a ZeroDivisionError, at the start of the run or at its end."""
    total, pct = keywords.get("total_steps"), keywords.get("pct_start", 0.3)
    if not isinstance(total, int) or not isinstance(pct, float):
        return  # torch's own checks refuse these in one line
    ends = [pct * total - 1, 2 * pct * total - 2, total - 1] if keywords.get("three_phase") else [pct * total - 1, total - 1]
    if any(end == start for start, end in zip([0, *ends], ends)):
        raise ConfigError(
            "scheduler.pct_start", pct, f"leaves one of OneCycle's phases empty over this run's {total} steps (torch divides by its length): choose another"
        )


def planned_span(max_epochs: float, max_steps: float, steps_per_epoch: int) -> tuple[int, int]:
    """The epochs and steps a schedule spans: ``max_epochs`` (and their steps), or what ``max_steps`` allows
    (one of the two is finite)."""
    epochs = max_epochs if max_epochs != math.inf else -(-max_steps // steps_per_epoch)
    steps = max_steps if max_epochs == math.inf else max_epochs * steps_per_epoch
    return int(epochs), int(steps)

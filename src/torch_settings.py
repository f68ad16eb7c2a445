"""What the settings of torch's optimizers and schedulers may be, by name.

The optimizer and scheduler groups hand their yaml to torch's classes, which check some settings in their
own words (``Invalid beta parameter at index 0``), some late (a cosine's ``T_max=0`` divides by zero at
its first step) and some not at all: a negative ``gamma`` or ``eta_min`` trains on with a negative
learning rate, a momentum of 1.5 diverges. Each rule here is the setting's meaning in every torch class
that has it; a user's own class (a ``_target_`` outside ``torch.``) checks its own.
"""

from __future__ import annotations

from omegaconf import DictConfig

from src.errors import Rule, check, non_negative_int, nonempty_list_of, null, number, positive_int, positive_number

_fraction = number(0, 1, high_open=True)

RULES: dict[str, Rule] = {
    # optimizers
    "betas": Rule(lambda v: nonempty_list_of(_fraction).accepts(v) and len(v) == 2, "two numbers in [0, 1)"),
    "eps": positive_number,
    "weight_decay": number(0),
    "momentum": _fraction,
    "dampening": number(0, 1),  # the notes' momentum sets it to the momentum: v = β·v + (1−β)·dW
    "alpha": number(0, 1),  # RMSprop's smoothing of the squared gradients
    # schedulers
    "T_max": positive_int | null,
    "eta_min": number(0),
    "gamma": positive_number,
    "step_size": positive_int,
    "total_steps": positive_int | null,
    "max_lr": positive_number,
    "pct_start": number(0, 1, high_open=True),  # at 1 OneCycle's annealing phase is empty
    "factor": number(0, 1, low_open=True, high_open=True),
    "patience": non_negative_int,
    "threshold": number(0),
    "min_lr": number(0),
}


def check_torch_settings(group: str, config: DictConfig) -> None:
    """Each setting of a torch class that ``RULES`` names must keep its rule (``<group>.<name>`` in the error)."""
    if not str(config.get("_target_", "")).startswith("torch."):
        return
    for name, value in config.items():
        if name in RULES:
            check(f"{group}.{name}", value, RULES[name])

"""Seeds as one axis: which seeds a run trains, and how its members' results are summed up."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from src.errors import ConfigError, check, count, nonempty_list_of, random_seed


def seed_everything(seed: int) -> None:
    check("trainer.seed", seed, random_seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def member_seeds(seed: int, seeds: int | Sequence[int]) -> list[int]:
    """``trainer.seeds``: K (seeds ``seed``, ``seed``+1, ... ``seed``+K-1) or the seeds themselves."""
    check("trainer.seed", seed, random_seed)
    if isinstance(seeds, Sequence) and not isinstance(seeds, str):
        listed = list(check("trainer.seeds", seeds, nonempty_list_of(random_seed)))
        repeated = sorted({s for s in listed if listed.count(s) > 1})
        if repeated:
            raise ConfigError("trainer.seeds", listed, f"each seed once; repeated: {', '.join(map(str, repeated))}")
        return listed
    members = check("trainer.seeds", seeds, count(1, 1024) | nonempty_list_of(random_seed))
    return [seed + k for k in range(members)]


def summarize(per_member: list[dict[str, float]], seeds: list[int]) -> dict[str, Any]:
    """The members' metrics as one dict: each key's mean (the run's result, under its usual name), then
    ``<key>/std`` (sample standard deviation), ``/min``, ``/max`` for each metric, and ``per_seed``."""
    if len(per_member) == 1:
        return dict(per_member[0])
    summary: dict[str, Any] = {}
    for key in per_member[0]:
        values = [member[key] for member in per_member]
        summary[key] = values[0] if all(value == values[0] for value in values) else statistics.fmean(values)
        if "/" in key:
            summary |= {f"{key}/std": statistics.stdev(values), f"{key}/min": min(values), f"{key}/max": max(values)}
    summary["per_seed"] = {str(seed): dict(member) for seed, member in zip(seeds, per_member)}
    return summary


def per_member(values: dict[str, Tensor]) -> list[dict[str, float]]:
    """0-d tensors (one model) or [K] tensors (K members) as one dict of floats per member, in one device sync."""
    rows = torch.stack(list(values.values())).reshape(len(values), -1).T.tolist()
    return [dict(zip(values, row)) for row in rows]


def in_words(metrics: dict[str, Any]) -> str:
    """``name=value`` for each metric, ``name=mean±std`` for a summary of members."""
    shown = []
    for name, value in metrics.items():
        if "/" not in name or name.endswith(("/std", "/min", "/max")) or not isinstance(value, (int, float)):
            continue
        std = metrics.get(f"{name}/std")
        shown.append(f"{name}={value:.4f}" if std is None else f"{name}={value:.4f}±{std:.4f}")
    return " ".join(shown)


def clip_grad_norm_per_member(parameters: list[Tensor], max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ for each member of stacked parameters (leading axis: the member)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads]), dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))

"""A model summary: each layer, its output shape and parameter count, and the totals."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


def model_summary(model: nn.Module, run: Callable[[], object]) -> str:
    """A markdown table of ``model``'s leaf layers, with the output shapes seen while ``run()`` runs it once."""
    shapes: dict[str, str] = {}

    def record(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            first = output[0] if isinstance(output, tuple) else output
            if isinstance(first, Tensor):
                shapes.setdefault(name, "×".join(map(str, first.shape)))

        return hook

    leaves = [(name, module) for name, module in model.named_modules() if name and not any(True for _ in module.children())]
    hooks = [module.register_forward_hook(record(name)) for name, module in leaves]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    rows = ["| layer | kind | output shape | parameters |", "|---|---|---|---|"]
    for name, module in leaves:
        count = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(f"| {name} | {type(module).__name__} | {shapes.get(name, '—')} | {count:,} |")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows.append(f"| **total** | {type(model).__name__} | | {total:,} ({trainable:,} trainable) |")
    return "\n".join(rows)

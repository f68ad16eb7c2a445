"""A multi-layer perceptron: Linear → activation blocks, then a linear output of logits."""

from __future__ import annotations

import math
from typing import Callable

from torch import Tensor, nn

from src.errors import ConfigError
from src.models.init import initialize


def dense_layers(
    width: int, hidden: list[int], output_size: int, activation: Callable[[], nn.Module], dropout: float = 0.0
) -> list[nn.Module]:
    """[Linear → activation (→ dropout)] per hidden size, then a Linear to ``output_size`` logits."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, output_size))
    return layers


class MLP(nn.Module):
    """``hidden=[4]`` with tanh is the notes' two-layer network (equations 1–4, without the final σ)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_size: int,
        hidden: list[int],
        activation: Callable[[], nn.Module],
        dropout: float = 0.0,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError("model.hidden", hidden, "must be a non-empty list of positive integers, e.g. [64, 64]")
        if not 0 <= dropout < 1:
            raise ConfigError("model.dropout", dropout, "must be in [0, 1)")
        self.layers = nn.Sequential(nn.Flatten(), *dense_layers(math.prod(input_shape), hidden, output_size, activation, dropout))
        initialize(self, init, init_std)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

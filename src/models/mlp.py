"""A multi-layer perceptron: Linear → activation blocks, then a linear output of logits."""

from __future__ import annotations

import math
from typing import Callable

from torch import Tensor, nn

from src.errors import boolean, check, nonempty_list_of, number, positive_int
from src.models.init import initialize


def dense_layers(
    width: int, hidden: list[int], output_size: int, activation: Callable[[], nn.Module], dropout: float = 0.0, batch_norm: bool = False
) -> list[nn.Module]:
    """[Linear (→ batch norm) → activation (→ dropout)] per hidden size, then a Linear to ``output_size`` logits."""
    layers: list[nn.Module] = []
    for size in hidden:
        # Before a batch norm a bias is redundant (the norm subtracts the mean), and noise that Adam would amplify.
        layers += [nn.Linear(width, size, bias=not batch_norm), *([nn.BatchNorm1d(size)] if batch_norm else []), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, output_size))
    return layers


class MLP(nn.Module):
    """``hidden=[4]`` with tanh is the notes' two-layer network (equations 1–4, without the final σ)."""

    stackable = True  # forward works on any leading dimensions: seeds can train as one stacked model

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_size: int,
        hidden: list[int],
        activation: Callable[[], nn.Module],
        dropout: float = 0.0,
        init: str = "default",
        init_std: float = 0.01,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        hidden = list(check("model.hidden", hidden, nonempty_list_of(positive_int)))
        check("model.dropout", dropout, number(0, 1, high_open=True))
        check("model.batch_norm", batch_norm, boolean)
        layers = dense_layers(math.prod(input_shape), hidden, output_size, activation, dropout, batch_norm)
        self.layers = nn.Sequential(nn.Flatten(-len(input_shape)), *layers)
        initialize(self, init, init_std)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

"""One neuron: z = wᵀx + b. The task applies a = σ(z) (or softmax) and the loss l(a, y)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from src.models.init import initialize


class LogisticRegression(nn.Module):
    stackable = True  # forward works on any leading dimensions: seeds can train as one stacked model

    def __init__(
        self, input_shape: tuple[int, ...], output_size: int, init: str = "default", init_std: float = 0.01
    ) -> None:
        super().__init__()
        self.sample_dims = len(input_shape)
        self.linear = nn.Linear(math.prod(input_shape), output_size)
        initialize(self, init, init_std)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(-self.sample_dims))

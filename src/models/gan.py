"""A generator and a discriminator, both MLPs: for 2-D points or small images."""

from __future__ import annotations

import math
from typing import Callable

from torch import Tensor, nn

from src.models.mlp import MLP


class GAN(nn.Module):
    """``generator``: latent z → a sample shaped like the data; ``discriminator``: sample → real/fake logit."""

    stackable = True  # forward works on any leading dimensions: seeds can train as one stacked model

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_size: int,
        activation: Callable[[], nn.Module],
        latent_dim: int = 2,
        generator_hidden: list[int] = (128, 128),
        discriminator_hidden: list[int] = (128, 128),
        output_activation: str | None = None,
        init: str = "default",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.sample_shape = tuple(input_shape)
        generator: list[nn.Module] = [
            MLP((latent_dim,), math.prod(input_shape), list(generator_hidden), activation, init=init)
        ]
        if output_activation == "tanh":
            generator.append(nn.Tanh())
        generator.append(nn.Unflatten(-1, self.sample_shape))
        self.generator = nn.Sequential(*generator)
        self.discriminator = MLP(self.sample_shape, 1, list(discriminator_hidden), activation, init=init)

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)

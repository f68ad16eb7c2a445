"""A generator and a discriminator, both MLPs: for 2-D points or small images."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from src.errors import boolean, check, count, nonempty_list_of, positive_int
from src.models.mlp import MLP


class GAN(nn.Module):
    """``generator``: latent z → a sample shaped like the data; ``discriminator``: sample → real/fake logit.

    Both use ``activation`` unless the generator is given its own (``generator_activation``).
    """

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
        pack: int = 1,
        generator_activation: Callable[[], nn.Module] | None = None,
        generator_batch_norm: bool = False,
    ) -> None:
        super().__init__()
        check("model.pack", pack, count(1, 64))
        check("model.latent_dim", latent_dim, count(1, 4096))
        for key, sizes in [("model.generator_hidden", generator_hidden), ("model.discriminator_hidden", discriminator_hidden)]:
            check(key, sizes, nonempty_list_of(positive_int))
        self.latent_dim, self.pack = latent_dim, pack
        self.sample_shape = tuple(input_shape)
        generator: list[nn.Module] = [
            MLP((latent_dim,), math.prod(input_shape), list(generator_hidden), generator_activation or activation, init=init,
                batch_norm=check("model.generator_batch_norm", generator_batch_norm, boolean))
        ]
        if output_activation == "tanh":
            generator.append(nn.Tanh())
        generator.append(nn.Unflatten(-1, self.sample_shape))
        self.generator = nn.Sequential(*generator)
        if pack == 1:
            self.discriminator = MLP(self.sample_shape, 1, list(discriminator_hidden), activation, init=init)
        else:
            judge = MLP((pack * math.prod(input_shape),), 1, list(discriminator_hidden), activation, init=init)
            self.discriminator = Packed(judge, pack, len(self.sample_shape))

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)


class Packed(nn.Module):
    """PacGAN's discriminator (Lin et al., 2018): one verdict on ``pack`` samples side by side, so that a
    generator that puts out the same few samples again and again is told apart from the data.

    Samples ``[..., n, *shape]`` become ``[..., n // pack, pack × size]``: consecutive samples make a pack
    (batches are shuffled), and fewer than ``pack`` samples are cycled to fill one.
    """

    stackable = True

    def __init__(self, judge: nn.Module, pack: int, sample_dims: int) -> None:
        super().__init__()
        self.judge, self.pack, self.sample_dims = judge, pack, sample_dims

    def forward(self, samples: Tensor) -> Tensor:
        flat = samples.flatten(-self.sample_dims)
        n = flat.shape[-2]
        packs = max(1, n // self.pack)
        rows = torch.arange(packs * self.pack, device=flat.device) % n
        return self.judge(flat[..., rows, :].reshape(*flat.shape[:-2], packs, self.pack * flat.shape[-1]))

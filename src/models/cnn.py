"""A small convolutional network: [(conv → (batch norm) → activation) × convs_per_block → pool] blocks, then an MLP head."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from src.errors import ConfigError, check, count, non_negative_int, nonempty_list_of, number, one_of, positive_int
from src.models.init import initialize
from src.models.mlp import dense_layers


class CNN(nn.Module):
    """Works on any C×H×W input; the flattened size is measured, never typed."""

    stackable = True  # forward works on any leading dimensions: seeds can train as one stacked model

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_size: int,
        activation: Callable[[], nn.Module],
        channels: list[int] = (16, 32),
        kernel_size: int | list[int] = 3,
        padding: int | str = "same",
        pool: int = 2,
        convs_per_block: int = 1,
        batch_norm: bool = True,
        dropout: float = 0.0,
        hidden: list[int] = (64,),
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                "model", "cnn", f"needs image data shaped C×H×W; these inputs are shaped {tuple(input_shape)} "
                "(data=mnist, fashion_mnist, cifar10 and image_folder are pictures; the digits with data.layout=image)"
            )
        channels = list(check("model.channels", channels, nonempty_list_of(positive_int)))
        check("model.dropout", dropout, number(0, 1, high_open=True))
        check("model.convs_per_block", convs_per_block, count(1, 16))
        check("model.kernel_size", kernel_size, positive_int | nonempty_list_of(positive_int))
        kernels = [kernel_size] * len(channels) if isinstance(kernel_size, int) else list(kernel_size)
        if len(kernels) != len(channels):
            raise ConfigError("model.kernel_size", kernels, f"give one size, or one per layer ({len(channels)})")
        check("model.padding", padding, non_negative_int | one_of("same", "valid"))
        check("model.pool", pool, positive_int)  # 1: no pooling
        blocks: list[nn.Module] = []
        width = input_shape[0]
        for size, kernel in zip(channels, kernels):
            for _ in range(convs_per_block):  # 2 or 3: a VGG-style block
                blocks.append(nn.Conv2d(width, size, kernel, padding=padding, bias=not batch_norm))
                if batch_norm:
                    blocks.append(nn.BatchNorm2d(size))
                blocks.append(activation())
                width = size
            if pool > 1:
                blocks.append(nn.MaxPool2d(pool, ceil_mode=True))  # ceil: odd sizes keep their last row
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).numel()
        head: list[nn.Module] = [nn.Flatten(-3), nn.Dropout(dropout)] if dropout > 0 else [nn.Flatten(-3)]
        self.classifier = nn.Sequential(*head, *dense_layers(flat, list(hidden), output_size, activation, dropout))
        initialize(self, init, init_std)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

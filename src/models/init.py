"""Weight initialization schemes, chosen by ``model.init``."""

from __future__ import annotations

from torch import nn

from src.errors import check, number, one_of

SCHEMES = ("default", "normal", "xavier", "he")


def initialize(module: nn.Module, scheme: str = "default", std: float = 0.01) -> None:
    """Re-initialize every Linear/Conv weight; biases start at zero (except with PyTorch's default).

    ``normal`` is the notes' source: W = randn * std (0.01), b = 0.
    """
    check("model.init", scheme, one_of(*SCHEMES))
    check("model.init_std", std, number(0))
    if scheme == "default":
        return
    for layer in module.modules():
        if not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        if scheme == "normal":
            nn.init.normal_(layer.weight, mean=0.0, std=std)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

"""Each activation config builds the function the notes define."""

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src import REPO_ROOT

z = torch.linspace(-6, 6, 241, dtype=torch.float64)

FORMULAS = {
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "relu": lambda x: torch.maximum(torch.zeros_like(x), x),
    "leaky_relu": lambda x: torch.maximum(0.001 * x, x),  # the notes: max(0.001x, x)
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "silu": lambda x: x / (1 + torch.exp(-x)),
}


def activation(name: str, **overrides) -> torch.nn.Module:
    config = OmegaConf.load(REPO_ROOT / "conf" / "activation" / f"{name}.yaml")
    return instantiate(config, **overrides)()


def test_every_activation_config_has_a_formula():
    names = {path.stem for path in (REPO_ROOT / "conf" / "activation").glob("*.yaml")}
    assert names == set(FORMULAS)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_equals_its_formula(name):
    torch.testing.assert_close(activation(name)(z), FORMULAS[name](z), rtol=1e-12, atol=1e-12)


def test_leaky_relu_slope_is_a_key():
    assert activation("leaky_relu")(torch.tensor([-1000.0])).item() == pytest.approx(-1.0)
    assert activation("leaky_relu", negative_slope=0.01)(torch.tensor([-100.0])).item() == pytest.approx(-1.0)


def notes_softmax(z: torch.Tensor) -> torch.Tensor:
    t = torch.exp(z)  # t_i = e^{z_i};  P_i = t_i / Σ_j t_j
    return t / t.sum(dim=-1, keepdim=True)


def test_softmax_equals_the_notes_formula():
    logits = torch.randn(5, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.softmax(logits, dim=-1), notes_softmax(logits))


def test_softmax_and_its_loss_are_stable_for_large_z():
    logits = torch.tensor([[1000.0, 0.0, -1000.0]])
    assert torch.isnan(notes_softmax(logits)).any()  # the naive formula overflows ...
    p = torch.softmax(logits, dim=-1)  # ... the framework's does not
    torch.testing.assert_close(p, torch.tensor([[1.0, 0.0, 0.0]]))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(1000.0)  # log-sum-exp form: -log P_1 = 1000 exactly

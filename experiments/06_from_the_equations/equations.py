"""The notes' equations (1)–(6) and their backward pass, written out by hand with tensors.

Shapes follow the notes: X is (n_x, m), one column per example; W1 (n_h, n_x), b1 (n_h, 1),
W2 (1, n_h), b2 (1, 1).
"""

from __future__ import annotations

import torch
from torch import Tensor


def forward(X: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor) -> dict[str, Tensor]:
    Z1 = W1 @ X + b1  # (1)
    A1 = torch.tanh(Z1)  # (2)
    Z2 = W2 @ A1 + b2  # (3)
    A2 = 1 / (1 + torch.exp(-Z2))  # (4) σ
    return {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def predict(A2: Tensor) -> Tensor:
    return (A2 > 0.5).to(A2.dtype)  # (5)


def cost(A2: Tensor, Y: Tensor) -> Tensor:
    m = Y.shape[1]
    return -(Y * torch.log(A2) + (1 - Y) * torch.log(1 - A2)).sum() / m  # (6)


def backward(X: Tensor, Y: Tensor, W2: Tensor, cache: dict[str, Tensor]) -> dict[str, Tensor]:
    """Gradients of J, by the chain rule: dZ2 = A2 - Y; tanh' = 1 - A1²."""
    m = X.shape[1]
    dZ2 = cache["A2"] - Y
    dW2 = dZ2 @ cache["A1"].T / m
    db2 = dZ2.sum(dim=1, keepdim=True) / m
    dZ1 = (W2.T @ dZ2) * (1 - cache["A1"] ** 2)
    dW1 = dZ1 @ X.T / m
    db1 = dZ1.sum(dim=1, keepdim=True) / m
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def compare(seed: int = 0, n_h: int = 4) -> dict[str, float]:
    """Largest differences: hand-written backward against autograd, and against the framework's MLP."""
    from src.data.planar import planar_flower
    from src.models.mlp import MLP
    from src.tasks.classification import BinaryClassification

    data = planar_flower()
    X = torch.tensor(data.features.T, dtype=torch.float64)
    Y = torch.tensor(data.targets[None, :], dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    params = {
        "W1": torch.randn(n_h, 2, generator=generator, dtype=torch.float64) * 0.5,
        "b1": torch.randn(n_h, 1, generator=generator, dtype=torch.float64) * 0.1,
        "W2": torch.randn(1, n_h, generator=generator, dtype=torch.float64) * 0.5,
        "b2": torch.randn(1, 1, generator=generator, dtype=torch.float64) * 0.1,
    }
    cache = forward(X, **params)
    by_hand = backward(X, Y, params["W2"], cache)

    leaves = {name: value.clone().requires_grad_() for name, value in params.items()}
    J = cost(forward(X, **leaves)["A2"], Y)
    J.backward()
    autograd_gap = max(float((by_hand[k] - leaves[k].grad).abs().max()) for k in params)

    model = MLP((2,), 1, hidden=[n_h], activation=torch.nn.Tanh).double()
    with torch.no_grad():
        model.layers[1].weight.copy_(params["W1"])
        model.layers[1].bias.copy_(params["b1"][:, 0])
        model.layers[3].weight.copy_(params["W2"])
        model.layers[3].bias.copy_(params["b2"][:, 0])
    task = BinaryClassification(model)
    loss = task.training_step((X.T, Y[0]), 0)
    loss.backward()
    framework_grads = {
        "W1": model.layers[1].weight.grad, "b1": model.layers[1].bias.grad[:, None],
        "W2": model.layers[3].weight.grad, "b2": model.layers[3].bias.grad[:, None],
    }
    return {
        "cost J by hand": float(cost(cache["A2"], Y)),
        "framework loss": float(loss.detach()),
        "abs(J by hand − framework loss)": abs(float(cost(cache["A2"], Y)) - float(loss.detach())),
        "max abs(A2 by hand − framework probabilities)": float((cache["A2"][0] - task.probabilities(X.T).detach()).abs().max()),
        "predictions that differ": int((predict(cache["A2"])[0] != task.predict(X.T)).sum()),
        "max abs(gradient by hand − autograd)": autograd_gap,
        "max abs(gradient by hand − framework)": max(float((by_hand[k] - framework_grads[k]).abs().max()) for k in params),
    }

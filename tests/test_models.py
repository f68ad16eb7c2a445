"""Models are the notes' equations: one neuron, the two-layer network, initialization schemes."""

import torch

from src.models.logreg import LogisticRegression
from src.models.mlp import MLP
from src.tasks.classification import BinaryClassification


def test_logistic_regression_is_one_neuron():
    model = LogisticRegression((3,), 1)
    x = torch.randn(5, 3)
    w, b = model.linear.weight, model.linear.bias
    torch.testing.assert_close(model(x), x @ w.T + b)  # z = wᵀx + b
    task = BinaryClassification(model)
    torch.testing.assert_close(task.probabilities(x), torch.sigmoid((x @ w.T + b).squeeze(-1)))  # a = σ(z)


def test_two_layer_network_follows_equations_1_to_6():
    torch.manual_seed(0)
    model = MLP((2,), 1, hidden=[4], activation=torch.nn.Tanh, init="normal", init_std=0.01)
    first, second = model.layers[1], model.layers[3]
    x = torch.randn(7, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 1], dtype=torch.float64)
    model = model.double()
    a1 = torch.tanh(x @ first.weight.T + first.bias)  # (1), (2)
    a2 = torch.sigmoid(a1 @ second.weight.T + second.bias).squeeze(-1)  # (3), (4)
    task = BinaryClassification(model)
    torch.testing.assert_close(task.probabilities(x), a2)
    torch.testing.assert_close(task.predict(x), (a2 > 0.5).long())  # (5)
    j = -(y * torch.log(a2) + (1 - y) * torch.log(1 - a2)).mean()  # (6)
    torch.testing.assert_close(task.training_step((x, y), 0), j)


def test_normal_init_is_the_notes_small_random_weights_and_zero_biases():
    torch.manual_seed(0)
    model = MLP((2,), 1, hidden=[400], activation=torch.nn.Tanh, init="normal", init_std=0.01)
    weight = model.layers[1].weight
    assert abs(weight.std().item() - 0.01) < 0.001
    assert all(layer.bias.abs().sum() == 0 for layer in (model.layers[1], model.layers[3]))


def test_he_and_xavier_scales():
    torch.manual_seed(0)
    he = MLP((1000,), 1, hidden=[500], activation=torch.nn.ReLU, init="he").layers[1].weight
    assert abs(he.std().item() - (2 / 1000) ** 0.5) < 0.002
    xavier = MLP((1000,), 1, hidden=[500], activation=torch.nn.ReLU, init="xavier").layers[1].weight
    assert abs(xavier.std().item() - (2 / 1500) ** 0.5) < 0.002


def test_mlp_hidden_sizes_and_output_size():
    model = MLP((1, 8, 8), 10, hidden=[128, 32], activation=torch.nn.ReLU)
    sizes = [(layer.in_features, layer.out_features) for layer in model.modules() if isinstance(layer, torch.nn.Linear)]
    assert sizes == [(64, 128), (128, 32), (32, 10)]
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_mlp_batch_norm_normalizes_each_hidden_layer_before_its_activation():
    model = MLP((5,), 2, hidden=[4], activation=torch.nn.Tanh, batch_norm=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "Tanh", "Linear"]
    x = torch.randn(50, 5) * 7 + 3
    hidden = model.layers[:3](x)  # in training mode: the batch's own statistics
    torch.testing.assert_close(hidden.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden.std(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    by_hand = model.layers[1](x)
    torch.testing.assert_close(model.layers[2].running_mean, 0.1 * by_hand.mean(0).detach())  # momentum 0.1 from 0

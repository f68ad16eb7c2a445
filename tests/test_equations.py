"""Study 6 stays true: the hand-written backward pass equals autograd and the framework's mlp."""

import sys

import pytest

from src import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "experiments" / "06_from_the_equations"))

from equations import compare  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_written_gradients_equal_autograd_and_the_framework(seed):
    result = compare(seed)
    assert result["max abs(gradient by hand − autograd)"] < 1e-10
    assert result["max abs(gradient by hand − framework)"] < 1e-10
    assert result["abs(J by hand − framework loss)"] < 1e-10
    assert result["max abs(A2 by hand − framework probabilities)"] < 1e-10
    assert result["predictions that differ"] == 0
    assert 0.1 < result["cost J by hand"] < 5

"""The notes' planar "flower": two interleaved petal classes that no line separates."""

from __future__ import annotations

import numpy as np

from src.data.dataset import Dataset
from src.errors import check_arguments, count, number, random_seed


def planar_flower(m: int = 400, petals_radius: float = 4.0, seed: int = 1) -> Dataset:
    """Generated exactly as the notes' source does (numpy seed 1, N = m/2 points per class)."""
    check_arguments("data", locals(), {"m": count(2), "petals_radius": number(-1e6, 1e6), "seed": random_seed})
    rng = np.random.RandomState(seed)  # same stream as np.random.seed(seed)
    n = m // 2
    x = np.zeros((2 * n, 2))
    y = np.zeros(2 * n, dtype=np.int64)
    for j in range(2):
        rows = slice(n * j, n * (j + 1))
        theta = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.randn(n) * 0.2
        radius = petals_radius * np.sin(4 * theta) + rng.randn(n) * 0.2
        x[rows] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
        y[rows] = j
    return Dataset(x, y, "classification", "planar", ["red", "blue"])

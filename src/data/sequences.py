"""Sequence data sets made on the spot: the adding problem and a sine wave to forecast."""

from __future__ import annotations

import numpy as np

from src.data.dataset import Dataset
from src.errors import check_arguments, count, number, random_seed


def adding_problem(n_samples: int = 10_000, length: int = 50, seed: int = 0) -> Dataset:
    """Inputs (N, T, 2): values uniform in [0, 1] and a marker with one 1 in each half.

    The target is the sum of the two marked values; always answering 1 scores MSE ≈ 1/6.
    """
    check_arguments("data", locals(), {"n_samples": count(2), "length": count(2, 10_000), "seed": random_seed})
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 1, size=(n_samples, length))
    marker = np.zeros((n_samples, length))
    rows = np.arange(n_samples)
    half = length // 2
    first = rng.integers(0, half, size=n_samples)
    second = rng.integers(half, length, size=n_samples)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return Dataset(np.stack([values, marker], axis=2), target, "regression", f"adding_T{length}")


def sine_wave(
    n_points: int = 3000, period: float = 50.0, window: int = 40, noise: float = 0.0, seed: int = 0
) -> Dataset:
    """Windows of ``window`` past values (N, window, 1) and the next value, in time order.

    Split it with ``split_shuffle: false`` so the test windows come after the training ones.
    """
    rules = {"n_points": count(3), "period": number(0, 1e9, low_open=True), "noise": number(0, 1e6), "seed": random_seed}
    check_arguments("data", locals(), rules | {"window": count(1, n_points - 2) if isinstance(n_points, int) and n_points >= 3 else count(1)})
    rng = np.random.default_rng(seed)
    t = np.arange(n_points)
    series = np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(n_points)
    starts = np.arange(n_points - window)
    windows = np.stack([series[s : s + window] for s in starts])[:, :, None]
    return Dataset(windows, series[starts + window], "regression", "sine", info={"window": window})

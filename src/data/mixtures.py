"""Gaussian mixtures in 2-D whose modes a GAN must find: a ring and a grid."""

from __future__ import annotations

import numpy as np

from src.data.dataset import Dataset
from src.errors import check_arguments, count, number, random_seed


def _mixture(modes: np.ndarray, std: float, n_samples: int, seed: int, name: str) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(modes), size=n_samples)
    points = modes[labels] + std * rng.standard_normal((n_samples, 2))
    return Dataset(points, labels, "classification", name, info={"modes": modes, "mode_std": std})


def ring(n_samples: int = 20_000, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0) -> Dataset:
    """``modes`` Gaussians with means at angles 2πk/modes on a circle."""
    rules = {"n_samples": count(2), "modes": count(1, 1000), "radius": number(0, 1e6, low_open=True), "std": number(0, 1e6), "seed": random_seed}
    check_arguments("data", locals(), rules)
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture(centres, std, n_samples, seed, "ring")


def grid(n_samples: int = 20_000, std: float = 0.05, seed: int = 0) -> Dataset:
    """25 Gaussians at {-4, -2, 0, 2, 4}²."""
    check_arguments("data", locals(), {"n_samples": count(2), "std": number(0, 1e6), "seed": random_seed})
    axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    return _mixture(centres, std, n_samples, seed, "grid")

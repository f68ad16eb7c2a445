"""The raw form every data source returns, before splitting and scaling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Dataset:
    """Features of shape (N, ...) and targets of shape (N,) or (N, k).

    ``target_type`` is "classification" (integer class labels 0..K-1) or "regression" (float values).
    """

    features: np.ndarray
    targets: np.ndarray
    target_type: str = "classification"
    name: str = "data"
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    #: What a task may need beyond the rows: a GAN's mode centres, a forecaster's window length, ...
    info: dict[str, Any] = field(default_factory=dict)
    #: The test split as published apart from the training rows (MNIST's 10,000), or None.
    test: tuple[np.ndarray, np.ndarray] | None = None

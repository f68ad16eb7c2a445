"""What a model and its task must know of the data, without the data: saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class DataSpec:
    name: str
    target_type: str  # classification | regression
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: Standardization fitted on the training split (None: inputs are used as they are).
    mean: Tensor | None = None
    std: Tensor | None = None

    def scale(self, features: Tensor) -> Tensor:
        return features if self.mean is None else (features - self.mean) / self.std

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only, for ``torch.load(weights_only=True)``."""
        state = asdict(self)
        state["input_shape"] = list(self.input_shape)
        for key in ("class_names", "feature_names"):
            state[key] = None if state[key] is None else [str(name) for name in state[key]]
        state["info"] = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in self.info.items()}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "DataSpec":
        return cls(**{**state, "input_shape": tuple(state["input_shape"])})

"""``task=auto``: what a batch means follows from the data."""

from __future__ import annotations

from torch import nn

from src.data.spec import DataSpec
from src.tasks.classification import classification
from src.tasks.regression import Regression
from src.tasks.task import ModelFactory, Task


def follow_the_data(model: nn.Module | ModelFactory, spec: DataSpec) -> Task:
    """Regression for real-valued targets; classification (binary or multi-class) otherwise."""
    return Regression(model, spec) if spec.target_type == "regression" else classification(model, spec)

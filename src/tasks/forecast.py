"""Forecasting a series from a window of its past: regression, plus a long free-running forecast."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src import visuals
from src.data.datamodule import Batch, shown_splits
from src.data.spec import DataSpec
from src.errors import ConfigError, check, positive_int
from src.tasks.regression import Regression
from src.tasks.task import ModelFactory, Visual


class Forecast(Regression):
    """Trained one step ahead; shown feeding its own forecasts back in over ``horizon`` steps."""

    def __init__(self, model: nn.Module | ModelFactory, spec: DataSpec | None = None, horizon: int = 300) -> None:
        if spec is not None and (len(spec.input_shape) != 2 or spec.input_shape[1] != 1 or spec.target_type != "regression"):
            raise ConfigError("task", "forecast", f"needs windows of one series (T×1) and its next value; data {spec.name} "
                              f"holds {spec.target_type} targets of inputs shaped {spec.input_shape} (data=sine is such a series)")
        super().__init__(model, spec)
        self.horizon = check("task.horizon", horizon, positive_int)

    @torch.no_grad()
    def rollout(self, window: Tensor, steps: int) -> Tensor:
        """Forecast ``steps`` values after ``window`` (T, 1), each from the previous forecasts."""
        window = window.clone()
        out = []
        for _ in range(steps):
            value = self.predict(window[None])[0]
            out.append(value)
            window = torch.cat([window[1:], value.reshape(1, 1)])
        return torch.stack(out)

    @torch.no_grad()
    def visualize(self, splits: dict[str, Batch]) -> dict[str, Visual]:
        out: dict[str, Visual] = {}
        for split in shown_splits(splits):
            x, y = splits[split]  # consecutive windows when the split keeps time order
            steps = min(self.horizon, len(y))
            forecast = self.rollout(x[0], steps)
            error = float((forecast - y[:steps]).pow(2).mean())
            out[f"{split}/forecast"] = visuals.line_plot([y[:steps], forecast], names=["truth", "forecast"])
            out[f"{split}/forecast_note"] = f"red: truth, blue: {steps} steps forecast from its own outputs (MSE {error:.4g})"
        return out

"""Regression: mean squared error on real-valued targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from src.data.datamodule import Batch
from src.tasks.task import Task


class Regression(Task):
    """One real value per row, fitted by mean squared error."""

    def predict(self, x: Tensor) -> Tensor:
        return self.model(x).squeeze(-1)

    def training_step(self, batch: Batch, optimizer_index: int) -> Tensor:
        x, y = batch
        return self.batch_mean(F.mse_loss, self.predict(x), y)

    def evaluation_step(self, batch: Batch) -> dict[str, Tensor]:
        x, y = batch
        prediction = self.predict(x)
        if prediction.shape != y.shape:  # mse_loss would broadcast them; the try-out before training names the model
            shapes = f"outputs shaped {tuple(prediction.shape)} for targets shaped {tuple(y.shape)}"
            raise ValueError(f"a regression takes one output per row; this model gives {shapes}")
        mse = self.batch_mean(F.mse_loss, prediction, y)
        return {"loss": mse, "mse": mse, "mae": (prediction - y).abs().mean(-1)}

    @torch.no_grad()
    def prediction_columns(self, x: Tensor) -> dict[str, list[str]]:
        return {"prediction": [f"{value:.6g}" for value in self.predict(x).tolist()]}

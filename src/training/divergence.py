"""A loss that became NaN or infinite: which step, and which checkpoint is still good."""

from __future__ import annotations

import torch
from torch import Tensor

from src.errors import UserError
from src.training.checkpoint import RunCheckpoints


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: names the first such step and the last checkpoint that is still good."""

    def __init__(self, name: str, window: Tensor, window_start: int, losses_per_step: int, checkpoints: RunCheckpoints) -> None:
        bad = (~torch.isfinite(window)).nonzero()
        # No single loss is NaN or inf, yet their mean overflowed: name the largest.
        first_bad = int(bad[0, 0]) if len(bad) else int(window.abs().argmax())
        step = window_start + first_bad // losses_per_step + 1
        saved = checkpoints.last_saved_step
        last = f"last good checkpoint: {checkpoints.last} (step {saved})" if saved is not None else "no checkpoint was written before it"
        super().__init__(
            f"{name} became {float(window[first_bad])} at step {step}; the run is stopped "
            f"(try a smaller optimizer.lr or trainer.gradient_clip_val); {last}"
        )

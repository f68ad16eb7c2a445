"""A loss that became NaN or infinite: which step, and which checkpoint is still good."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from src.errors import UserError
from src.training import distributed
from src.training.checkpoint import RunCheckpoints

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: names the first such step and the last checkpoint that is still good."""

    def __init__(
        self, name: str, window: Tensor, window_start: int, losses_per_step: int, checkpoints: RunCheckpoints, first_to_step: bool
    ) -> None:
        bad = (~torch.isfinite(window)).nonzero()
        # No single loss is NaN or inf, yet their mean overflowed: name the largest.
        first_bad = int(bad[0, 0]) if len(bad) else int(window.abs().argmax())
        step = window_start + first_bad // losses_per_step + 1
        saved = checkpoints.last_saved_step
        last = f"last good checkpoint: {checkpoints.last} (step {saved})" if saved is not None else "no checkpoint was written before it"
        if len(bad) and first_to_step and window_start + first_bad == 0:  # no optimizer had stepped: the lr played no part
            cause = "the loss of the initial weights, before any update: look at model.init and model.init_std, and at the data's scale"
        else:
            cause = "try a smaller optimizer.lr or trainer.gradient_clip_val"
        super().__init__(f"{name} became {float(window[first_bad])} at step {step}; the run is stopped ({cause}); {last}")


def step_loss_windows(trainer: Trainer) -> dict[str, tuple[int, Tensor]]:
    """The losses each optimizer stepped on since the last check, as ``train/step_<loss>``: (its index, the
    losses [steps] or [steps, members], averaged over ranks). The recorded lists are emptied."""
    windows = {}
    for index, losses in trainer.recorded.items():
        if losses:
            window = torch.stack(losses).float()
            windows[f"train/step_{trainer.task.loss_names[index]}"] = index, window if trainer.world_size == 1 else distributed.mean_over_ranks(window)
            losses.clear()
    return windows


def stop_if_diverged(trainer: Trainer, windows: dict[str, tuple[int, Tensor]], members: list[dict[str, float]]) -> None:
    """Raise TrainingDiverged when a member's mean step loss is not finite (it is finite only when every loss was)."""
    for name, (index, window) in windows.items():
        for member, metrics in enumerate(members):
            if not math.isfinite(metrics[name]):
                trainer.checkpoints.wait()  # so that the checkpoint the message names is on disk
                seed = f" of seed {trainer.seeds[member]}" if trainer.members > 1 else ""
                raise TrainingDiverged(
                    f"train/{trainer.task.loss_names[index]}{seed}", window if trainer.members == 1 else window[:, member],
                    trainer.window_start, trainer.task.optimizer_order.count(index), trainer.checkpoints,
                    first_to_step=index == trainer.task.optimizer_order[0],
                )

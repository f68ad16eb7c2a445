"""The loop's whole state: where it is, what last.ckpt keeps of it, and how a resume gives it back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from src.run_log import log
from src.training.checkpoint import restore_rng_states, restore_training_state, rng_states

if TYPE_CHECKING:
    from src.training.trainer import Trainer


@dataclass
class LoopState:
    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimization steps (one per batch)
    batch_in_epoch: int = 0
    best_score: float | list[float] | None = None  # one per member when several seeds train together
    checks_without_improvement: int = 0
    checked_at_step: int = -1  # the step of the latest check; equal to `step` when nothing is left to check


def training_state(trainer: Trainer) -> dict[str, Any]:
    """Everything a resume needs (last.ckpt)."""
    return {
        "model": trainer.task.state_dict(),
        "optimizers": [optimizer.state_dict() for optimizer in trainer.optimizers],
        "schedulers": [scheduler.state_dict() for scheduler in trainer.schedulers],
        "loop": asdict(trainer.state),
        "window": {index: torch.stack(losses) for index, losses in trainer.recorded.items() if losses},
        "metrics": trainer.last_metrics,
        "member_metrics": trainer.member_metrics,
        "task_rng": [rng.get_state() for rng in trainer.task.generators],
        "callbacks": {str(i): state for i, callback in enumerate(trainer.callbacks) if (state := callback.state_dict()) is not None},
        "rng": rng_states(),
        "config": trainer.config,
        "data": trainer.data_state,
        "run": trainer.fingerprint,
    }


def resume(trainer: Trainer, ckpt_path: str) -> None:
    """Give the trainer the state a last.ckpt holds; refused, with one line, when it comes from another kind of run."""
    checkpoint = restore_training_state(ckpt_path, trainer.task, trainer.optimizers, trainer.schedulers, trainer.fingerprint)
    trainer.state = LoopState(**checkpoint["loop"])
    trainer.recorded.update({index: list(losses) for index, losses in checkpoint.get("window", {}).items()})
    trainer.last_metrics = dict(checkpoint.get("metrics", {}))
    trainer.member_metrics = list(checkpoint.get("member_metrics", []))
    restore_rng_states(checkpoint["rng"])
    for rng, state in zip(trainer.task.generators, checkpoint.get("task_rng", [])):
        rng.set_state(state)
    for i, state in checkpoint.get("callbacks", {}).items():
        trainer.callbacks[int(i)].load_state_dict(state)
    trainer.checkpoints.resume_best(ckpt_path)
    if trainer.rank == 0:
        log.info(f"resumed from {ckpt_path} at epoch {trainer.state.epoch}, step {trainer.state.step}")


def best_snapshot(trainer: Trainer, improved: list[bool]) -> dict[str, Any]:
    """best.ckpt: the model as it is now, for evaluation and prediction (resume uses last.ckpt); for
    stacked members, those that did not improve keep their earlier best."""
    model = {name: tensor.clone() for name, tensor in trainer.live_state.items()}
    best = trainer.checkpoints.best
    if best is not None and not all(improved):
        kept = torch.tensor([not up for up in improved], device=trainer.device)
        for name, tensor in model.items():
            tensor[kept] = best["model"][name].to(trainer.device)[kept]
    return {"model": model, "loop": asdict(trainer.state), "config": trainer.config, "data": trainer.data_state}

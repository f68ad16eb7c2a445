"""The loop's whole state: where it is, what last.ckpt keeps of it, and how a resume gives it back."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import Tensor

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
        "callbacks": {
            f"{i}.{type(callback).__name__}": state for i, callback in enumerate(trainer.callbacks) if (state := callback.state_dict()) is not None
        },
        "rng": rng_states(),
        "config": trainer.config,
        "data": trainer.data_state,
        "run": trainer.fingerprint,
    }


def save_checkpoint(trainer: Trainer) -> None:
    """last.ckpt (and best.ckpt when it changed), written in the background; by rank 0 only.

    Not while the losses since the last check hold a NaN: the next check stops the run, and
    the checkpoint on disk stays the last good one.
    """
    window = [torch.stack(losses) for losses in trainer.recorded.values() if losses]
    if trainer.rank != 0 or (window and not bool(torch.isfinite(torch.cat(window)).all())):
        return
    trainer.checkpoints.save(training_state(trainer))


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
    for key, state in checkpoint.get("callbacks", {}).items():
        index, _, kind = key.partition(".")  # "0.WeightAverage"; before 2026-11-29 the index alone
        callback = trainer.callbacks[int(index)] if int(index) < len(trainer.callbacks) else None
        if callback is None or kind not in ("", type(callback).__name__):
            log.warning(f"{ckpt_path} holds the state of a {kind or 'callback'} this run does not have at that place; it is left out")
            continue
        callback.load_state_dict(state)
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


@contextlib.contextmanager
def weights_of(live_state: dict[str, Tensor], weights: dict[str, Tensor] | None) -> Iterator[None]:
    """The model holds ``weights`` (when given) inside the block, and its own again after it."""
    if weights is None:
        yield
        return
    own = {name: tensor.clone() for name, tensor in live_state.items()}
    try:
        for name, tensor in live_state.items():
            tensor.copy_(weights[name])
        yield
    finally:
        for name, tensor in live_state.items():
            tensor.copy_(own[name])

"""Averages of the weights, as callbacks: EMA (``callbacks=[ema]``) and SWA (``callbacks=[swa]``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from src.errors import Rule, check_arguments, null, number, positive_int
from src.training.callbacks import Callback
from src.training.checkpoint import CHECKPOINT_FOLDER, serialize, write_durably

if TYPE_CHECKING:
    from src.training.trainer import Trainer


class WeightAverage(Callback):
    """A running average of the model's weights (``torch.optim.swa_utils.AveragedModel``, buffers
    included), updated every ``every_n_steps`` steps once ``start_fraction`` of the run's steps are done:
    exponential with ``decay`` (EMA), or equal weights when ``decay`` is null (SWA).

    At every check it is evaluated beside the model (``val/ema/acc``, ``train/ema/loss``, … and
    ``test/ema/…`` at the end); it is kept in last.ckpt, so a resumed run goes on averaging, and
    written to ``checkpoints/<name>.ckpt``, which evaluate and predict read like best.ckpt. Stacked
    members are averaged each on its own (the average is elementwise).
    """

    RULES = {
        "decay": number(0, 1, low_open=True, high_open=True) | null,
        "start_fraction": number(0, 1, high_open=True),
        "every_n_steps": positive_int,
        # It names checkpoints/<name>.ckpt: a file name (of at most 255 bytes on most file systems).
        "name": Rule(lambda value: isinstance(value, str) and value.isidentifier() and len(value) <= 64, "a name of letters, digits and _ (at most 64)"),
    }

    def __init__(self, name: str = "ema", decay: float | None = 0.999, start_fraction: float = 0.0, every_n_steps: int = 1) -> None:
        check_arguments(f"callbacks.{name}", locals(), self.RULES)
        self.name, self.decay, self.start_fraction, self.every_n_steps = name, decay, start_fraction, every_n_steps
        self.average: AveragedModel | None = None
        self._restored: dict[str, Tensor] | None = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        average_function = get_ema_multi_avg_fn(self.decay) if self.decay is not None else None
        self.average = AveragedModel(trainer.task.model, multi_avg_fn=average_function, use_buffers=True)
        if self._restored is not None:
            self.average.load_state_dict(self._restored)
        self.start_step = int(self.start_fraction * trainer.total_steps)
        trainer.evaluations.append(lambda splits: self._evaluate(trainer, splits))

    def on_step_end(self, trainer: "Trainer") -> None:
        step = trainer.state.step
        if step > self.start_step and step % self.every_n_steps == 0:
            self.average.update_parameters(trainer.task.model)

    def _weights(self) -> dict[str, Tensor]:
        """The average under the task's state-dict names (the task holds the model as ``model``)."""
        return {f"model.{name}": tensor for name, tensor in self.average.module.state_dict().items()}

    def _evaluate(self, trainer: "Trainer", splits: list[str]) -> dict[str, Tensor]:
        if int(self.average.n_averaged) == 0:
            return {}
        return trainer.evaluate(splits, self._weights(), tag=f"{self.name}/")

    def on_fit_end(self, trainer: "Trainer", metrics: dict[str, Any]) -> None:
        if trainer.rank == 0 and int(self.average.n_averaged) > 0:
            state = {"model": self._weights(), "loop": asdict(trainer.state), "config": trainer.config, "data": trainer.data_state}
            write_durably(serialize(state), trainer.run_dir / CHECKPOINT_FOLDER / f"{self.name}.ckpt")

    def state_dict(self) -> dict[str, Tensor]:
        return self.average.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self._restored = state

"""The contract between a task (what one batch means) and the generic training loop.

The loop owns iteration, devices, precision, clipping, schedules, logging and checkpoints. A task
owns the model(s) and says, for one batch, what each optimizer minimizes, and which metrics
describe a split. Tasks never loop over data themselves.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from src.data.datamodule import Batch
from src.data.spec import DataSpec
from src.errors import UserError
from src.visuals import Visual

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
ModelFactory = Callable[[int], nn.Module]  # the model for a given output size


class Task(nn.Module):
    """Base class: one model, one optimizer, one loss.

    A task is a config group option (``conf/task/<name>.yaml``): its ``_target_`` is called with
    ``model`` (a factory taking the output size the task asks for, or a built module), ``spec``
    (the data's description) and the yaml's own settings.
    """

    #: Which optimizer steps, in order, on each batch: a GAN says (0, 1) or (0, 0, 1).
    optimizer_order: tuple[int, ...] = (0,)
    #: The name of each optimizer's loss in the logs (``train/<name>``).
    loss_names: tuple[str, ...] = ("loss",)
    #: The metric to monitor by default for best checkpoints and early stopping.
    monitor: str = "loss"
    monitor_mode: str = "min"
    #: The splits whose metrics each check computes (those the data has; the training split if none).
    evaluated_splits: tuple[str, ...] = ("train", "val")

    def __init__(self, model: nn.Module | ModelFactory, spec: DataSpec | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.model = model if isinstance(model, nn.Module) else model(self.output_size(spec))

    def output_size(self, spec: DataSpec) -> int:
        """How many outputs the model needs for this data (a logit, a value, one logit per class)."""
        return 1

    def configure_optimizers(self, make_optimizer: OptimizerFactory) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.model.parameters())]

    def training_step(self, batch: Batch, optimizer_index: int) -> Tensor:
        """The loss that optimizer ``optimizer_index`` minimizes on this batch."""
        raise NotImplementedError

    def forward(self, batch: Batch, optimizer_index: int) -> Tensor:
        """training_step, as a forward pass: what DistributedDataParallel wraps to sync gradients."""
        return self.training_step(batch, optimizer_index)

    @torch.no_grad()
    def try_on(self, batch: Batch, data_name: str) -> None:
        """Evaluate two rows before training: a model that does not fit the data gets one line, not a traceback."""
        x, y = batch
        self.eval()  # no dropout draws, no batch-norm statistics: this try-out leaves no trace
        try:
            self.evaluation_step((x[:2], y[:2]))
        except (RuntimeError, TypeError, ValueError, IndexError, ArithmeticError) as error:  # torch's own checks come here
            raise UserError(
                f"model {type(self.model).__name__} does not fit data {data_name} (inputs of shape {tuple(x.shape[1:])}): "
                f"{type(error).__name__}: {str(error).splitlines()[0]}"
            ) from None

    def evaluation_step(self, batch: Batch) -> dict[str, Tensor]:
        """Batch means of the metrics (``loss``, ``acc``, ...), as 0-d tensors; no gradients."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, batches: Iterator[Batch]) -> dict[str, Tensor]:
        """Metrics over a whole split: batch means weighted by batch size, synced once by the caller."""
        totals: dict[str, Tensor] = {}
        count = 0
        for batch in batches:
            n = len(batch[1])
            for name, value in self.evaluation_step(batch).items():
                totals[name] = totals.get(name, 0) + value.detach().float() * n
            count += n
        return {name: total / count for name, total in totals.items()}

    @torch.no_grad()
    def visualize(self, splits: dict[str, Batch]) -> dict[str, Visual]:
        """Figures for TensorBoard at the end of training (and every so often)."""
        return {}

    def example_input(self, batch: Batch) -> Tensor:
        """What the model graph is traced with."""
        return batch[0][:1]

    @torch.no_grad()
    def prediction_columns(self, x: Tensor) -> dict[str, list[str]]:
        """What ``src.predict`` writes beside each input row: column name → one value per row."""
        raise UserError(f"a {type(self).__name__} task makes no predictions from rows")

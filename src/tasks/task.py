"""The contract between a task (what one batch means) and the generic training loop.

The loop owns iteration, devices, precision, clipping, schedules, logging and checkpoints. A task
owns the model(s) and says, for one batch, what each optimizer minimizes, and which metrics
describe a split. Tasks never loop over data themselves.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from src.data.datamodule import Batch
from src.data.spec import DataSpec
from src.errors import ConfigError, UserError
from src.models.members import Ensemble, member_count
from src.visuals import Visual

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
ModelFactory = Callable[[int], nn.Module]  # the model for a given output size


class Task(nn.Module):
    """Base class: one model, one optimizer, one loss.

    A task is a config group option (``conf/task/<name>.yaml``): its ``_target_`` is called with
    ``model`` (a factory taking the output size the task asks for, or a built module), ``spec``
    (the data's description) and the yaml's own settings.

    With K stacked members (``trainer.seeds``), batches and outputs carry a leading member axis
    ([K, N, ...]) and every loss and metric is one value per member ([K]): write losses with
    ``batch_mean`` and metrics as means over the last axis, and the task works either way.
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
    #: Whether the task trains a generator against a discriminator (model=gan) instead of rows to outputs.
    adversarial: bool = False

    def __init__(self, model: nn.Module | ModelFactory, spec: DataSpec | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.model = model if isinstance(model, nn.Module) else model(self.output_size(spec))
        self.members = member_count(self.model)
        name = type(self.model).__name__
        if self.adversarial != (hasattr(self.model, "generator") and hasattr(self.model, "discriminator")):
            if self.adversarial:
                raise ConfigError("task", "adversarial", f"needs a model with a generator and a discriminator (model=gan), not {name}")
            raise UserError(
                f"task: a {type(self).__name__} task maps rows to outputs; model {name} is a generator "
                "with a discriminator, which trains with task=adversarial (model=gan's default: leave task out)"
            )
        #: Random generators of the task's own (a stacked GAN's noise, one per member), saved in checkpoints.
        self.generators: list[torch.Generator] = []

    @property
    def model(self) -> nn.Module:
        # Read every step. nn.Module's own way to a submodule, __getattr__, is called only after the usual
        # lookup failed and built an AttributeError: ~9,000 instructions a read against a dict lookup here.
        return self._modules["model"]

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

    def batch_mean(self, loss: Callable[..., Tensor], prediction: Tensor, target: Tensor) -> Tensor:
        """``loss`` averaged over the batch: one value, or one per member ([K]) for stacked members."""
        if self.members == 1:
            return loss(prediction, target)
        return loss(prediction, target, reduction="none").flatten(1).mean(1)

    def rows(self, batch: Batch) -> int:
        """How many rows a batch holds (per member)."""
        return batch[1].shape[1] if self.members > 1 else len(batch[1])

    def average_members(self, outputs: Tensor) -> Tensor:
        """The deep ensemble's output from the members' outputs [K, N, ...]: here their mean."""
        return outputs.mean(0)

    def solo_view(self) -> "Task":
        """This task computing plain [N, ...] outputs: itself for one model; for stacked members their
        ensemble (``average_members``), which pictures, the graph and predictions show."""
        if self.members == 1:
            return self
        view = copy.copy(self)
        view._modules = {**self._modules, "model": Ensemble(self.model, self.average_members)}
        view.members = 1
        return view

    @torch.no_grad()
    def try_on(self, batch: Batch, data_name: str) -> None:
        """Evaluate two rows before training: a model that does not fit the data gets one line, not a traceback."""
        x, y = batch
        self.eval()  # no dropout draws, no batch-norm statistics: this try-out leaves no trace
        try:
            self.evaluation_step(_first_rows(batch, 2, self.members))
        except (RuntimeError, TypeError, ValueError, IndexError, ArithmeticError) as error:  # torch's own checks come here
            raise UserError(
                f"model {type(self.model).__name__} does not fit data {data_name} (inputs of shape {tuple(x.shape[1 + (self.members > 1):])}): "
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
            n = self.rows(batch)
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

    def graph_module(self) -> nn.Module:
        """The module whose graph TensorBoard shows, traced with ``example_input``: the model."""
        return self.model

    @torch.no_grad()
    def prediction_columns(self, x: Tensor) -> dict[str, list[str]]:
        """What ``src.predict`` writes beside each input row: column name → one value per row."""
        raise UserError(f"task {type(self).__name__} makes no predictions from rows")


def _first_rows(batch: Batch, n: int, members: int) -> Batch:
    if members == 1:
        return batch[0][:n], batch[1][:n]
    return batch[0][:, :n], batch[1][:, :n]

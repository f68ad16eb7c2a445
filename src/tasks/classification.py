"""Binary (sigmoid + cross-entropy J) and multi-class (softmax + cross-entropy) classification."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src import visuals
from src.data.datamodule import Batch, shown_splits
from src.data.spec import DataSpec
from src.errors import ConfigError, check, number
from src.models.members import StackedConv2d
from src.tasks.task import ModelFactory, Task, Visual


def classification(model: nn.Module | ModelFactory, spec: DataSpec, label_smoothing: float = 0.0) -> Task:
    """Two classes: one sigmoid output (the notes' network); more: softmax over one logit per class.

    ``label_smoothing`` ε trains on the targets (1 - ε)·one-hot + ε/K (two classes: y(1 - ε) + ε/2); the
    losses of the checks and the test stay the plain cross-entropy, comparable from run to run."""
    if spec.target_type != "classification":
        raise ConfigError("task", "classification", f"data {spec.name} holds real-valued targets: use task=regression")
    check("task.label_smoothing", label_smoothing, number(0, 1, high_open=True))
    return (BinaryClassification if spec.num_classes == 2 else MulticlassClassification)(model, spec, label_smoothing)


class BinaryClassification(Task):
    """a = σ(z); J = -1/m Σ (y log a + (1-y) log(1-a)); prediction 1 if a > 0.5.

    The loss is computed from the logit z (log-sigmoid form), which equals J without overflow.
    """

    def __init__(self, model: nn.Module | ModelFactory, spec: DataSpec | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__(model, spec)
        self.class_names = (spec and spec.class_names) or ["0", "1"]
        self.label_smoothing = label_smoothing

    def logits(self, x: Tensor) -> Tensor:
        return self.model(x).squeeze(-1)

    def probabilities(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(x))

    def predict(self, x: Tensor) -> Tensor:
        return (self.probabilities(x) > 0.5).long()

    def training_step(self, batch: Batch, optimizer_index: int) -> Tensor:
        x, y = batch
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / 2
        return self.batch_mean(F.binary_cross_entropy_with_logits, self.logits(x), y)

    def evaluation_step(self, batch: Batch) -> dict[str, Tensor]:
        x, y = batch
        z = self.logits(x)
        return {
            "loss": self.batch_mean(F.binary_cross_entropy_with_logits, z, y),
            "acc": ((torch.sigmoid(z) > 0.5).float() == y).float().mean(-1),
        }

    def average_members(self, outputs: Tensor) -> Tensor:
        """The logit of the members' mean probability, computed in log space (no overflow)."""
        log_k = math.log(len(outputs))
        log_p = torch.logsumexp(F.logsigmoid(outputs), 0) - log_k
        log_not_p = torch.logsumexp(F.logsigmoid(-outputs), 0) - log_k
        return log_p - log_not_p

    @torch.no_grad()
    def visualize(self, splits: dict[str, Batch]) -> dict[str, Visual]:
        return _classification_visuals(self, splits, 2)

    @torch.no_grad()
    def prediction_columns(self, x: Tensor) -> dict[str, list[str]]:
        p = self.probabilities(x)
        return _class_columns(torch.stack([1 - p, p], dim=1), self.class_names)


class MulticlassClassification(Task):
    """P_i = e^{z_i} / Σ_j e^{z_j}; cross-entropy from the logits in log-sum-exp form."""

    def __init__(self, model: nn.Module | ModelFactory, spec: DataSpec, label_smoothing: float = 0.0) -> None:
        super().__init__(model, spec)
        self.num_classes = spec.num_classes
        self.class_names = spec.class_names or [str(i) for i in range(spec.num_classes)]
        self.training_loss = functools.partial(_cross_entropy, label_smoothing=label_smoothing) if label_smoothing else _cross_entropy

    def output_size(self, spec: DataSpec) -> int:
        return spec.num_classes

    def probabilities(self, x: Tensor) -> Tensor:
        return torch.softmax(self.model(x), dim=-1)

    def predict(self, x: Tensor) -> Tensor:
        return self.model(x).argmax(-1)

    def training_step(self, batch: Batch, optimizer_index: int) -> Tensor:
        x, y = batch
        return self.batch_mean(self.training_loss, self.model(x), y)

    def evaluation_step(self, batch: Batch) -> dict[str, Tensor]:
        x, y = batch
        z = self.model(x)
        return {"loss": self.batch_mean(_cross_entropy, z, y), "acc": (z.argmax(-1) == y).float().mean(-1)}

    def average_members(self, outputs: Tensor) -> Tensor:
        """Logits whose softmax is the members' mean probability: log of the mean softmax."""
        return torch.logsumexp(torch.log_softmax(outputs, -1), 0) - math.log(len(outputs))

    @torch.no_grad()
    def visualize(self, splits: dict[str, Batch]) -> dict[str, Visual]:
        return _classification_visuals(self, splits, self.num_classes)

    @torch.no_grad()
    def prediction_columns(self, x: Tensor) -> dict[str, list[str]]:
        return _class_columns(self.probabilities(x), self.class_names)


def _cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """F.cross_entropy with the classes on the last axis, whatever leads ([N, C] or [K, N, C])."""
    # [N, C] as it is: the no-op movedim's view and its autograd node cost ~15 µs a step on a small MLP.
    logits = logits if logits.dim() == 2 else logits.movedim(-1, 1)
    return F.cross_entropy(logits, target, reduction=reduction, label_smoothing=label_smoothing)


def _class_columns(probabilities: Tensor, class_names: list[str]) -> dict[str, list[str]]:
    """The most probable class of each row and its probability."""
    best, index = probabilities.max(dim=1)
    return {"prediction": [class_names[i] for i in index.tolist()], "probability": [f"{p:.6f}" for p in best.tolist()]}


def _classification_visuals(task, splits: dict[str, Batch], num_classes: int) -> dict[str, Visual]:
    out: dict[str, Visual] = {}
    for split in shown_splits(splits):
        x, y = splits[split]
        predicted = task.predict(x)
        matrix = visuals.confusion_matrix(predicted, y.long(), num_classes)
        out[f"{split}/confusion_matrix"] = visuals.confusion_matrix_image(matrix, task.class_names)
        out[f"{split}/confusion_matrix_table"] = visuals.confusion_matrix_markdown(matrix, task.class_names)
        if x.dim() == 4:  # images
            wrong = (predicted != y.long()).nonzero().flatten()[:32]
            if len(wrong):
                pairs = [(task.class_names[int(y[i])], task.class_names[int(predicted[i])]) for i in wrong]
                labels = [f"{actual} as {guess}" for actual, guess in pairs]  # the picture's font has no arrow
                out[f"{split}/misclassified"] = visuals.image_grid(x[wrong], columns=8, scale=6, labels=labels)
                order = ", ".join(f"{actual}→{guess}" for actual, guess in pairs)
                out[f"{split}/misclassified_labels"] = f"actual→predicted, in grid order: {order}"
    x_train, y_train = splits["train"]
    if x_train.dim() == 2 and x_train.shape[1] == 2:
        out["train/decision_boundary"] = visuals.decision_boundary_image(task.probabilities, x_train, y_train.long())
    if x_train.dim() == 4:
        # The first convolution's kernels (of the first member, when several seeds are stacked: [K, C_out, C_in, h, w]).
        first_conv = next((m.weight for m in task.model.modules() if isinstance(m, (nn.Conv2d, StackedConv2d))), None)
        if first_conv is not None:
            filters = first_conv.detach() if first_conv.dim() == 4 else first_conv[0].detach()
            out["model/first_layer_filters"] = visuals.image_grid(filters.mean(1, keepdim=True), columns=8, scale=16, pad=4)
    return out

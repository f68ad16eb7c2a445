"""K members of one model (one per seed) as one module: every parameter and buffer gains a leading member axis.

A stacked model takes and returns tensors shaped ``[K, N, ...]``: member k's rows at index k (a
batch all members share is passed as an expanded view, which costs no copy). The layers have
stacked forms that run all members in one kernel: Linear as a batched matmul, Conv2d as a grouped
convolution, BatchNorm2d over K×C channels (so each member keeps its own statistics). A model
whose ``forward`` works on any leading dimensions says so with ``stackable = True`` and gets its
layers swapped; any other model (the recurrent one) runs its members one after another, from
stacked parameters all the same. Either way member k's slice of every tensor is, name for name,
the state of the model trained alone with its seed.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from src.models.synced_batch_norm import batch_norm_over_ranks, normalizes_over_ranks


def stack(models: list[nn.Module]) -> nn.Module:
    """One module computing every model of ``models`` (same architecture, different weights)."""
    first = models[0]
    if isinstance(first, nn.Linear):
        return StackedLinear(models)
    if isinstance(first, nn.Sequential) and _grouped_convolutions(first):
        return GroupedSequential(*[_grouped([model[i] for model in models]) for i in range(len(first))])
    if not _has_state(first):
        return copy.deepcopy(first)  # an activation, pooling, flattening: the same for every member
    stackable = isinstance(first, nn.Sequential) or getattr(first, "stackable", False)
    if stackable and not first._parameters and not first._buffers:  # tensors of its own would need a stacked form
        stacked = copy.copy(first)  # the same class and settings, with stacked children
        stacked._parameters, stacked._buffers = {}, {}
        stacked._modules = {name: stack([getattr(model, name) for model in models]) for name in first._modules}
        return stacked
    return PerMember(models)


def _grouped(layers: list[nn.Module]) -> nn.Module:
    if isinstance(layers[0], nn.Conv2d):
        return StackedConv2d(layers)
    if isinstance(layers[0], nn.BatchNorm2d):
        return StackedBatchNorm2d(layers)
    return copy.deepcopy(layers[0])


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _plain_convolution(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.padding_mode == "zeros"


def _grouped_convolutions(sequence: nn.Sequential) -> bool:
    """Convolution blocks that can run in the grouped layout [N, K×C, H, W] from their first layer to their last."""
    def fits(layer: nn.Module) -> bool:
        if isinstance(layer, nn.BatchNorm2d):
            return layer.affine and layer.track_running_stats
        return _plain_convolution(layer) or not _has_state(layer)  # pooling, dropout, activations

    return len(sequence) > 0 and _plain_convolution(sequence[0]) and all(fits(layer) for layer in sequence)


def _stacked(tensors: list[Tensor], parameter: bool = True) -> Tensor:
    value = torch.stack([t.detach() for t in tensors])
    return nn.Parameter(value, requires_grad=tensors[0].requires_grad) if parameter else value


class StackedLinear(nn.Module):
    """``y_k = x_k W_kᵀ + b_k`` for every member k in one batched matmul."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = _stacked([layer.weight for layer in layers])
        self.bias = _stacked([layer.bias for layer in layers]) if layers[0].bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        # As (W xᵀ)ᵀ: on a CPU the batched matmuls forward and backward run 15–25% faster than x Wᵀ (2–3× for
        # 8 to 15 outputs, the logits), and the next layer's xᵀ of this transposed view is contiguous again.
        xt = x.mT
        y = torch.bmm(self.weight, xt) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(2), self.weight, xt)
        return y.mT


class StackedConv2d(nn.Module):
    """K convolutions as one grouped convolution over the grouped layout [N, K×C, H, W]."""

    def __init__(self, convs: list[nn.Conv2d]) -> None:
        super().__init__()
        first = convs[0]
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.weight = _stacked([conv.weight for conv in convs])  # [K, C_out, C_in, h, w]
        self.bias = _stacked([conv.bias for conv in convs]) if first.bias is not None else None

    def forward(self, x: Tensor, shared: bool = False) -> Tensor:
        """``shared``: one batch [N, C, H, W] that every member sees; one ungrouped convolution computes them all."""
        bias = None if self.bias is None else self.bias.flatten()
        groups = 1 if shared else len(self.weight)
        return F.conv2d(x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.dilation, groups=groups)


class StackedBatchNorm2d(nn.Module):
    """K batch norms over the grouped layout: channel k×C + c is member k's channel c."""

    synchronized = False  # under torchrun: training statistics over every rank's rows (synced_batch_norm.py)

    def __init__(self, norms: list[nn.BatchNorm2d]) -> None:
        super().__init__()
        first = norms[0]
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = _stacked([norm.weight for norm in norms])
        self.bias = _stacked([norm.bias for norm in norms])
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, _stacked([getattr(norm, name) for norm in norms], parameter=False))

    def forward(self, x: Tensor) -> Tensor:
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # a cumulative average, as nn.BatchNorm2d computes it
                momentum = 1.0 / float(self.num_batches_tracked[0])
            if self.synchronized and normalizes_over_ranks(self):
                return batch_norm_over_ranks(
                    x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.flatten(), self.bias.flatten(), momentum, self.eps
                )
        return F.batch_norm(
            x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.flatten(), self.bias.flatten(),
            self.training, momentum or 0.0, self.eps,
        )


class GroupedSequential(nn.Sequential):
    """Convolution blocks run in the grouped layout [N, K×C, H, W]; in and out, the member layout [K, N, C, H, W]."""

    def forward(self, x: Tensor) -> Tensor:
        members = len(self[0].weight)
        if x.stride(0) == 0:  # an expanded view: every member sees the same images
            x = self[0](x[0], shared=True)
        else:
            x = self[0](x.transpose(0, 1).flatten(1, 2))
        for layer in list(self)[1:]:
            x = layer(x)
        return x.unflatten(1, (members, -1)).transpose(0, 1)


class PerMember(nn.Module):
    """Any model: its members run one after another, each from its slice of the stacked parameters.

    The module holds the first model's submodules with stacked tensors in place of its own, so
    its state_dict has the model's own names; ``forward`` calls the model's class on each slice.
    """

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        template = copy.deepcopy(models[0])
        states = [dict(model.named_parameters()) | dict(model.named_buffers()) for model in models]
        for name, tensor in list(template.named_parameters()) + list(template.named_buffers()):
            owner_name, _, attribute = name.rpartition(".")
            owner = template.get_submodule(owner_name)
            values = [state[name] for state in states]
            if isinstance(tensor, nn.Parameter):
                setattr(owner, attribute, _stacked(values))
            else:
                owner.register_buffer(attribute, _stacked(values, parameter=False))
        object.__setattr__(self, "template", template)  # not a child: its tensors are this module's own
        self._parameters, self._buffers, self._modules = template._parameters, template._buffers, template._modules

    def train(self, mode: bool = True) -> "PerMember":
        self.template.training = mode  # not a child, so nn.Module.train does not reach it; a batch norm reads its own flag
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        tensors = dict(self.named_parameters()) | dict(self.named_buffers())
        outputs = [
            functional_call(self.template, {name: tensor[k] for name, tensor in tensors.items()}, (x[k],))
            for k in range(len(x))
        ]
        return torch.stack(outputs)


def member_count(model: nn.Module) -> int:
    """K for a stacked model (the leading size its tensors share), 1 for a plain one."""
    return getattr(model, "members", 1)


def member_state(state: dict[str, Tensor], index: int) -> dict[str, Tensor]:
    """Member ``index``'s state, loadable into the plain model."""
    return {name: tensor[index] for name, tensor in state.items()}


class Ensemble(nn.Module):
    """Stacked members as one plain model: [N, ...] in, the members' outputs combined by ``average`` out."""

    def __init__(self, stacked: nn.Module, average: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.stacked, self.members, self.average = stacked, member_count(stacked), average

    def forward(self, x: Tensor) -> Tensor:
        return self.average(self.stacked(x.expand(self.members, *x.shape)))

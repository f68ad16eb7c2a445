"""Batch norm over every rank's rows under torchrun: the global batch's statistics, as one process computes them.

torch's ``SyncBatchNorm`` runs on GPUs only; this runs wherever torch.distributed does (gloo on the CPU,
nccl on CUDA). One all-reduce per layer and step forward, and one backward: each rank's rows get the
gradient they get in one process.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks; its gradient is the sum of theirs (each rank's rows feed every
    rank's loss). torch.distributed.nn's all_reduce does this, deprecated (torch 2.13 warns) for a private module."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> Tensor:
        total = gradient.clone()
        dist.all_reduce(total)
        return total


def batch_norm_over_ranks(
    x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None, bias: Tensor | None, momentum: float, eps: float
) -> Tensor:
    """``F.batch_norm`` in training mode over the rows of every rank (channels on axis 1), in float32 (the
    rows' count too) whatever the autocast, the output back in the input's type.

    One all-reduce of each channel's sum and sum of squares, taken from the running mean (the same on every
    rank): near the batch's mean, so the variance keeps its digits, as a second pass over the rows would.
    """
    given, x = x.dtype, x.float()
    axes, shape = [0, *range(2, x.dim())], (1, -1, *[1] * (x.dim() - 2))
    shifted = x - running_mean.detach().float().view(shape)
    rows = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
    totals = SumOverRanks.apply(torch.cat([shifted.sum(axes), shifted.square().sum(axes), rows]))
    channels, count = x.shape[1], totals[-1]
    shift_of_mean = totals[:channels] / count
    var = totals[channels:-1] / count - shift_of_mean.square()  # biased, as batch norm normalizes
    normalized = (shifted - shift_of_mean.view(shape)) * torch.rsqrt(var + eps).view(shape)
    with torch.no_grad():
        running_mean.add_(shift_of_mean.to(running_mean.dtype), alpha=momentum)  # lerp toward the batch mean
        running_var.lerp_((var * count / (count - 1)).to(running_var.dtype), momentum)  # unbiased, as torch keeps it
    return (normalized if weight is None else normalized * weight.view(shape) + bias.view(shape)).to(given)


def normalizes_over_ranks(module: nn.Module) -> bool:
    """Whether a batch norm in ``module``'s mode normalizes over every rank: in training mode, with gradients
    or without (a GAN's generator in the discriminator's turn); a forward of rank 0 alone (a picture, the graph,
    the try-out) runs in eval mode, as every forward one rank makes alone must."""
    return module.training and dist.is_initialized() and dist.get_world_size() > 1


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A torch batch norm (1-D, 2-D or 3-D) whose training statistics come from every rank's rows."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {x.dim()}-D)")

    def forward(self, x: Tensor) -> Tensor:
        if not (normalizes_over_ranks(self) and self.track_running_stats):
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return batch_norm_over_ranks(x, self.running_mean, self.running_var, self.weight, self.bias, momentum, self.eps)


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def synchronize_batch_norms(module: nn.Module) -> None:
    """In place: each torch batch norm in ``module`` becomes a SyncedBatchNorm holding the same tensors (the
    optimizers' parameters, the checkpoints' keys), also as the template stacked members run one after another
    (``PerMember``), and stacked members' grouped batch norms are told to synchronize."""
    for name, child in module.named_children():
        if type(child) in BATCH_NORMS:
            setattr(module, name, _synced(child))
        elif type(getattr(child, "template", None)) in BATCH_NORMS:
            object.__setattr__(child, "template", _synced(child.template))  # its tensors stay the stacked ones
        else:
            if hasattr(child, "synchronized"):
                child.synchronized = True
            synchronize_batch_norms(child)


def _synced(norm: nn.Module) -> SyncedBatchNorm:
    synced = SyncedBatchNorm(norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats, device="meta")
    synced._parameters, synced._buffers = norm._parameters, norm._buffers
    return synced.train(norm.training)

"""Synchronised batch normalisation on any device and with any ``torch.distributed`` backend (gloo on CPU included).

``torch.nn.SyncBatchNorm`` only runs on CUDA tensors, so a distributed run on CPU (gloo) cannot use it. In training
mode, :class:`AnyDeviceSyncBatchNorm` computes its statistics over the samples of every process with two
differentiable all-reduces per layer (C + 1 and C numbers), in float32 (or float64):

    n = Σ_p n_p                  μ = Σ_p Σ_i x_pi / n                  σ² = Σ_p Σ_i (x_pi - μ)² / n

(two passes, so no cancellation of E[x²] - μ²), then y = (x - μ) / sqrt(σ² + eps) · γ + β. The backward pass sums the
gradients of μ and σ² over the processes too, so with DDP averaging the parameter gradients, P processes of B samples
give the gradient of one process with the P·B samples (tests/test_distributed.py). Running statistics are updated as
torch's BN does (unbiased σ²·n/(n-1), ``momentum`` or, if None, a cumulative average).

Outside a distributed run (torch.distributed not initialised, or one process), and in eval mode (as with torch's
SyncBN, eval never synchronises), the layer is exactly ``nn.BatchNorm*`` (it calls its forward). It takes (N, C, *)
inputs of any rank, as ``nn.SyncBatchNorm``, and synchronises over the default process group.

Use it with ``norm_cfg=dict(type='AnyDeviceSyncBN')`` (registered in mmengine's root MODELS registry, so every scope
finds it), or convert a built model with :func:`convert_any_device_sync_bn`: the layers that are not built from a
``norm_cfg`` (1×1-conv MLPs, the EMA copies) are converted as well. On GPUs with NCCL, torch's own SyncBN (one
all-gather) is the faster choice; this layer is for CPU runs, tests and other backends.
"""
import math
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def distributed_world_size() -> int:
    """Number of processes of the default group, 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _SumOverProcesses(torch.autograd.Function):
    """y = Σ_p x_p on every process. Each process' y feeds its own loss, so the gradient of x is summed likewise."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        g = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(g)
        return g


def sum_over_processes(x: Tensor) -> Tensor:
    """Differentiable element-wise sum of ``x`` (same shape on every process) over the processes; ``x`` itself
    outside a distributed run."""
    return _SumOverProcesses.apply(x) if distributed_world_size() > 1 else x


def global_moments(x: Tensor, weight: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-channel mean and biased variance of ``x`` over its samples and positions on every process.

    Args:
        x: (N, C, *) features, channels in dim 1.
        weight: optional (N,) per-sample weights (a 0/1 mask leaves the samples of weight 0 out).

    Returns:
        mean (C,), var (C,) and the count n () (Σ of the weights times the positions per sample; with n = 0 the
        mean and variance are 0), in float32 (float64 for float64 ``x``), differentiable through ``x``.
    """
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    dims = [0, *range(2, x.dim())]
    positions = math.prod(x.shape[2:])
    if weight is None:
        w = None
        local_sum = x.sum(dims)
        count = torch.full((1,), float(x.shape[0] * positions), dtype=x.dtype, device=x.device)
    else:
        w = weight.to(x.dtype).view(-1, *(1,) * (x.dim() - 1))  # (N, 1, ...)
        local_sum = (w * x).sum(dims)
        count = (w.sum() * positions).view(1)
    totals = sum_over_processes(torch.cat([local_sum, count]))
    n = totals[-1]
    mean = totals[:-1] / n.clamp_min(1)
    sq = (x - mean.view(-1, *(1,) * (x.dim() - 2))).square()
    var = sum_over_processes((sq if w is None else w * sq).sum(dims)) / n.clamp_min(1)
    return mean, var, n


def normalize_with(x: Tensor, mean: Tensor, var: Tensor, eps: float, weight: Optional[Tensor],
                   bias: Optional[Tensor]) -> Tensor:
    """(x - mean) / sqrt(var + eps) · weight + bias along dim 1 of x (N, C, *); statistics (C,); same dtype as x."""
    shape = (-1, *(1,) * (x.dim() - 2))
    y = (x.to(mean.dtype) - mean.view(shape)) * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y.to(x.dtype)


@MMENGINE_MODELS.register_module('AnyDeviceSyncBN')
class AnyDeviceSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics span all processes, on any device and backend (see the module doc).

    Same constructor, parameters and buffers as ``nn.BatchNorm*`` (checkpoints are interchangeable);
    input (N, C, *) -> output of the same shape.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'{type(self).__name__} expects (N, C, *) inputs, got {x.dim()}-D')

    def update_running_stats(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        """Torch BN's update in training with tracked statistics: batch mean and unbiased variance of n () samples
        (a batch of no sample, possible with masks, leaves them unchanged)."""
        if not (self.training and self.track_running_stats):
            return
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            factor = (n > 0).to(self.running_mean.dtype) * factor
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
            unbiased = var * n / (n - 1).clamp_min(1)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if distributed_world_size() == 1 or not self.training:  # eval: per process, as torch's SyncBN
            return super().forward(x)
        mean, var, n = global_moments(x)
        self.update_running_stats(mean.detach(), var.detach(), n)
        return normalize_with(x, mean, var, self.eps, self.weight, self.bias)


def convert_any_device_sync_bn(module: nn.Module) -> nn.Module:
    """Replace every batch norm of ``module`` (a ``_BatchNorm``: ``nn.BatchNorm*``, ``nn.SyncBatchNorm``) by an
    :class:`AnyDeviceSyncBatchNorm` sharing its parameters and buffers (the same tensors, so optimisers, EMA copies
    and checkpoints see no difference), like ``nn.SyncBatchNorm.convert_sync_batchnorm``.

    Layers that already are :class:`AnyDeviceSyncBatchNorm` (Odin's ``MaskedBatchNorm1d`` included) are kept.
    Returns the converted module (a new object only if ``module`` itself is a batch norm).
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, AnyDeviceSyncBatchNorm):
        converted = AnyDeviceSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                           module.track_running_stats)
        converted.weight, converted.bias = module.weight, module.bias
        converted.running_mean, converted.running_var = module.running_mean, module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_any_device_sync_bn(child))
    return module

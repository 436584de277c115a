"""BYOL's two-layer MLP (Linear-BN-ReLU-Linear) whose batch statistics ignore rows marked invalid.

Odin projects and predicts one vector per (image, mask), and discards the masks that are empty in a view (Sec. 3.1).
Keeping every image's K rows (empty ones included) keeps the shapes static, so nothing waits on the device
(no boolean indexing); :class:`MaskedBatchNorm1d` then takes its training statistics over the valid rows only, so
the empty masks neither shift the normalisation of the others nor enter the running statistics.
"""
from typing import Optional

import torch
from torch import Tensor, nn


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over (N, C) whose training statistics use only the rows where ``valid`` (N,) is set.

    With ``valid=None``, or in eval mode, it is exactly ``nn.BatchNorm1d`` (same parameters and buffers, so
    checkpoints are interchangeable). Invalid rows are still normalised (with the valid rows' statistics); their
    outputs are meant to be ignored. Statistics are per process (no SyncBN). Needs a float ``momentum``.
    """

    def forward(self, x: Tensor, valid: Optional[Tensor] = None) -> Tensor:
        if valid is None or not self.training:
            return super().forward(x)
        w = valid.to(x.dtype).unsqueeze(1)  # (N, 1)
        n = w.sum()
        mean = (w * x).sum(0) / n.clamp_min(1)
        var = (w * (x - mean).square()).sum(0) / n.clamp_min(1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (n > 0).to(self.running_mean.dtype) * self.momentum  # no valid row: keep the stats
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class MaskedMLP(nn.Module):
    """Linear(C, hid, no bias) - MaskedBatchNorm1d - ReLU - Linear(hid, D): (N, C) -> (N, D).

    The projector g and predictor q of Odin (BYOL's MLP, Sec. 3.1), applied to mask-pooled vectors (with
    ``valid``) or to every cell of a map (``valid=None``, for the object discovery network's projections z0).
    """

    def __init__(self, in_channels: int, hid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hid_channels, bias=False)
        self.bn = MaskedBatchNorm1d(hid_channels)
        self.fc2 = nn.Linear(hid_channels, out_channels)

    def forward(self, x: Tensor, valid: Optional[Tensor] = None) -> Tensor:
        return self.fc2(self.bn(self.fc1(x), valid).relu())

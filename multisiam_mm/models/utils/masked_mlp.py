"""BYOL's two-layer MLP (Linear-BN-ReLU-Linear) whose batch statistics ignore rows marked invalid.

Odin projects and predicts one vector per (image, mask), and discards the masks that are empty in a view (Sec. 3.1).
Keeping every image's K rows (empty ones included) keeps the shapes static, so nothing waits on the device
(no boolean indexing); :class:`MaskedBatchNorm1d` then takes its training statistics over the valid rows only, so
the empty masks neither shift the normalisation of the others nor enter the running statistics. In a distributed
run the statistics are those of the valid rows of all processes (masked sums and counts all-reduced, see
``sync_norm.py``), so P processes behave as one process with the P local batches.
"""
from typing import Optional

from torch import Tensor, nn

from .sync_norm import AnyDeviceSyncBatchNorm, global_moments, normalize_with


class MaskedBatchNorm1d(AnyDeviceSyncBatchNorm):
    """BatchNorm1d over (N, C) whose training statistics use only the rows where ``valid`` (N,) is set.

    With ``valid=None``, or in eval mode, it is :class:`AnyDeviceSyncBatchNorm`, i.e. exactly ``nn.BatchNorm1d``
    outside a distributed run (same parameters and buffers, so checkpoints are interchangeable). Invalid rows are
    still normalised (with the valid rows' statistics); their outputs are meant to be ignored. Statistics span all
    processes when torch.distributed is initialised with more than one.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() != 2:
            raise ValueError(f'MaskedBatchNorm1d expects (N, C) inputs, got {x.dim()}-D')

    def forward(self, x: Tensor, valid: Optional[Tensor] = None) -> Tensor:
        if valid is None or not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        mean, var, n = global_moments(x, valid)
        self.update_running_stats(mean.detach(), var.detach(), n)
        return normalize_with(x, mean, var, self.eps, self.weight, self.bias)


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

"""Non-local self-attention with MultiSiam's similarity (eqs. 8-9), shared by the predictor and the MoCo variant."""
import torch
import torch.nn.functional as nnf
from torch import Tensor


def positive_cosine_sq(R: Tensor) -> Tensor:
    """Eq. 9: sim(R_n, R_m) = max(cos(R_n, R_m), 0)^2 for every pair of cells.

    R: (B, C, H, W) -> (B, N, N) with N = H·W.
    """
    R_hat = nnf.normalize(R.flatten(2), dim=1)  # (B, C, N)
    return torch.bmm(R_hat.transpose(1, 2), R_hat).clamp(min=0).pow(2)


def propagate(R: Tensor, V: Tensor, residual: bool = False) -> Tensor:
    """Eq. 8: Q_n = sum_m sim(R_n, R_m) · V_m (V = q(R), the local prediction), optionally + V_n (Table A5).

    The sum is not normalised (as the paper writes it); the cosine loss that follows is scale-invariant.
    R: (B, C, H, W) similarity features; V: (B, D, H, W) values -> (B, D, H, W).
    """
    B, D, H, W = V.shape
    Q = torch.bmm(V.flatten(2), positive_cosine_sq(R).transpose(1, 2)).view(B, D, H, W)
    return Q + V if residual else Q

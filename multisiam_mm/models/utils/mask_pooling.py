"""Masks from k-means labels and mask pooling (Odin eq. 1; also DetCon's object-level pooling).

Shapes: ``B`` images, ``K`` masks per image, ``C`` channels, ``H x W`` the feature map the masks live on.
"""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor


def labels_to_masks(labels: Tensor, num_masks: int) -> Tensor:
    """One binary mask per label: labels (B, H, W) int in [0, K) -> masks (B, K, H, W) float32 (a partition)."""
    return F.one_hot(labels, num_masks).permute(0, 3, 1, 2).float()


def mask_pool(h: Tensor, masks: Tensor) -> Tuple[Tensor, Tensor]:
    """Mask-pooled hidden vectors of eq. 1: ``h^k = sum_ij m^k[i, j] h[i, j] / sum_ij m^k[i, j]``.

    Args:
        h: (B, C, H, W) hidden vectors.
        masks: (B, K, H, W) non-negative (binary or soft) masks on the same grid.

    Returns:
        pooled (B, K, C), zero for an empty mask, and the mask mass ``sum_ij m^k[i, j]`` (B, K); a mask is empty
        (to be discarded, Sec. 3.1) where its mass is 0.
    """
    masks = masks.to(h.dtype)
    mass = masks.sum(dim=(2, 3))
    pooled = masks.flatten(2) @ h.flatten(2).transpose(1, 2)  # (B, K, C)
    return pooled / mass.clamp_min(1e-6).unsqueeze(-1), mass

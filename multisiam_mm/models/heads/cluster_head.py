"""ClusterHead: MultiSiam's 2-D clustering consistency (Sec. 3.3, eqs. 8-10; supplement B.1 and Table A5).

Given the aligned online map R and the aligned target map R' (one-to-one cell correspondence, Sec. 3.2):

    Kmeans(R')_n     centroid assigned to cell n by per-image k-means on R' (K = 3, cosine)      (Sec. 3.3)
    q(R)             local predictor, 1×1 convs 256(+2 with offset alignment) -> 4096 -> 256
    Q_n              = sum_m max(cos(R_n, R_m), 0)^2 · q(R)_m                                    (eqs. 8-9)
    L_2D_cluster     = 1/HW sum_n -cos(Q_n, Kmeans(R')_n)                                        (eq. 10)

Targets (``target`` argument), the ablations of Table 3b and supplement B.1:
    'centroid'  the paper's loss, eq. 10;
    'dense'     "dense clustering": mean over every cell m of n's cluster of -cos(Q_n, R'_m), which equals
                -<Q̂_n, mean_{m in c(n)} R̂'_m>, the un-normalised mean of the normalised members;
    'pixel'     MultiSiam without K-means (supplement eq. 3): -cos(Q_n, R'_n).
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as nnf
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from ..utils.attention import propagate
from ..utils.kmeans import batched_kmeans, gather_assigned
from ..utils.layers import conv_mlp

TARGETS = ('centroid', 'dense', 'pixel')
METRICS = ('cosine', 'euclidean')


def cluster_means(x: Tensor, assignment: Tensor, num_clusters: int) -> Tensor:
    """Mean of the members of each cluster, gathered back to every cell.

    x: (B, N, D); assignment: (B, N) long in [0, K) -> (B, N, D). Empty clusters are never gathered.
    """
    onehot = nnf.one_hot(assignment, num_clusters).to(x.dtype)  # (B, N, K)
    sums = torch.bmm(onehot.transpose(1, 2), x)  # (B, K, D)
    return gather_assigned(sums / onehot.sum(1).clamp(min=1).unsqueeze(-1), assignment)


@MODELS.register_module()
class ClusterHead(BaseModule):
    """Predictor q(·) + self-attention and the k-means clustering loss of MultiSiam.

    Args:
        in_channels: channels of G (256).
        hid_channels: predictor hidden width (4096).
        out_channels: prediction width (256), equal to the target map's channels.
        offset_channels: extra input channels of R (2 with offset alignment, eq. 6; else 0).
        self_attention: apply eqs. 8-9 after the local predictor (Table 4, "+ self-attention").
        residual: add q(R) back after the attention (supplement Table A5; the paper's best, offset, uses False).
        num_clusters: K of the per-image k-means (Table 3a; 3 by default).
        metric: 'cosine' or 'euclidean' k-means (Table 3b).
        kmeans_iters: fixed number of Lloyd iterations (no host synchronisation, see utils/kmeans.py).
        target: 'centroid' | 'dense' | 'pixel' (see the module docstring).
    """

    def __init__(self, in_channels: int = 256, hid_channels: int = 4096, out_channels: int = 256,
                 offset_channels: int = 0, self_attention: bool = True, residual: bool = False,
                 num_clusters: int = 3, metric: str = 'cosine', kmeans_iters: int = 6, target: str = 'centroid',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if target not in TARGETS:
            raise ValueError(f'ClusterHead.target must be one of {TARGETS}, got {target!r}')
        if metric not in METRICS:
            raise ValueError(f'ClusterHead.metric must be one of {METRICS}, got {metric!r}')
        if int(num_clusters) < 1:
            raise ValueError(f'ClusterHead.num_clusters must be >= 1, got {num_clusters}')
        if int(kmeans_iters) < 1:
            raise ValueError(f'ClusterHead.kmeans_iters must be >= 1, got {kmeans_iters}')
        # BYOL's predictor (mmpretrain's layout, as the 1-D branch) as 1×1 convs (Sec. 3.2)
        self.predictor = conv_mlp(in_channels + offset_channels, hid_channels, out_channels, with_bias=True,
                                  with_last_bias=False)
        self.self_attention = self_attention
        self.residual = residual
        self.num_clusters = int(num_clusters)
        self.metric = metric
        self.kmeans_iters = int(kmeans_iters)
        self.target = target

    def predict(self, R: Tensor) -> Tensor:
        """Q = attention(q(R)) (eq. 8) or q(R) without attention. R: (B, C(+2), H, W) -> Q: (B, D, H, W)."""
        V = self.predictor(R)
        return propagate(R, V, self.residual) if self.self_attention else V

    @torch.no_grad()
    def cluster_targets(self, R_t: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Per-cell targets from the aligned target map R' (B, D, H, W) -> ((B, N, D), k-means statistics)."""
        x = R_t.flatten(2).transpose(1, 2).float()  # (B, N, D), k-means in fp32 even under AMP
        if self.target == 'pixel':
            return x, {}
        km = batched_kmeans(x, self.num_clusters, num_iters=self.kmeans_iters, metric=self.metric)
        sizes = nnf.one_hot(km.assignment, self.num_clusters).sum(1).float()  # (B, K)
        stats = dict(kmeans_inertia=km.inertia.mean(),
                     kmeans_max_cluster_frac=(sizes.max(1).values / x.shape[1]).mean(),
                     kmeans_empty_clusters=(sizes == 0).float().sum(1).mean())
        if self.target == 'dense':
            return cluster_means(nnf.normalize(x, dim=-1), km.assignment, self.num_clusters), stats
        return gather_assigned(km.centroids, km.assignment), stats

    def loss(self, R: Tensor, R_t: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """L_2D (eq. 10, or its 'dense' / 'pixel' variants) for one direction.

        R: (B, C(+2), H, W) aligned online map; R_t: (B, D, H, W) aligned target map R' (no gradient).
        Returns the scalar loss and detached k-means statistics for logging.
        """
        Q = self.predict(R).flatten(2).transpose(1, 2).float()  # (B, N, D)
        T, stats = self.cluster_targets(R_t.detach())
        Q_hat = nnf.normalize(Q, dim=-1)
        if self.target == 'dense':
            per_cell = -(Q_hat * T).sum(-1)
        else:
            per_cell = -(Q_hat * nnf.normalize(T, dim=-1)).sum(-1)
        return per_cell.mean(), stats

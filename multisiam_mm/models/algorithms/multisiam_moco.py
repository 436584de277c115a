"""MoCo-based MultiSiam (supplement B.2; Table 1 "MultiSiam††").

Differences from the BYOL-based MultiSiam: no predictor, so the alignment comes BEFORE the projectors and the
self-attention moves into the online projector; the loss is contrastive with a momentum queue of negatives.

    R  = RoIAlign(F, B),  R' = RoIAlign(F', B')                               (B.2 eqs. 4-5; F, F' flipped back)
    G_n = sum_m sim(R_n, R_m) · g_θ(R_m),   G' = g_ξ(R')                        (eqs. 6-7, sim of main eq. 9)
    k+_n = Kmeans(G')_n                                                        (the centroid of n's cluster)
    L_n = -log exp(Ĝ_n·k̂+_n/τ) / (exp(Ĝ_n·k̂+_n/τ) + sum_{k-} exp(Ĝ_n·k-/τ))    (eqs. 8-9, τ = 0.2)

The supplement prints eq. 9 without the -log; we use the InfoNCE it cites (DenseCL). Negatives k- are a DenseCL-style
queue of one key per image (the mean of its normalised target map). The 1-D branch is MoCo v2 (pooled projector,
InfoNCE against a queue of image keys); the total is λ·L1D + (1−λ)·L2D (main eq. 11).
The target (key) network is an EMA with constant momentum (MoCo: 0.999, i.e. ``momentum=0.001`` here).
Keys are gathered from all processes before they enter the queues.

Directions (``loss_directions``; the supplement does not say): 'one' (default) is MoCo v2's and DenseCL's loss, the
queries of v against the keys of v' only, one key per image enqueued, so MoCo v2's lr 0.03 × bs/256 is the step it
was tuned for. 'mean' symmetrises, ½ (L(v, v') + L(v', v)), same step scale, two keys per image; 'sum' adds the two
directions at full weight, about twice the gradient of MoCo v2 under the same lr (halve the lr to compare).
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as nnf
from mmengine.dist import all_gather, get_world_size
from mmengine.model import ExponentialMovingAverage
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..utils.alignment import align_pair
from ..utils.attention import propagate
from ..utils.ema import ema_tau_log
from ..utils.kmeans import batched_kmeans, gather_assigned
from .multisiam import view_geometry

# (query view, key view) pairs and the weight of each term, per ``loss_directions``
LOSS_DIRECTIONS = {'one': (((0, 1),), 1.0), 'mean': (((0, 1), (1, 0)), 0.5), 'sum': (((0, 1), (1, 0)), 1.0)}


def info_nce(q: Tensor, k_pos: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """Mean InfoNCE loss of queries against one positive each and a shared set of negatives.

    q: (N, D), k_pos: (N, D), negatives: (D, L); all L2-normalised. Returns a scalar.
    """
    logits = torch.cat([(q * k_pos).sum(1, keepdim=True), q @ negatives], dim=1) / temperature
    return nnf.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def gather_keys(keys: Tensor) -> Tensor:
    """Concatenate (N, D) keys from every process (no gradient)."""
    return torch.cat(all_gather(keys), dim=0) if get_world_size() > 1 else keys


class KeyQueue(nn.Module):
    """A FIFO of L normalised keys of dimension D (a (D, L) buffer), as in MoCo / DenseCL."""

    def __init__(self, dim: int, length: int):
        super().__init__()
        self.register_buffer('keys', nnf.normalize(torch.randn(dim, length), dim=0))
        self.register_buffer('ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """keys: (N, D) from this process; the keys of all processes are enqueued (oldest replaced first)."""
        keys = gather_keys(keys)
        length = self.keys.shape[1]
        idx = (self.ptr + torch.arange(len(keys), device=keys.device)) % length
        self.keys[:, idx] = keys.T.to(self.keys.dtype)
        self.ptr[0] = (self.ptr[0] + len(keys)) % length


@MODELS.register_module()
class MultiSiamMoCo(BaseSelfSupervisor):
    """MoCo-based MultiSiam.

    Args:
        backbone: backbone config (map F).
        neck: MultiSiamNeck config with ``with_bn=False`` (MoCo v2's MLP), e.g. 2048 -> 2048 -> 128.
        queue_len: length of each queue (65536 as MoCo).
        temperature: τ of the InfoNCE losses (0.2).
        momentum: weight of the online parameters in the key-network EMA (1 - 0.999).
        num_clusters, metric, kmeans_iters: the per-image k-means on G'.
        self_attention, residual: the similarity propagation inside the online projector (eq. 6).
        loss_lambda: λ of eq. 11.
        loss_directions: 'one' (MoCo v2 / DenseCL: queries of v, keys of v'), 'mean' (both directions, ½ each) or
            'sum' (both at full weight, ≈ 2× MoCo v2's step at its lr); see the module docstring.
    """

    def __init__(self, backbone: dict, neck: dict, queue_len: int = 65536, temperature: float = 0.2,
                 momentum: float = 0.001, num_clusters: int = 3, metric: str = 'cosine', kmeans_iters: int = 6,
                 self_attention: bool = True, residual: bool = False, loss_lambda: float = 0.5,
                 loss_directions: str = 'one', pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        if not 0.0 <= loss_lambda <= 1.0:
            raise ValueError(f'MultiSiamMoCo.loss_lambda must be in [0, 1], got {loss_lambda}')
        if loss_directions not in LOSS_DIRECTIONS:
            raise ValueError(f'MultiSiamMoCo.loss_directions must be one of {tuple(LOSS_DIRECTIONS)}, '
                             f'got {loss_directions!r}')
        if num_clusters < 1:
            raise ValueError(f'MultiSiamMoCo.num_clusters must be >= 1, got {num_clusters}')
        super().__init__(backbone=backbone, neck=neck, pretrained=pretrained, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        out_channels = self.neck.proj_2d[-1].out_channels
        self.queue_1d = KeyQueue(out_channels, queue_len)
        self.queue_2d = KeyQueue(out_channels, queue_len)
        self.temperature = temperature
        self.num_clusters, self.metric, self.kmeans_iters = num_clusters, metric, kmeans_iters
        self.self_attention, self.residual = self_attention, residual
        self.loss_lambda = loss_lambda
        self.loss_directions = loss_directions
        self.target_net = ExponentialMovingAverage(nn.Sequential(self.backbone, self.neck), momentum=momentum)

    def extract_feat(self, inputs: Tensor, data_samples: Optional[List[DataSample]] = None):
        return self.backbone(inputs)

    def online_dense(self, R: Tensor) -> Tensor:
        """G = sum_m sim(R_n, R_m) g_θ(R_m) (eq. 6), or g_θ(R) without self-attention: (B, D, H, W)."""
        V = self.neck.project_2d(R)
        return propagate(R, V, self.residual) if self.self_attention else V

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """inputs: [v (B, 3, S, S), v' (B, 3, S, S)]; data_samples carry the view geometry."""
        boxes, flips, sizes = view_geometry(data_samples, inputs[0].device)
        directions, weight = LOSS_DIRECTIONS[self.loss_directions]
        # only the views each network sees: with 'one', the online network v and the key network v' (as MoCo)
        F = {a: self.backbone(inputs[a])[-1] for a, _ in directions}
        with torch.no_grad():
            self.target_net.update_parameters(nn.Sequential(self.backbone, self.neck))
            key_backbone, key_neck = self.target_net.module
            F_t = {b: key_backbone(inputs[b])[-1] for _, b in directions}
        l1d, l2d, keys_1d, keys_2d = 0.0, 0.0, [], []
        for a, b in directions:
            q = nnf.normalize(self.neck.project_1d(F[a]), dim=1)
            R, R_t = align_pair(F[a], F_t[b], boxes[:, a], boxes[:, b], flips[:, a], flips[:, b], sizes, 'roi')
            G = nnf.normalize(self.online_dense(R).flatten(2).transpose(1, 2), dim=-1)  # (B, N, D)
            with torch.no_grad():
                k = nnf.normalize(key_neck.project_1d(F_t[b]), dim=1)
                G_t = nnf.normalize(key_neck.project_2d(R_t).flatten(2).transpose(1, 2).float(), dim=-1)
                km = batched_kmeans(G_t, self.num_clusters, num_iters=self.kmeans_iters, metric=self.metric)
                k_pos = nnf.normalize(gather_assigned(km.centroids, km.assignment), dim=-1)
            l1d = l1d + info_nce(q, k, self.queue_1d.keys.clone().detach(), self.temperature)
            l2d = l2d + info_nce(G.flatten(0, 1), k_pos.flatten(0, 1).to(G.dtype), self.queue_2d.keys.clone().detach(),
                                 self.temperature)
            keys_1d.append(k)
            keys_2d.append(nnf.normalize(G_t.mean(1), dim=1))
        self.queue_1d.push(torch.cat(keys_1d))
        self.queue_2d.push(torch.cat(keys_2d))
        return dict(loss_1d=weight * self.loss_lambda * l1d, loss_2d=weight * (1.0 - self.loss_lambda) * l2d,
                    **ema_tau_log(self.target_net, inputs[0].device))

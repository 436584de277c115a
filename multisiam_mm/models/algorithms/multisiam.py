"""MultiSiam (Chen et al., ICCV 2021): BYOL extended to multi-instance street scenes.

    online:  F = f_θ(v)      z, G = g_θ(F)           1-D: q = pred(z)      2-D: R = align(G, ...)
    target:  F' = f_ξ(v')    z', G' = g_ξ(F')        (EMA of the online network, no gradient)
    L_1D  = -cos(q, z')                                                             (eq. 1)
    L_2D  = 1/HW sum_n -cos(Q_n, Kmeans(R')_n)                                      (eq. 10, ClusterHead)
    L     = λ·L_1D + (1-λ)·L_2D, both symmetrised over (v, v') and (v', v)          (eq. 11)
    ξ <- τ·ξ + (1-τ)·θ with τ rising from 0.996 to 1 (cosine)                       (eq. 2)

Besides the losses (and the ClusterHead's k-means statistics), ``loss`` returns ``ema_tau``, the τ of this
iteration's EMA update (no 'loss' in its name, so mmengine logs it without adding it to the loss).

The pair of views comes from IoUPairCrop (IoU > 0.5, Sec. 3.2), which records each view's crop box and flip in the
DataSample (``view_boxes`` (2, 4), ``view_flips`` (2,), ``ori_shape``); alignment uses utils/geometry.py.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..utils.alignment import ALIGNMENTS, align_pair, offset_channels
from ..utils.ema import ema_tau_log


def float32_or_wider(x: Tensor) -> Tensor:
    """``x`` in float32, or unchanged if it is float64 already (AMP's half outputs are promoted; a float64 model, as
    in the reference-equivalence tests, stays float64)."""
    return x if x.dtype == torch.float64 else x.float()


def view_geometry(data_samples: List[DataSample], device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Stack the recorded view geometry of a batch.

    Returns boxes (B, 2, 4) float (x1, y1, x2, y2) in original pixels, flips (B, 2) bool and image sizes (B, 2)
    as (W, H).
    """
    boxes = torch.stack([torch.as_tensor(ds.view_boxes, dtype=torch.float32) for ds in data_samples])
    flips = torch.stack([torch.as_tensor(ds.view_flips, dtype=torch.bool) for ds in data_samples])
    sizes = torch.tensor([[ds.ori_shape[1], ds.ori_shape[0]] for ds in data_samples], dtype=torch.float32)
    return boxes.to(device), flips.to(device), sizes.to(device)


@MODELS.register_module()
class MultiSiam(BaseSelfSupervisor):
    """MultiSiam self-supervised algorithm.

    Args:
        backbone: backbone config (ResNet with its last stage output F).
        neck: MultiSiamNeck config (1-D and 2-D projectors).
        head: 1-D image-level head config (mmpretrain's LatentPredictHead: predictor + cosine loss), or None to
            train the 2-D branch only.
        cluster_head: ClusterHead config (2-D predictor, self-attention, k-means loss), or None for BYOL with the
            pair transform only (Table 4, "+ IoU thre"). ``offset_channels`` is filled in from ``alignment``.
        alignment: 'roi' | 'offset' | 'offset_nonorm' | 'none' (Table 2b).
        loss_lambda: λ of eq. 11 (0.5).
        base_momentum: 1 - τ_base in mmpretrain's CosineEMA convention (τ = 0.996 -> 0.004).
        ema_interval: iterations per target update; set it to the optimiser's ``accumulative_counts`` so that the
            target moves once per optimiser step (at the first micro-batch of each accumulation window, from the
            online weights of the last step) as with one large batch, instead of once per micro-batch. The cosine
            schedule still runs over the run's iterations.
    """

    def __init__(self, backbone: dict, neck: dict, head: Optional[dict] = None, cluster_head: Optional[dict] = None,
                 alignment: str = 'offset', loss_lambda: float = 0.5, base_momentum: float = 0.004,
                 ema_interval: int = 1, pretrained: Optional[str] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if alignment not in ALIGNMENTS:
            raise ValueError(f'MultiSiam.alignment must be one of {ALIGNMENTS}, got {alignment!r}')
        if not 0.0 <= loss_lambda <= 1.0:
            raise ValueError(f'MultiSiam.loss_lambda must be in [0, 1], got {loss_lambda}')
        if ema_interval < 1:
            raise ValueError(f'MultiSiam.ema_interval must be >= 1, got {ema_interval}')
        if head is None and cluster_head is None:
            raise ValueError('MultiSiam needs at least one of head (1-D branch) and cluster_head (2-D branch)')
        super().__init__(backbone=backbone, neck=neck, head=head, pretrained=pretrained,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.alignment = alignment
        self.loss_lambda = loss_lambda
        self.cluster_head = None
        if cluster_head is not None:
            self.cluster_head = MODELS.build(dict(cluster_head, offset_channels=offset_channels(alignment)))
        self.target_net = CosineEMA(nn.Sequential(self.backbone, self.neck), momentum=base_momentum,
                                    interval=ema_interval)

    def extract_feat(self, inputs: Tensor, data_samples: Optional[List[DataSample]] = None) -> Tuple[Tensor, ...]:
        """Backbone features of one batch of images (B, 3, H, W)."""
        return self.backbone(inputs)

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """inputs: [v (B, 3, S, S), v' (B, 3, S, S)]; data_samples carry the view geometry."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('MultiSiam expects two views per image (IoUPairCrop + PackPairInputs)')
        online = [self.neck(self.backbone(v)) for v in inputs]  # [(z, G)] per view
        with torch.no_grad():
            self.target_net.update_parameters(nn.Sequential(self.backbone, self.neck))
            target = [self.target_net(v) for v in inputs]
        losses: Dict[str, Tensor] = {}
        pairs = ((0, 1), (1, 0))  # (online view, target view), symmetrised
        if self.head is not None:
            with torch.autocast(device_type=inputs[0].device.type, enabled=False):  # predictor + loss in float32
                l1d = sum(self.head.loss(float32_or_wider(online[a][0]), float32_or_wider(target[b][0]))
                          for a, b in pairs)
            losses['loss_1d'] = self.loss_lambda * l1d
        if self.cluster_head is not None:
            boxes, flips, sizes = view_geometry(data_samples, inputs[0].device)
            l2d, stats = 0.0, {}
            for a, b in pairs:
                R, R_t = align_pair(online[a][1], target[b][1], boxes[:, a], boxes[:, b], flips[:, a], flips[:, b],
                                    sizes, self.alignment)
                loss_ab, stats = self.cluster_head.loss(R, R_t)
                l2d = l2d + loss_ab
            losses['loss_2d'] = (1.0 - self.loss_lambda) * l2d
            losses.update(stats)
        losses.update(ema_tau_log(self.target_net, inputs[0].device))
        return losses

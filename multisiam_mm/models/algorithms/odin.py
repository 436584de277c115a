"""Odin (Hénaff et al., ECCV 2022): object discovery and representation networks (Sec. 3.1, A.1-A.3).

    discovery (τ):  h0 = f_τ(v0), z0 = g_τ(h0) per cell; K-means of z0 per image -> K masks m^{k,0}
    views:          m^{k,l} = m^{k,0} cropped, flipped and resized into view v_l (l = 1, 2)
    online (θ):     h_l = f_θ(v_l);  h^k_l = Σ_ij m^{k,l}[i,j] h_l[i,j] / Σ_ij m^{k,l}[i,j]          (eq. 1)
                    z^k_θ,l = g_θ(h^k_l), prediction q_θ(z^k_θ,l); empty masks discarded
    target (ξ):     z^k_ξ,l = g_ξ(h^k_ξ,l) (no gradient)
    loss:           ℓ^k_{l->l'} contrastive, temperature α = 0.1                                   (eqs. 2-3)
                    L = Σ_k ℓ^k_{1->2} + ℓ^k_{2->1}                                                 (eq. 4)
    updates:        θ by the optimizer; ξ <- (1 - λξ) ξ + λξ θ (BYOL's cosine schedule)            (eqs. 5-6)
                    τ <- (1 - λτ) τ + λτ θ every step (λτ = 1e-3), or τ <- θ every N epochs         (eq. 7)

f is the backbone (ResNet), optionally followed by a neck (FPN) whose highest-resolution output (stride 4) is h;
g and q are BYOL's two-layer MLPs. v0 is the spanning view (``OdinSpanningView``); the view geometry
(``view_boxes``, ``view_flips``, ``span_box``) comes with each DataSample (``PackOdinInputs``).
Shapes: B images, K masks per image, C hidden channels, D projection channels, H x W a feature map.
"""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.logging import MessageHub
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..utils.ema import ema_tau_log
from ..utils.geometry import map_masks_to_view
from ..utils.kmeans import batched_kmeans
from ..utils.mask_pooling import labels_to_masks, mask_pool
from ..utils.masked_mlp import MaskedMLP
from .multisiam import float32_or_wider, view_geometry
from .multisiam_moco import gather_keys

DISCOVERY_UPDATES = ('ema', 'copy')
MASK_MODES = ('bilinear', 'nearest')
MAX_CACHED_CLUSTERS = 256  # cached labels are uint8


def object_contrastive_loss(q: Tensor, z_t: Tensor, valid_q: Tensor, valid_t: Tensor, temperature: float) -> Tensor:
    """Mean of Odin's ℓ^k_{l->l'} (eqs. 2-3; DetCon's loss) over the objects valid in both views.

        s^{k,n} = <q̂^k_l, ẑ^n_l'> / α          (eq. 2; unit vectors)
        ℓ^k = -log exp(s^{k,k}) / (exp(s^{k,k}) + Σ_{n ≠ k} exp(s^{k,n}))      (eq. 3)

    n runs over the other masks of the same image and every mask of the other images (of every process: the keys are
    gathered), all in view l'. Empty masks are discarded (Sec. 3.1): an object empty in l or l' is not an anchor
    (its row leaves the mean), and one empty in l' is not a negative (its column is masked out).

    Args:
        q: (B, K, D) online predictions q_θ(z^k_θ,l) of view l.
        z_t: (B, K, D) target projections z^k_ξ,l' of view l' (detached).
        valid_q: (B, K) bool, mask k non-empty in view l.
        valid_t: (B, K) bool, mask k non-empty in view l'.
        temperature: α (0.1, A.3).

    Returns:
        A float32 scalar (float64 for float64 inputs; 0 when no object is valid in both views). All processes must
        pass the same B and K. With P processes, the local sum of ℓ^k is divided by the number of anchors of all
        processes over P (the local count on average), so that DDP's average of the P gradients is the gradient of
        the mean over all the anchors. tests/test_reference_equivalence.py relates it exactly to DetConB's loss.
    """
    B, K, _ = q.shape
    q = F.normalize(float32_or_wider(q.flatten(0, 1)), dim=-1)  # (B*K, D)
    all_keys = gather_keys(F.normalize(float32_or_wider(z_t.detach().flatten(0, 1)), dim=-1))  # (P*B*K, D)
    all_valid = gather_keys(valid_t.flatten().float()) > 0
    with torch.autocast(q.device.type, enabled=False):  # under AMP the logits stay fp32, as every loss here
        logits = (q @ all_keys.T / temperature).masked_fill(~all_valid, torch.finfo(q.dtype).min)
    positive = get_rank() * B * K + torch.arange(B * K, device=q.device)
    ce = F.cross_entropy(logits, positive, reduction='none')  # huge (finite) where the positive is masked: dropped
    rows = (valid_q & valid_t).flatten()
    anchors = rows.sum().float()
    all_reduce(anchors)  # over the processes (in place; nothing with one process)
    return torch.where(rows, ce, torch.zeros_like(ce)).sum() / (anchors.clamp_min(1) / get_world_size())


def hidden_vectors(nets: nn.ModuleDict, x: Tensor) -> Tensor:
    """h = f(x): the backbone's (first) output, or the neck's first (highest-resolution, FPN) output.

    (B, 3, S, S) -> (B, C, H, W). ``nets`` holds ``backbone``, optionally ``neck``, and ``projector``.
    """
    feats = nets['backbone'](x)
    if 'neck' in nets:
        feats = nets['neck'](feats)
    return feats[0]


def project_cells(projector: MaskedMLP, h: Tensor) -> Tensor:
    """z = g(h) applied to every cell: (B, C, H, W) -> (B, D, H, W) (batch statistics over all B·H·W cells)."""
    B, _, H, W = h.shape
    return projector(h.permute(0, 2, 3, 1).flatten(0, 2)).unflatten(0, (B, H, W)).permute(0, 3, 1, 2)


def any_process(flag: bool, device: torch.device) -> bool:
    """``flag`` OR-ed over the processes of a distributed run (``flag`` itself in a single process)."""
    if get_world_size() == 1:
        return flag
    votes = torch.tensor(int(flag), device=device)
    all_reduce(votes, op='max')
    return bool(votes)


@MODELS.register_module()
class Odin(BaseSelfSupervisor):
    """Odin: object discovery network + online / target object representation networks.

    Args:
        backbone: backbone config (ResNet; ``out_indices=(3,)`` without a neck, all four stages with an FPN).
        projector: ``dict(in_channels=C, hid_channels=4096, out_channels=256)``, g (BYOL's MLP).
        predictor: ``dict(in_channels=256, hid_channels=4096, out_channels=256)``, q.
        neck: optional neck config (e.g. ``mmdet.FPN``); h is its first output (Sec. 3.1: stride 4).
        num_clusters: K of the K-means segmentation (16; Table 6).
        temperature: α of eq. 2 (0.1).
        target_momentum: λξ at the start of BYOL's cosine schedule, in mmpretrain's CosineEMA convention
            (weight of the online parameters): 0.004 = 1 - 0.996.
        discovery_update: ``'ema'``: τ <- (1 - λτ) τ + λτ θ every step (eq. 7); ``'copy'``: τ <- θ at the start of
            every period of ``discovery_interval`` epochs (iterations if not ``discovery_by_epoch``), with the
            discovered segmentations cached per image (``sample_idx``) until the next copy (Table 6).
        discovery_momentum: λτ of the ``'ema'`` mode (1e-3).
        discovery_interval, discovery_by_epoch: the period of the ``'copy'`` mode (100 epochs).
        discovery_grid: if set, h0 is average-pooled to this G x G grid before g_τ and K-means (the masks then live
            on that grid). Keeps the discovery network affordable on the FPN's stride-4 map (112 x 112 at 448).
        kmeans_iters, kmeans_inits: Lloyd iterations and deterministic runs of ``batched_kmeans`` (cosine, i.e. on
            L2-normalised projections).
        mask_mode: resampling of the masks into each view's feature map, ``'bilinear'`` (soft masks at the
            borders) or ``'nearest'`` (binary).
    """

    def __init__(self, backbone: dict, projector: dict, predictor: dict, neck: Optional[dict] = None,
                 num_clusters: int = 16, temperature: float = 0.1, target_momentum: float = 0.004,
                 discovery_update: str = 'ema', discovery_momentum: float = 1e-3, discovery_interval: int = 100,
                 discovery_by_epoch: bool = True, discovery_grid: Optional[int] = None, kmeans_iters: int = 10,
                 kmeans_inits: int = 8, mask_mode: str = 'bilinear', pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        if discovery_update not in DISCOVERY_UPDATES:
            raise ValueError(f'Odin.discovery_update must be one of {DISCOVERY_UPDATES}, got {discovery_update!r}')
        if mask_mode not in MASK_MODES:
            raise ValueError(f'Odin.mask_mode must be one of {MASK_MODES}, got {mask_mode!r}')
        max_k = MAX_CACHED_CLUSTERS if discovery_update == 'copy' else float('inf')
        if not 1 <= num_clusters <= max_k:
            raise ValueError(f'Odin.num_clusters must be in [1, {max_k}], got {num_clusters}')
        if not 0 < discovery_momentum <= 1 or discovery_interval < 1 or temperature <= 0:
            raise ValueError(f'Odin needs 0 < discovery_momentum <= 1, discovery_interval >= 1 and temperature > 0, '
                             f'got {discovery_momentum}, {discovery_interval}, {temperature}')
        if discovery_grid is not None and discovery_grid < 1:
            raise ValueError(f'Odin.discovery_grid must be None or >= 1, got {discovery_grid}')
        super().__init__(backbone=backbone, neck=neck, pretrained=pretrained, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.projector = MaskedMLP(**projector)
        self.predictor = MaskedMLP(**predictor)
        self.num_clusters = num_clusters
        self.temperature = temperature
        self.discovery_update = discovery_update
        self.discovery_momentum = discovery_momentum
        self.discovery_interval = discovery_interval
        self.discovery_by_epoch = discovery_by_epoch
        self.discovery_grid = discovery_grid
        self.kmeans_iters, self.kmeans_inits = kmeans_iters, kmeans_inits
        self.mask_mode = mask_mode
        self.target_net = CosineEMA(self.online_nets(), momentum=target_momentum)
        self.discovery_net = copy.deepcopy(self.online_nets()).requires_grad_(False)
        # 'ema': updates made so far (0: the next one copies); 'copy': 1 + index of the period last copied (0: none)
        self.register_buffer('discovery_version', torch.zeros((), dtype=torch.long))
        self._mask_cache: Dict[int, Tuple[int, Tensor, Tensor]] = {}  # sample_idx -> (version, labels, source box)

    def online_nets(self) -> nn.ModuleDict:
        """The online network f_θ, g_θ as a ModuleDict (the layout of ``target_net`` and ``discovery_net``)."""
        nets = dict(backbone=self.backbone, projector=self.projector)
        if self.with_neck:
            nets['neck'] = self.neck
        return nn.ModuleDict(nets)

    def extract_feat(self, inputs: Tensor, data_samples: Optional[List[DataSample]] = None) -> Tuple[Tensor, ...]:
        """Backbone features of one batch of images (B, 3, H, W)."""
        return self.backbone(inputs)

    def object_features(self, inputs: Tensor) -> Tensor:
        """Features to cluster for object discovery (A.4): h of the online network, or its projections z with a neck
        (FPN). (B, 3, S, S) -> (B, C or D, H, W)."""
        h = hidden_vectors(self.online_nets(), inputs)
        return project_cells(self.projector, h) if self.with_neck else h

    def _schedule_position(self) -> int:
        """Current epoch (or iteration) as the Runner's RuntimeInfoHook records it in the MessageHub (0 if unset)."""
        return MessageHub.get_current_instance().get_info('epoch' if self.discovery_by_epoch else 'iter') or 0

    @torch.no_grad()
    def update_discovery_net(self, online: nn.ModuleDict) -> None:
        """Eq. 7. 'ema': τ <- (1 - λτ) τ + λτ θ (the first update copies); 'copy': τ <- θ when a period starts.

        Buffers (BN statistics) are copied, as mmengine's EMA does by default. Only 'copy' waits on the device
        (it reads ``discovery_version``).
        """
        if self.discovery_update == 'ema':
            first = self.discovery_version == 0
            weight = torch.where(first, torch.ones((), device=first.device), self.discovery_momentum)
            self.discovery_version.add_(1)
        else:
            version = self._schedule_position() // self.discovery_interval + 1
            if version == int(self.discovery_version):
                return
            weight = 1.0
            self.discovery_version.fill_(version)
        for p_disc, p in zip(self.discovery_net.parameters(), online.parameters()):
            p_disc.lerp_(p.detach(), weight)
        for b_disc, b in zip(self.discovery_net.buffers(), online.buffers()):
            b_disc.copy_(b)

    @torch.no_grad()
    def discover(self, span: Tensor) -> Tensor:
        """K-means segmentation of the spanning views: v0 (B, 3, S0, S0) -> labels (B, h, w) int64 in [0, K).

        z0 = g_τ(f_τ(v0)) per cell (on ``discovery_grid`` if set), clustered per image (cosine K-means).
        """
        h0 = hidden_vectors(self.discovery_net, span)
        if self.discovery_grid is not None:
            h0 = F.adaptive_avg_pool2d(h0, self.discovery_grid)
        z0 = project_cells(self.discovery_net['projector'], h0)
        B, _, H, W = z0.shape
        km = batched_kmeans(z0.flatten(2).transpose(1, 2), self.num_clusters, num_iters=self.kmeans_iters,
                            metric='cosine', num_inits=self.kmeans_inits,
                            select_after=3)  # the pre-2026-12-02 default: the new one was validated for K = 3 only
        return km.assignment.view(B, H, W)

    @torch.no_grad()
    def discover_masks(self, span: Tensor, data_samples: List[DataSample]) -> Tuple[Tensor, Tensor]:
        """Segmentation labels (B, h, w) int64 and the boxes (B, 4) they cover, in original pixels.

        'ema': computed now on v0 (over ``span_box``). 'copy': looked up per ``sample_idx`` and computed only for the
        images not yet segmented by the current discovery network; the cache (CPU, h·w bytes per image and
        process) keeps each segmentation with the box it was computed over, so it maps into any later view.
        """
        span_box = torch.stack([torch.as_tensor(ds.span_box) for ds in data_samples]).to(span.device, torch.float32)
        if self.discovery_update == 'ema':
            return self.discover(span), span_box
        keys = [int(ds.sample_idx) for ds in data_samples]
        version = int(self.discovery_version)
        stale = [i for i, key in enumerate(keys) if self._mask_cache.get(key, (None,))[0] != version]
        anyone_stale = any_process(bool(stale), span.device)
        if stale:
            idx = torch.tensor(stale, device=span.device)
            labels = self.discover(span[idx]).to('cpu', torch.uint8)
            for i, lab, box in zip(stale, labels, span_box[idx].cpu()):
                self._mask_cache[keys[i]] = (version, lab, box)
        elif anyone_stale:  # another process discovers: join its synchronised BN calls (the result is discarded)
            self.discover(span[:1])
        entries = [self._mask_cache[key] for key in keys]
        labels = torch.stack([e[1] for e in entries]).to(span.device).long()
        return labels, torch.stack([e[2] for e in entries]).to(span.device)

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """inputs: [v1 (B, 3, S, S), v2 (B, 3, S, S), v0 (B, 3, S0, S0)]; data_samples carry the view geometry."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError('Odin expects two views and the spanning view per image (OdinSpanningView + '
                             'PackOdinInputs)')
        views, span = inputs[:2], inputs[2]
        boxes, flips, _ = view_geometry(data_samples, span.device)
        online, target = self.online_nets(), self.target_net.module
        with torch.no_grad():
            self.target_net.update_parameters(online)
            self.update_discovery_net(online)
            labels, source_box = self.discover_masks(span, data_samples)
            masks0 = labels_to_masks(labels, self.num_clusters)  # (B, K, h, w) over source_box
        h = [hidden_vectors(online, v) for v in views]
        q, z_t, valid = [], [], []
        for i, v in enumerate(views):
            with torch.no_grad():
                masks = map_masks_to_view(masks0, source_box, boxes[:, i], flips[:, i], h[i].shape[-2:],
                                          self.mask_mode)  # (B, K, H, W), as the view is displayed
                pooled_t, _ = mask_pool(hidden_vectors(target, v), masks)
            pooled, mass = mask_pool(h[i], masks)  # eq. 1
            valid.append(mass > 0)  # (B, K): empty masks are discarded
            rows = valid[-1].flatten()
            q.append(self.predictor(self.projector(pooled.flatten(0, 1), rows), rows).unflatten(0, mass.shape))
            with torch.no_grad():
                z_t.append(target['projector'](pooled_t.flatten(0, 1), rows).unflatten(0, mass.shape))
        loss = sum(object_contrastive_loss(q[a], z_t[b], valid[a], valid[b], self.temperature)
                   for a, b in ((0, 1), (1, 0)))  # eq. 4, symmetrised
        return dict(loss=loss,
                    objects_per_view=(valid[0].sum(1) + valid[1].sum(1)).float().mean() / 2,
                    shared_objects=(valid[0] & valid[1]).sum(1).float().mean(),
                    **ema_tau_log(self.target_net, span.device))

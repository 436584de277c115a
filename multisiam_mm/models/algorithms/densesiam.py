"""DenseSiam (Zhang et al., ECCV 2022): SimSiam with pixel (PixSim) and region (RegionSim) similarity learning.

    F  = f(v)                 encoder without global pooling: ResNet C5, or optionally the highest-resolution
                              (stride 4) output of an FPN on the four ResNet stages, (B, C, H, W)       (Sec. 3.1)
    z  = h(F), p = pred(z)    projector: three 1×1 convs with BN + ReLU, last BN without affine;
                              predictor: two 1×1 convs with a bottleneck, (B, D, H, W)                  (Sec. 3.1)
    z_g, p_g                  z, p grid-sampled at G×G points of v ∩ v' that are the SAME original-image
                              locations in both views, (B, D, G²); order proj → pred → grid (Table 4iv)  (Sec. 3.2)
    L_pix    = ½ D(p_g, sg(z'_g)) + ½ D(p'_g, sg(z_g))                                               (eq. 1)
               D = the cross-entropy -softmax(z) · log softmax(p) (eq. 3, default) or -cos(p, z) (eq. 2), per
               point. Cross-entropy is the paper's: RegionSim's masks are softmax(z), and "when using
               cross-entropy with softmax as the training objective, PixSim implicitly groups similar pixels
               together into the same regions" (Sec. 3.3; Appendix B also scores points by eq. 3).
    M        = softmax_D(z_g) (B, N = D, G²); r = M · F_gᵀ (B, N, C), F_g the encoder map sampled likewise (eq. 4)
    z^r, p^r = proj_r(r), pred_r(z^r): 3-layer MLP projector and 2-layer predictor                   (Sec. 3.3)
    L_region = ½ L_c(p^r, sg(z'^r)) + ½ L_c(p'^r, sg(z^r))                                          (eq. 5)
               L_c(p, z) = -1/N Σ_n log exp(cos(p_n, z_n)/τ) / Σ_m exp(cos(p_n, z_m)/τ)               (eq. 6)
    L_img    = SimSiam on the pooled ResNet C5 map of the whole view (Table 4v 'global'), with or
               without the FPN                                                                        (Sec. 3.4)
    L        = L_img + λ1·L_pix + λ2·L_region, λ1 = 1.0, λ2 = 0.1                                    (eq. 7)

sg is the stop-gradient; there is no momentum encoder: both views go through the same network. RegionSim is
switched on during training by ``DenseSiamRegionSimHook`` (half-way by default, Table 4vi), which sets
:attr:`DenseSiam.use_region_sim`.

The eqs. 4-6 are lost in the text extraction of the paper; the reading above follows the surrounding text
("summation of multiplication between the masks and features", "Eq. 1 can be directly applied to these region
embeddings", "low similarities with the embeddings of other region embeddings", InfoNCE [35]) and the authors'
released code: masks are the channel softmax of the projector output, region N of one view is matched with
region N of the other, and the other regions of the same image are the negatives; embeddings are L2-normalised
and τ = 0.1.

Unsupervised semantic segmentation (Sec. 4) is :class:`DenseSiamSegmentor`: PixSim with the cross-entropy
similarity and C = number of classes output channels, so softmax(z) are class probabilities; a class-balanced
cross-entropy L_ce on the argmax pseudo labels of the other view; an auxiliary over-clustering PixSim head (K > C
pseudo-categories, eq. 1 only, L_aux); RegionSim; no global branch:

    L = λ_pix·L_pix + λ_ce·L_ce + λ_aux·L_aux + λ2·L_region                                            (eq. 8)

Eq. 8 is lost in the extraction; the text says the weights of L_pix and L_aux "prevent the auxiliary loss from
overwhelming the gradients because it uses a larger number of pseudo categories". 'auto' weights follow the
authors' released segmentation config: λ_pix = log K / (log C + log K), λ_aux = log C / (log C + log K) (a
cross-entropy over n categories scales with log n); λ_ce = 1, λ2 = 0.1. Prediction is argmax_C of the projector
output h(f(x)) (encoder + projector, "only the encoder and projector ... at inference time").

View geometry (crop boxes and flips recorded by IoUPairCrop) comes from ``utils/geometry.py``: the grid points are
cell centres of a G×G grid over ``intersection_box(v, v')``, located in each view's map as displayed (flip-aware),
so no flip-back is needed.
"""
import math
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as nnf
from mmengine.model import BaseModule
from mmengine.structures import BaseDataElement, PixelData
from mmpretrain.models.necks import NonLinearNeck
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..utils.geometry import grid_points_in_intersection
from ..utils.layers import conv_mlp
from .multisiam import view_geometry

# Where the grid sampler sits relative to the projector and the predictor (Table 4iv): the number of dense stages
# applied before sampling. 'proj_pred_grid' is the paper's choice.
GRID_ORDERS = {'grid_proj_pred': 0, 'proj_grid_pred': 1, 'proj_pred_grid': 2}
GLOBAL_REGIONS = ('image', 'intersection')


def conv_projector(in_channels: int, hid_channels: int, out_channels: int) -> nn.Sequential:
    """DenseSiam's dense projector h: three 1×1 convs, each with BN (+ ReLU but the last), (B, in, H, W) -> (B, out,
    H, W). As SimSiam's projector, the last BN has no learnable affine transform (Sec. 3.1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hid_channels, 1, bias=False), nn.BatchNorm2d(hid_channels), nn.ReLU(inplace=True),
        nn.Conv2d(hid_channels, hid_channels, 1, bias=False), nn.BatchNorm2d(hid_channels), nn.ReLU(inplace=True),
        nn.Conv2d(hid_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels, affine=False))


def sample_grid(x: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of a map at grid_sample points: x (B, C, H, W), grid (B, P, 2) in [-1, 1] -> (B, C, 1, P).

    ``align_corners=False`` is the convention of utils/geometry.py. Points within half a cell of the map's edge take
    the border value (``padding_mode='border'``) rather than being blended with zeros.
    """
    return nnf.grid_sample(x, grid[:, None].to(x.dtype), mode='bilinear', padding_mode='border', align_corners=False)


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) of eq. 2: -cos(p, z) over the channels (dim 1), averaged over all other dims: (B, D, ...) x 2 -> ()."""
    return -nnf.cosine_similarity(p, z, dim=1).mean()


def cross_entropy_similarity(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) of eq. 3: -Σ_D softmax(z) · log softmax(p) over the channels (dim 1), averaged over all other dims."""
    return -(nnf.softmax(z, dim=1) * nnf.log_softmax(p, dim=1)).sum(dim=1).mean()


SIMILARITIES: Dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    'cosine': negative_cosine, 'cross_entropy': cross_entropy_similarity}


def symmetric_loss(distance: Callable[[Tensor, Tensor], Tensor], p_a: Tensor, z_a: Tensor, p_b: Tensor,
                   z_b: Tensor) -> Tensor:
    """Eqs. 1 and 5: ½ D(p_a, sg(z_b)) + ½ D(p_b, sg(z_a)); the targets z are detached (stop-gradient)."""
    return 0.5 * (distance(p_a, z_b.detach()) + distance(p_b, z_a.detach()))


def region_embeddings(z_g: Tensor, F_g: Tensor) -> Tensor:
    """Eq. 4: r_n = Σ_g M_ng F_g with masks M = softmax over the N projector channels of z_g.

    z_g: (B, N, P) projector output at the P = G² grid points; F_g: (B, C, P) encoder features at the same points
    -> r (B, N, C), one embedding per pseudo-category (sub-region) of each image.
    """
    return torch.einsum('bnp,bcp->bnc', nnf.softmax(z_g, dim=1), F_g)


def region_contrast(p: Tensor, z: Tensor, temperature: float) -> Tensor:
    """L_c of eq. 6, InfoNCE among the regions of each image: p, z (B, N, E) -> ().

    -1/(B N) Σ_b Σ_n log exp(cos(p_bn, z_bn)/τ) / Σ_m exp(cos(p_bn, z_bm)/τ): region n of one view is the positive
    of region n of the other, the other N - 1 regions of the same image are the negatives.
    """
    logits = nnf.normalize(p, dim=-1) @ nnf.normalize(z, dim=-1).transpose(1, 2) / temperature  # (B, N, N)
    target = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    return nnf.cross_entropy(logits.flatten(0, 1), target.flatten())


def class_balanced_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy in which every class present in ``target`` weighs the same: logits (B, C, ...), target (B, ...)
    int in [0, C) -> ().

    (1 / |K|) Σ_{k ∈ K} mean_{i: y_i = k} -log softmax(logits_i)_k, K the classes present in the batch; i.e. the
    per-point loss weighted by 1 / (n_k |K|), so that a frequent pseudo-class does not dominate a rare one.
    """
    ce = nnf.cross_entropy(logits, target, reduction='none').flatten()
    target = target.flatten()
    counts = torch.bincount(target, minlength=logits.shape[1])
    per_class = torch.zeros(logits.shape[1], dtype=ce.dtype, device=ce.device).index_add_(0, target, ce)
    present = counts > 0
    return (per_class[present] / counts[present]).mean()


def pseudo_label_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """L_ce of one direction (Sec. 4): class-balanced cross-entropy of ``logits`` against the argmax pseudo labels of
    ``target_logits`` (the other view's projections at the same original locations): (B, C, P) x 2 -> ()."""
    return class_balanced_cross_entropy(logits, target_logits.argmax(dim=1))


def auto_loss_weights(num_classes: int, num_aux_classes: int) -> Tuple[float, float]:
    """(λ_pix, λ_aux) of eq. 8 balancing a C-way and a K-way cross-entropy by their scales log C and log K:
    λ_pix = log K / (log C + log K), λ_aux = log C / (log C + log K) (the authors' released 'auto' setting)."""
    log_c, log_k = math.log(num_classes), math.log(num_aux_classes)
    return log_k / (log_c + log_k), log_c / (log_c + log_k)


def normalized_std(z: Tensor) -> Tensor:
    """SimSiam's collapse monitor: std over the samples of the L2-normalised embeddings, averaged over channels.

    z (B, D, ...) -> () ; about 1/sqrt(D) for well-spread embeddings and 0 for a collapsed (constant) output.
    """
    z = nnf.normalize(z.detach(), dim=1).movedim(1, -1).reshape(-1, z.shape[1])
    return z.std(dim=0).mean()


@MODELS.register_module()
class PixSimHead(BaseModule):
    """PixSim (Sec. 3.2): dense projector h and predictor on the encoder map, grid sampling, loss of eq. 1.

    Args:
        in_channels: channels C of the encoder map F (2048 for ResNet-50).
        hid_channels: projector hidden width (512, Sec. 3.4).
        out_channels: projector / predictor output width D (512); also the number N of RegionSim's regions.
        pred_hid_channels: predictor hidden width: 512, the paper's "512 channels in the projectors and
            predictors" (Sec. 3.4); 128 = D / 4 is SimSiam's bottleneck ratio (a switch, docs/densesiam.md).
        grid_order: 'proj_pred_grid' (paper) | 'proj_grid_pred' | 'grid_proj_pred' (Table 4iv).
        similarity: D of eq. 1: 'cross_entropy' (eq. 3, the paper's: RegionSim's softmax masks, Sec. 3.3) or
            'cosine' (eq. 2).
    """

    def __init__(self, in_channels: int = 2048, hid_channels: int = 512, out_channels: int = 512,
                 pred_hid_channels: int = 512, grid_order: str = 'proj_pred_grid', similarity: str = 'cross_entropy',
                 init_cfg: Optional[dict] = None):
        if grid_order not in GRID_ORDERS:
            raise ValueError(f'PixSimHead.grid_order must be one of {tuple(GRID_ORDERS)}, got {grid_order!r}')
        if similarity not in SIMILARITIES:
            raise ValueError(f'PixSimHead.similarity must be one of {tuple(SIMILARITIES)}, got {similarity!r}')
        super().__init__(init_cfg)
        self.grid_order = grid_order
        self.similarity = similarity
        self.projector = conv_projector(in_channels, hid_channels, out_channels)
        self.predictor = conv_mlp(out_channels, pred_hid_channels, out_channels)

    def forward(self, F: Tensor, grid: Tensor) -> Tuple[Tensor, Tensor]:
        """Projection z and prediction p at the grid points: F (B, C, H, W), grid (B, P, 2) -> z, p (B, D, P)."""
        stages_before_grid = GRID_ORDERS[self.grid_order]
        x = sample_grid(F, grid) if stages_before_grid == 0 else F
        z = self.projector(x)
        if stages_before_grid == 1:
            z = sample_grid(z, grid)
        p = self.predictor(z)
        if stages_before_grid == 2:
            z, p = sample_grid(z, grid), sample_grid(p, grid)
        return z.flatten(2), p.flatten(2)

    def loss(self, p_a: Tensor, z_a: Tensor, p_b: Tensor, z_b: Tensor) -> Tensor:
        """L_pix of eq. 1 from both views' grid samples, each (B, D, P)."""
        return symmetric_loss(SIMILARITIES[self.similarity], p_a, z_a, p_b, z_b)


@MODELS.register_module()
class RegionSimHead(BaseModule):
    """RegionSim (Sec. 3.3): MLP projector and predictor on the region embeddings r (eq. 4), loss of eqs. 5-6.

    The MLPs are SimSiam's (mmpretrain's NonLinearNeck): a 3-layer projector whose last BN has no affine transform,
    and a 2-layer bottleneck predictor with a biased last layer. They act on every region embedding, (B·N, C).

    Args:
        in_channels: channels C of the encoder map F (the region embeddings' width).
        hid_channels: projector hidden width (512, Sec. 3.4).
        out_channels: projector / predictor output width E (512).
        pred_hid_channels: predictor hidden width (512, Sec. 3.4; 128 with SimSiam's 4x bottleneck).
        temperature: τ of eq. 6 (0.1).
        norm_cfg: normalisation of the MLPs (BN; configs turn it into SyncBN with ``sync_bn='torch'``).
    """

    def __init__(self, in_channels: int = 2048, hid_channels: int = 512, out_channels: int = 512,
                 pred_hid_channels: int = 512, temperature: float = 0.1, norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if temperature <= 0:
            raise ValueError(f'RegionSimHead.temperature must be positive, got {temperature}')
        super().__init__(init_cfg)
        norm_cfg = norm_cfg or dict(type='BN1d')
        self.temperature = temperature
        self.projector = NonLinearNeck(in_channels, hid_channels, out_channels, num_layers=3,
                                       with_last_bn_affine=False, with_avg_pool=False, norm_cfg=norm_cfg)
        self.predictor = NonLinearNeck(out_channels, pred_hid_channels, out_channels, with_last_bn=False,
                                       with_last_bias=True, with_avg_pool=False, norm_cfg=norm_cfg)

    def forward(self, r: Tensor) -> Tuple[Tensor, Tensor]:
        """z^r, p^r of the region embeddings: r (B, N, C) -> (B, N, E) x 2."""
        z = self.projector([r.flatten(0, 1)])[0]
        p = self.predictor([z])[0]
        return z.unflatten(0, r.shape[:2]), p.unflatten(0, r.shape[:2])

    def loss(self, p_a: Tensor, z_a: Tensor, p_b: Tensor, z_b: Tensor) -> Tensor:
        """L_region of eq. 5 from both views' region projections / predictions, each (B, N, E)."""
        return symmetric_loss(partial(region_contrast, temperature=self.temperature), p_a, z_a, p_b, z_b)


def check_two_views(inputs: List[Tensor]) -> List[Tensor]:
    """The two views [v (B, 3, S, S), v' (B, 3, S, S)] of a training batch, or a ValueError."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError('DenseSiam expects two views per image (IoUPairCrop + PackPairInputs)')
    return list(inputs)


@MODELS.register_module()
class DenseSiam(BaseSelfSupervisor):
    """DenseSiam self-supervised algorithm (SimSiam-based, no momentum encoder).

    Args:
        backbone: ResNet. Its last output (C5) is the dense map F, or, with ``encoder_neck``, the input of the FPN:
            then it must return all four stages (``out_indices=(0, 1, 2, 3)``).
        neck: global projector (SimSiam's 3-layer NonLinearNeck with average pooling) on C5; None, with
            ``head=None``, for no global branch (:class:`DenseSiamSegmentor`).
        head: global predictor and loss (LatentPredictHead with CosineSimilarityLoss): L_img.
        pix_head: PixSimHead config, or None for the SimSiam baseline (Table 4, grid number 0).
        region_head: RegionSimHead config, or None for no RegionSim ("never" in Table 4vi). Needs pix_head (the
            masks are the PixSim projector's output).
        encoder_neck: optional FPN on the backbone's stages (e.g. ``mmdet.FPN``; "ResNet-50 with FPN", Sec. 3.1).
            Its first (highest-resolution, stride 4) output is the dense map F of PixSim and RegionSim (eq. 4
            features); the global branch keeps ResNet C5 + pooling.
        grid_size: G, the G×G grid sampled in the intersection (7, Table 4i).
        loss_pix_weight: λ1 of eq. 7 (1.0, Table 4ii).
        loss_region_weight: λ2 of eq. 7 (0.1, Table 4iii).
        global_region: 'image' (the paper) pools the whole view's C5 for L_img; 'intersection' pools C5 at the grid
            points of v ∩ v' (Table 4v, 'in.').
    """

    def __init__(self, backbone: dict, neck: Optional[dict], head: Optional[dict], pix_head: Optional[dict] = None,
                 region_head: Optional[dict] = None, encoder_neck: Optional[dict] = None, grid_size: int = 7,
                 loss_pix_weight: float = 1.0, loss_region_weight: float = 0.1, global_region: str = 'image',
                 pretrained: Optional[str] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if region_head is not None and pix_head is None:
            raise ValueError('DenseSiam: RegionSim needs PixSim (its masks are the PixSim projector output, eq. 4)')
        if (neck is None) != (head is None):
            raise ValueError('DenseSiam: the global branch needs both neck and head (or neither)')
        if neck is None and pix_head is None:
            raise ValueError('DenseSiam: without a global branch (neck, head) pix_head is needed')
        if global_region not in GLOBAL_REGIONS:
            raise ValueError(f'DenseSiam.global_region must be one of {GLOBAL_REGIONS}, got {global_region!r}')
        if grid_size < 1:
            raise ValueError(f'DenseSiam.grid_size must be >= 1 (use pix_head=None for no PixSim), got {grid_size}')
        if loss_pix_weight < 0 or loss_region_weight < 0:
            raise ValueError(f'DenseSiam: loss weights must be >= 0, got {loss_pix_weight}, {loss_region_weight}')
        super().__init__(backbone=backbone, neck=neck, head=head, pretrained=pretrained,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder_neck = MODELS.build(encoder_neck) if encoder_neck is not None else None
        self.pix_head = MODELS.build(pix_head) if pix_head is not None else None
        self.region_head = MODELS.build(region_head) if region_head is not None else None
        self.grid_size = grid_size
        self.loss_pix_weight = loss_pix_weight
        self.loss_region_weight = loss_region_weight
        self.global_region = global_region
        self.use_region_sim = False  # set by DenseSiamRegionSimHook from the training progress

    def encode(self, v: Tensor) -> Tuple[Tensor, Tensor]:
        """Encoder f of one view (B, 3, S, S) -> (C5 (B, C5, S/32, S/32) for the global branch, dense map F
        (B, C, H, W)): F is C5 itself, or the FPN's first output (B, C_fpn, S/4, S/4) with ``encoder_neck``."""
        feats = self.backbone(v)
        F = self.encoder_neck(feats)[0] if self.encoder_neck is not None else feats[-1]
        return feats[-1], F

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """inputs: [v (B, 3, S, S), v' (B, 3, S, S)]; data_samples carry the view geometry (IoUPairCrop)."""
        (C5_a, F_a), (C5_b, F_b) = [self.encode(v) for v in check_two_views(inputs)]  # C5 and F per view
        grids = None
        if self.pix_head is not None or self.global_region == 'intersection':
            grids = self._grids(data_samples, inputs[0].device)
        losses = {}
        if self.with_neck:
            C5 = (C5_a, C5_b)
            if self.global_region == 'intersection':
                C5 = [sample_grid(c, g) for c, g in zip(C5, grids)]  # (B, C5, 1, G²) per view
            z_img = [self.neck((x,))[0] for x in C5]  # pooled by the neck
            losses['loss_img'] = 0.5 * (self.head.loss(z_img[0], z_img[1]) + self.head.loss(z_img[1], z_img[0]))
        if self.pix_head is None:
            return losses
        (z_a, p_a), (z_b, p_b) = [self.pix_head(f, g) for f, g in zip((F_a, F_b), grids)]
        losses.update(self._dense_losses(z_a, p_a, z_b, p_b, (F_a, F_b), grids))
        return losses

    def _dense_losses(self, z_a: Tensor, p_a: Tensor, z_b: Tensor, p_b: Tensor, F: Sequence[Tensor],
                      grids: Sequence[Tensor]) -> Dict[str, Tensor]:
        """λ1·L_pix (eq. 1), its collapse monitor and, when switched on, λ2·L_region (eqs. 4-6).

        z_*, p_*: PixSim projections / predictions at the grid points (B, D, G²); F: both views' dense maps
        (B, C, H, W); grids: (B, G², 2) x 2.
        """
        losses = {'loss_pix': self.loss_pix_weight * self.pix_head.loss(p_a, z_a, p_b, z_b),
                  'pix_z_std': normalized_std(z_a)}
        if self.region_head is not None and self.use_region_sim:
            (zr_a, pr_a), (zr_b, pr_b) = [self.region_head(region_embeddings(z, sample_grid(f, g).flatten(2)))
                                          for z, f, g in zip((z_a, z_b), F, grids)]
            losses['loss_region'] = self.loss_region_weight * self.region_head.loss(pr_a, zr_a, pr_b, zr_b)
        return losses

    def _grids(self, data_samples: List[DataSample], device: torch.device) -> Tuple[Tensor, Tensor]:
        """G×G grid points of v ∩ v' in each view's map (grid_sample coordinates), (B, G², 2) x 2."""
        boxes, flips, _ = view_geometry(data_samples, device)
        return grid_points_in_intersection(boxes[:, 0], boxes[:, 1], flips[:, 0], flips[:, 1], self.grid_size)


@MODELS.register_module()
class DenseSiamSegmentor(DenseSiam):
    """DenseSiam for unsupervised semantic segmentation (Sec. 4, eq. 8): the encoder (ResNet + FPN) and the PixSim
    projector form the segmentation model; no global branch.

    Training (two views with their geometry, as DenseSiam):
        L_pix    eq. 1 with the cross-entropy similarity (eq. 3) on C = ``pix_head.out_channels`` classes
        L_ce     ½ CE_bal(z_g, argmax sg z'_g) + ½ CE_bal(z'_g, argmax sg z_g): class-balanced cross-entropy of each
                 view's class scores against the argmax pseudo labels of the other view at the same original
                 locations (the grid points)
        L_aux    eq. 1 (cross-entropy similarity) of a second PixSim projector / predictor with K > C outputs
                 (over-clustering), on the same dense map F
        L_region eqs. 4-6 with masks softmax_C(z_g), from ``DenseSiamRegionSimHook``'s start on
    Prediction (``mode='predict'``): per-pixel argmax_C of z = h(F), upsampled bilinearly (as scores) to each image's
    ``ori_shape``; written to ``pred_sem_seg`` (PixelData, (1, H, W)) as read by ``HungarianMIoU``.

    Args:
        backbone, encoder_neck, region_head, grid_size: as :class:`DenseSiam` (Sec. 4: ResNet-18 + FPN).
        pix_head: PixSimHead with ``similarity='cross_entropy'`` and ``out_channels`` = C, the number of classes.
        aux_head: over-clustering PixSimHead (``similarity='cross_entropy'``, ``out_channels`` = K > C), or None.
        loss_pix_weight, loss_aux_weight: λ_pix, λ_aux of eq. 8; 'auto' = :func:`auto_loss_weights` (λ_pix = 1
            without an auxiliary head).
        loss_ce_weight: λ_ce of eq. 8 (1.0).
        loss_region_weight: λ2 (0.1).
    """

    def __init__(self, backbone: dict, pix_head: dict, aux_head: Optional[dict] = None,
                 region_head: Optional[dict] = None, encoder_neck: Optional[dict] = None, grid_size: int = 7,
                 loss_pix_weight: Union[float, str] = 'auto', loss_ce_weight: float = 1.0,
                 loss_aux_weight: Union[float, str] = 'auto', loss_region_weight: float = 0.1,
                 pretrained: Optional[str] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        for name, cfg in (('pix_head', pix_head), ('aux_head', aux_head)):
            if cfg is not None and (cfg.get('similarity') != 'cross_entropy' or 'out_channels' not in cfg):
                raise ValueError(f'DenseSiamSegmentor.{name} needs similarity=cross_entropy (softmax = class '
                                 'probabilities, Sec. 4) and an explicit out_channels (number of classes)')
        num_classes = pix_head['out_channels']
        if aux_head is not None and aux_head['out_channels'] <= num_classes:
            raise ValueError('DenseSiamSegmentor.aux_head over-clusters: it needs more outputs than pix_head')
        auto_pix, auto_aux = auto_loss_weights(num_classes, aux_head['out_channels']) if aux_head else (1.0, 0.0)
        loss_pix_weight = auto_pix if loss_pix_weight == 'auto' else loss_pix_weight
        loss_aux_weight = auto_aux if loss_aux_weight == 'auto' else loss_aux_weight
        if loss_ce_weight < 0 or loss_aux_weight < 0:
            raise ValueError(f'DenseSiamSegmentor: loss weights must be >= 0, got {loss_ce_weight}, {loss_aux_weight}')
        super().__init__(backbone=backbone, neck=None, head=None, pix_head=pix_head, region_head=region_head,
                         encoder_neck=encoder_neck, grid_size=grid_size, loss_pix_weight=loss_pix_weight,
                         loss_region_weight=loss_region_weight, pretrained=pretrained,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.aux_head = MODELS.build(aux_head) if aux_head is not None else None
        self.num_classes = num_classes
        self.loss_ce_weight = loss_ce_weight
        self.loss_aux_weight = loss_aux_weight

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """Eq. 8 from inputs [v (B, 3, S, S), v' (B, 3, S, S)] and the view geometry (IoUPairCrop)."""
        F = [self.encode(v)[1] for v in check_two_views(inputs)]
        grids = self._grids(data_samples, F[0].device)
        (z_a, p_a), (z_b, p_b) = [self.pix_head(f, g) for f, g in zip(F, grids)]  # class scores (B, C, G²)
        losses = self._dense_losses(z_a, p_a, z_b, p_b, F, grids)
        losses['loss_ce'] = self.loss_ce_weight * symmetric_loss(pseudo_label_cross_entropy, z_a, z_a, z_b, z_b)
        if self.aux_head is not None:
            (za_a, pa_a), (za_b, pa_b) = [self.aux_head(f, g) for f, g in zip(F, grids)]  # (B, K, G²)
            losses['loss_aux'] = self.loss_aux_weight * self.aux_head.loss(pa_a, za_a, pa_b, za_b)
        return losses

    def forward(self, inputs: Union[Tensor, List[Tensor]], data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """mmpretrain's 'tensor' and 'loss' modes, plus 'predict' (:meth:`predict`, used by val / test loops)."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    def segment(self, inputs: Tensor) -> Tensor:
        """Class scores z = h(f(x)) of whole images: (B, 3, H, W) -> (B, C, H/s, W/s), s the stride of F."""
        return self.pix_head.projector(self.encode(inputs)[1])

    def predict(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                **kwargs) -> List[BaseDataElement]:
        """Per-pixel labels in [0, C) of whole images (B, 3, H, W), in ``pred_sem_seg`` of the (given or new) data
        samples, at each sample's ``ori_shape`` (the input size when it has none)."""
        scores = self.segment(inputs)
        data_samples = data_samples or [DataSample() for _ in range(len(inputs))]
        for ds, s in zip(data_samples, scores):
            size = tuple(ds.metainfo.get('ori_shape', inputs.shape[-2:]))[:2]
            s = nnf.interpolate(s[None], size=size, mode='bilinear', align_corners=False)[0]
            ds.pred_sem_seg = PixelData(data=s.argmax(dim=0, keepdim=True))
        return data_samples

"""Object discovery evaluation of Odin (Sec. 3.2 and appendix A.4): ABO and OR of multi-K K-means proposals.

Features (B, D, h, w) of an image are L2-normalised and clustered by K-means for every K in {1, 2, 4, ..., 128}; the
clusters of all runs are the 1 + 2 + ... + 128 = 255 object proposals m_k, resized to the ground-truth resolution.
For each ground-truth segment g_t::

    IoU(g_t, m_k) = Σ_ij min(g_t, m_k)[i,j] / Σ_ij max(g_t, m_k)[i,j]        (eq. 8)
    BO(g_t) = max_k IoU(g_t, m_k)                                            (eq. 9)
    ABO = 1/T Σ_t BO(g_t),  OR = 1/T Σ_t 1[BO(g_t) > 0.5]                    (eqs. 10-11)

averaged over images. ABO^i and OR use instance segments; ABO^c merges the instances of one class into one segment.

Segments and proposals are label maps (non-overlapping segments, 0 = no segment for the ground truth), so all the
IoUs of one K-means run come from one joint histogram of (segment, cluster) over the pixels.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS
from torch import Tensor

from ..models.utils.kmeans import batched_kmeans

DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64, 128)  # 255 proposals
RECOVERY_IOU = 0.5


def kmeans_proposals(features: Tensor, ks: Sequence[int] = DEFAULT_KS, num_iters: int = 10,
                     num_inits: int = 8) -> Tensor:
    """Cluster labels of every K-means run: features (B, D, h, w) -> labels (B, len(ks), h, w) int64.

    Run ``r`` partitions each image into ``ks[r]`` clusters (label ``c`` is proposal ``c`` of that run; a cluster
    may be empty). Features are L2-normalised, then clustered with Euclidean K-means (A.4).
    """
    B, _, h, w = features.shape
    x = F.normalize(features.flatten(2).transpose(1, 2).float(), dim=-1)  # (B, h*w, D)
    # select_after=3, the setting the published ABO numbers used: batched_kmeans's newer default (2) was validated
    # for K = 3 on 7x7 maps only, not for K up to 128.
    runs = [batched_kmeans(x, k, num_iters=num_iters, metric='euclidean', num_inits=num_inits,
                           select_after=3).assignment for k in ks]
    return torch.stack(runs, dim=1).view(B, len(ks), h, w)


def resize_labels(labels: Tensor, size: Tuple[int, int]) -> Tensor:
    """Nearest (cell-centre) resize of label maps (..., h, w) -> (..., H, W)."""
    lead = labels.shape[:-2]
    out = F.interpolate(labels.flatten(0, -3)[:, None].float(), size=size, mode='nearest-exact')
    return out[:, 0].long().view(*lead, *size)


def best_overlaps(segments: Tensor, proposals: Tensor, ks: Sequence[int]) -> Tensor:
    """BO of every ground-truth segment against all proposals (eq. 9): (T,) float32.

    Args:
        segments: (H, W) int label map; 0 is "no segment", every other value present is one segment g_t.
        proposals: (R, H, W) int label maps, run ``r`` with labels in [0, ks[r]).
        ks: the number of proposals of each run.
    """
    ids, seg = torch.unique(segments.flatten(), return_inverse=True)
    has_void = bool(ids[0] == 0)
    if not has_void:  # every pixel is in a segment: shift so that index 0 stays "no segment"
        seg = seg + 1
    num_seg = len(ids) + (not has_void)  # "no segment" + T segments
    best = torch.zeros(num_seg - 1)
    for labels, k in zip(proposals.flatten(1), ks):
        joint = torch.bincount(seg * k + labels, minlength=num_seg * k).view(num_seg, k).float()
        inter = joint[1:]  # (T, k)
        union = inter.sum(1, keepdim=True) + joint.sum(0, keepdim=True) - inter
        best = torch.maximum(best, (inter / union).amax(1))
    return best


def image_scores(proposals: Tensor, ks: Sequence[int], instance_map: Tensor,
                 class_map: Optional[Tensor] = None) -> Dict[str, float]:
    """ABO^i, OR (instances) and ABO^c (class-merged segments, if ``class_map`` is given) of one image.

    Args:
        proposals: (R, H, W) label maps at the ground-truth resolution.
        instance_map: (H, W) instance ids, 0 = no instance.
        class_map: (H, W) class ids of the instance pixels (any non-zero id per class), 0 elsewhere.

    Returns:
        ``{'num_instances', 'abo_instance', 'object_recovery'[, 'abo_class']}`` (scores in [0, 1]; an image without
        instances gets only ``num_instances = 0``).
    """
    bo = best_overlaps(instance_map, proposals, ks)
    scores = dict(num_instances=float(bo.numel()))
    if bo.numel():
        scores.update(abo_instance=bo.mean().item(), object_recovery=(bo > RECOVERY_IOU).float().mean().item())
        if class_map is not None:
            scores['abo_class'] = best_overlaps(class_map, proposals, ks).mean().item()
    return scores


@METRICS.register_module()
class ObjectDiscoveryMetric(BaseMetric):
    """ABO^i, ABO^c and OR (in %) of K-means proposals of dense features (Odin, A.4), averaged over images.

    ``process`` takes data samples (dicts or DataSamples) holding ``pred_features`` (D, h, w), ``gt_instance_map``
    (H, W) and optionally ``gt_class_map`` (H, W) (see :func:`image_scores`); the samples of one call must share
    their feature size. Images without ground-truth instances are skipped.

    Args:
        ks: the K of the K-means runs (default 1, 2, ..., 128: 255 proposals).
        kmeans_iters, kmeans_inits: passed to ``batched_kmeans``.
    """

    default_prefix = 'object_discovery'

    def __init__(self, ks: Sequence[int] = DEFAULT_KS, kmeans_iters: int = 10, kmeans_inits: int = 8,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ks = tuple(ks)
        self.kmeans_iters, self.kmeans_inits = kmeans_iters, kmeans_inits

    def process(self, data_batch, data_samples: Sequence) -> None:
        samples = [s if isinstance(s, dict) else s.to_dict() for s in data_samples]
        features = torch.stack([torch.as_tensor(s['pred_features']) for s in samples])
        labels = kmeans_proposals(features, self.ks, self.kmeans_iters, self.kmeans_inits).cpu()
        for sample, proposals in zip(samples, labels):
            instance_map = torch.as_tensor(sample['gt_instance_map']).long().cpu()
            class_map = sample.get('gt_class_map')
            class_map = None if class_map is None else torch.as_tensor(class_map).long().cpu()
            self.results.append(image_scores(resize_labels(proposals, tuple(instance_map.shape)), self.ks,
                                             instance_map, class_map))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        scored = [r for r in results if r['num_instances']]
        metrics = dict(num_images=float(len(scored)))
        for key, name in (('abo_instance', 'ABO_i'), ('abo_class', 'ABO_c'), ('object_recovery', 'OR')):
            values = [r[key] for r in scored if key in r]
            if values:
                metrics[name] = 100.0 * sum(values) / len(values)
        return metrics

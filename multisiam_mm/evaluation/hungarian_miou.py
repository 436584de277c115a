"""Hungarian-matched mIoU for unsupervised semantic segmentation (DenseSiam Sec. 5.1, after IIC and PiCIE).

The model's labels are anonymous, so they are first matched one-to-one to the ground-truth classes: the confusion
matrix between ground truth and predictions over the whole evaluation set is the assignment score, and the linear
assignment maximising the matched pixels (Hungarian algorithm, scipy's ``linear_sum_assignment``) gives each
prediction id at most one class. Then, per class c matched to prediction k,

    IoU_c = TP / (TP + FP + FN),  TP = conf[c, k],  FN = Σ_j conf[c, j] - TP,  FP = Σ_i conf[i, k] - TP

and mIoU is the mean over the classes present in the ground truth or the matched predictions (NaN rows skipped).
A class left unmatched (more classes than prediction ids) has IoU 0; prediction ids left unmatched (over-clustering)
only count as false negatives of their pixels' classes. ``mIoU_st`` / ``mIoU_th`` average over the stuff and thing
classes (DenseSiam Table 3).

Shapes: ``C`` ground-truth classes, ``K`` prediction ids, label maps of any shape.
"""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def confusion_matrix(pred: Tensor, gt: Tensor, num_preds: int, num_classes: int, ignore_index: int = 255) -> Tensor:
    """conf[c, k] = number of pixels of class c predicted as k: pred, gt (...) int -> (C, K) int64.

    Pixels whose ground truth is ``ignore_index`` (or outside [0, C)) are skipped.
    """
    pred, gt = pred.flatten().long(), gt.flatten().long()
    keep = (gt != ignore_index) & (gt >= 0) & (gt < num_classes)
    if ((pred[keep] < 0) | (pred[keep] >= num_preds)).any():
        raise ValueError(f'confusion_matrix: predictions must be in [0, {num_preds})')
    flat = gt[keep] * num_preds + pred[keep]
    return torch.bincount(flat, minlength=num_classes * num_preds).reshape(num_classes, num_preds)


def hungarian_match(conf: Tensor) -> Tensor:
    """Class matched to each prediction id, maximising the matched pixels: conf (C, K) -> (K,) int64, -1 unmatched."""
    rows, cols = linear_sum_assignment(conf.cpu().numpy(), maximize=True)
    match = torch.full((conf.shape[1],), -1, dtype=torch.long)
    match[torch.as_tensor(cols, dtype=torch.long)] = torch.as_tensor(rows, dtype=torch.long)
    return match


def matched_iou(conf: Tensor, match: Tensor) -> Tensor:
    """Per-class IoU (C,) float64 after mapping prediction k to class ``match[k]``; NaN where TP + FP + FN = 0."""
    conf = conf.double()
    matched = match >= 0
    tp = torch.zeros(conf.shape[0], dtype=torch.float64)
    fp = torch.zeros_like(tp)
    classes, preds = match[matched], torch.nonzero(matched).flatten()
    tp[classes] = conf[classes, preds]
    fp[classes] = conf[:, preds].sum(0) - tp[classes]
    fn = conf.sum(1) - tp
    union = tp + fp + fn
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float('nan')))


def hungarian_miou(conf: Tensor, stuff_classes: Optional[Sequence[int]] = None,
                   thing_classes: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """Scores (%) after Hungarian matching, from a confusion matrix (C, K): mIoU, pixel accuracy ``aAcc`` (matched
    pixels / labelled pixels), and optionally ``mIoU_st`` / ``mIoU_th`` over the given class indices."""
    match = hungarian_match(conf)
    iou = matched_iou(conf, match).numpy()
    matched = torch.nonzero(match >= 0).flatten()
    results = {'mIoU': float(np.nanmean(iou) * 100),
               'aAcc': float(conf[match[matched], matched].sum() / conf.sum().clamp_min(1) * 100)}
    for name, classes in (('mIoU_st', stuff_classes), ('mIoU_th', thing_classes)):
        if classes is not None:
            results[name] = float(np.nanmean(iou[list(classes)]) * 100)
    return results


@METRICS.register_module()
class HungarianMIoU(BaseMetric):
    """Hungarian-matched mIoU over a whole evaluation set (one confusion matrix, one matching).

    Reads mmseg-style data samples: ``pred_sem_seg['data']`` and ``gt_sem_seg['data']``, label maps (1, H, W).

    Args:
        num_classes: C, the ground-truth classes (27 on COCO-Stuff curated).
        num_preds: K, the prediction ids (default C).
        ignore_index: ground-truth label of unlabelled pixels.
        stuff_classes, thing_classes: class indices for mIoU_st / mIoU_th.
    """

    default_prefix = 'unsup_seg'

    def __init__(self, num_classes: int, num_preds: Optional[int] = None, ignore_index: int = 255,
                 stuff_classes: Optional[Sequence[int]] = None, thing_classes: Optional[Sequence[int]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes
        self.num_preds = num_preds or num_classes
        self.ignore_index = ignore_index
        self.stuff_classes = stuff_classes
        self.thing_classes = thing_classes

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            self.results.append(confusion_matrix(ds['pred_sem_seg']['data'].cpu(), ds['gt_sem_seg']['data'].cpu(),
                                                 self.num_preds, self.num_classes, self.ignore_index))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        return hungarian_miou(torch.stack(results).sum(0), self.stuff_classes, self.thing_classes)

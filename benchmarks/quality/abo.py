"""Class-merged ABO of a frozen backbone on a labelled segmentation folder (the quality benchmark's third measure).

Each val image is resized to ``size``; the backbone's last-stage features are clustered by K-means for every K in
``ks`` (L2-normalised features, Euclidean: Odin A.4) and the proposals are scored against the class segments of the
label map (all pixels of one class form one segment; ``ignore_index`` pixels belong to none): the best IoU of each
segment over all proposals, averaged over the segments of an image, then over images (ABO^c, in %). The scoring is
ObjectDiscoveryMetric's, fed the class-merged map as its segments.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from multisiam_mm.datasets.image_listing import list_images
from multisiam_mm.evaluation import ObjectDiscoveryMetric
from multisiam_mm.evaluation.cluster_maps import extract_features, load_backbone, read_images


def labelled_pairs(seg_root: str, img_dir: str, ann_dir: str, img_suffix: str, seg_suffix: str,
                   split: str = 'val') -> List[Tuple[str, str]]:
    """(image, label) paths of a split: ``<img_dir>/<split>/**/<stem><img_suffix>`` with the label
    ``<ann_dir>/<split>/**/<stem><seg_suffix>`` at the same relative path, sorted. Missing labels are an error."""
    images_root, labels_root = osp.join(seg_root, img_dir, split), osp.join(seg_root, ann_dir, split)
    try:
        images = [p for p in list_images(images_root, extensions=(img_suffix, )) if p.endswith(img_suffix)]
    except ValueError:
        images = []
    if not images:
        raise FileNotFoundError(f'no *{img_suffix} images under {images_root}')
    pairs = []
    for path in images:
        label = osp.join(labels_root, osp.relpath(path, images_root)[:-len(img_suffix)] + seg_suffix)
        if not osp.exists(label):
            raise FileNotFoundError(f'no label {label} for {path}')
        pairs.append((path, label))
    return pairs


def class_segments(label: np.ndarray, ignore_index: int) -> torch.Tensor:
    """(H, W) int64 segment map: class c -> segment c + 1, ``ignore_index`` -> 0 (no segment)."""
    label = label.astype(np.int64)
    return torch.from_numpy(np.where(label == ignore_index, 0, label + 1))


def semantic_abo(checkpoint: Optional[str], seed: int, seg_root: str, img_dir: str, ann_dir: str, img_suffix: str,
                 seg_suffix: str, size: Tuple[int, int], ignore_index: int = 255, ks: Sequence[int] = (1, 2, 4, 8, 16),
                 max_images: Optional[int] = None, depth: int = 18, batch_size: int = 8) -> Dict[str, float]:
    """ABO^c (%) and the number of images scored, for a checkpoint's online backbone (random init with ``seed`` for
    ``checkpoint=None``) on the first ``max_images`` val images resized to ``size`` (W, H)."""
    torch.manual_seed(seed)
    backbone = load_backbone(checkpoint, depth=depth)
    metric = ObjectDiscoveryMetric(ks=ks, kmeans_iters=10, kmeans_inits=2)
    pairs = labelled_pairs(seg_root, img_dir, ann_dir, img_suffix, seg_suffix)[:max_images]
    for start in range(0, len(pairs), batch_size):
        label_of = dict(pairs[start:start + batch_size])
        kept, images = read_images(label_of, size, who='ABO')  # robust loader: a bad image is skipped, not scored
        if not images:
            continue
        labels = [cv2.resize(cv2.imread(label_of[p], cv2.IMREAD_UNCHANGED), size, interpolation=cv2.INTER_NEAREST)
                  for p in kept]
        with torch.no_grad():
            features = extract_features(backbone, images)
        segments = [class_segments(label, ignore_index) for label in labels]
        metric.process(None, [dict(pred_features=f, gt_instance_map=s) for f, s in zip(features, segments)])
    scores = metric.compute_metrics(metric.results)
    return dict(ABO_c=scores['ABO_i'], images=scores['num_images'])

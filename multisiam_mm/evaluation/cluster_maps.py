"""Cluster maps of a backbone's feature map (MultiSiam paper, Fig. 6): what its dense features group together.

Each image's final feature map (``H x W`` cells) is clustered on its own with :func:`batched_kmeans` (K = 3, cosine
by default, as MultiSiam's k-means targets), the cluster of each cell is upsampled (nearest) to the image and drawn
as a translucent colour over it. Cluster indices are renumbered by first appearance in raster order, so the colours
are deterministic (the top-left cell is always colour 0) and comparable between checkpoints. Everything here is a
pure function of its inputs except :func:`load_backbone` (reads a checkpoint), :func:`read_images` (reads image files
through the robust loader) and :func:`extract_features` (runs a network in eval mode, without gradients).
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..datasets.transforms.robust_loading import load_images
from ..models.utils.kmeans import Metric, batched_kmeans
from ..utils.backbone_export import (
    ONLINE_PREFIXES,
    TARGET_PREFIXES,
    load_backbone_strict,
    load_state_dict_file,
    resolve_checkpoint,
    select_backbone,
)

# Distinct RGB colours for clusters 0, 1, 2, ... (cycled beyond ten).
CLUSTER_PALETTE = np.array([(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (145, 30, 180),
                            (70, 240, 240), (245, 130, 48), (240, 50, 230), (128, 128, 0), (0, 0, 128)], np.uint8)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def backbone_tensors(checkpoint: str, network: str = 'online') -> Dict[str, Tensor]:
    """The backbone state_dict of a checkpoint file (or mmengine work dir): the ``network`` backbone of a pretraining
    checkpoint (``backbone.*`` online, ``target_net.*`` EMA target), or all tensors of a backbone-only checkpoint."""
    state = load_state_dict_file(resolve_checkpoint(checkpoint))
    if any(k.startswith(ONLINE_PREFIXES + TARGET_PREFIXES) for k in state):
        return select_backbone(state, network)[1]
    return dict(state)


def load_backbone(checkpoint: Optional[str], depth: int = 18, network: str = 'online') -> nn.Module:
    """An mmpretrain ResNet-``depth`` in eval mode with the checkpoint's backbone loaded strictly (PyTorch's default
    random initialisation for ``checkpoint=None``)."""
    backbone = MODELS.build(dict(type='mmpretrain.ResNet', depth=depth, out_indices=(3, )))
    if checkpoint is not None:
        load_backbone_strict(backbone, backbone_tensors(checkpoint, network))
    backbone.eval()  # mmpretrain's ResNet.train() returns None, so no chaining
    return backbone


def to_batch(images: Sequence[np.ndarray], mean: Sequence[float] = IMAGENET_MEAN,
             std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """``(B, 3, H, W)`` float32 normalised batch of same-size RGB uint8 images ``(H, W, 3)``."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@torch.no_grad()
def extract_features(backbone: nn.Module, images: Sequence[np.ndarray]) -> Tensor:
    """The last feature map ``(B, C, h, w)`` of ``backbone`` (eval mode) for same-size RGB uint8 images."""
    backbone.eval()
    return backbone(to_batch(images))[-1]


def canonical_labels(labels: Tensor) -> Tensor:
    """Renumber each row of ``labels (B, N)`` by first appearance (the first cell gets 0, the next new one 1, ...)."""
    num = int(labels.max()) + 1 if labels.numel() else 0
    first = torch.full((labels.shape[0], num), labels.shape[1], dtype=torch.long)
    positions = torch.arange(labels.shape[1]).expand_as(labels)
    first.scatter_reduce_(1, labels, positions, reduce='amin')
    rank = first.argsort(dim=1).argsort(dim=1)  # absent clusters (position N) rank last
    return rank.gather(1, labels)


def cluster_labels(features: Tensor, num_clusters: int = 3, metric: Metric = 'cosine') -> Tensor:
    """Cluster index ``(B, h, w)`` int64 of every cell of each feature map ``(B, C, h, w)``, clustered per image and
    renumbered by :func:`canonical_labels`. Identical cells (e.g. a constant map) all get cluster 0."""
    b, _, h, w = features.shape
    assignment = batched_kmeans(features.flatten(2).transpose(1, 2), num_clusters, metric=metric).assignment
    return canonical_labels(assignment).view(b, h, w)


def colourise(labels: np.ndarray, palette: np.ndarray = CLUSTER_PALETTE) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` of a label map ``(h, w)``: colour ``palette[label % len(palette)]``."""
    return palette[np.asarray(labels) % len(palette)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5,
            palette: np.ndarray = CLUSTER_PALETTE) -> np.ndarray:
    """The RGB uint8 image ``(H, W, 3)`` blended with the colours of ``labels (h, w)`` upsampled (nearest) to it."""
    height, width = image.shape[:2]
    up = cv2.resize(np.asarray(labels, np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colourise(up, palette).astype(np.float32)
    return blend.round().clip(0, 255).astype(np.uint8)


def cluster_overlays(backbone: nn.Module, images: Sequence[np.ndarray], num_clusters: int = 3,
                     metric: Metric = 'cosine', alpha: float = 0.5) -> List[np.ndarray]:
    """One cluster-map overlay per image (same-size RGB uint8 images) for one backbone."""
    labels = cluster_labels(extract_features(backbone, images), num_clusters, metric).numpy()
    return [overlay(img, lab, alpha) for img, lab in zip(images, labels)]


def _caption(text: str, width: int, height: int = 18) -> np.ndarray:
    """A white strip ``(height, width, 3)`` with ``text`` in black."""
    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def _join(tiles: Sequence[np.ndarray], axis: int, pad: int) -> np.ndarray:
    """``tiles`` concatenated along ``axis`` (0: rows, 1: columns) with ``pad`` white pixels between them."""
    shape = list(tiles[0].shape)
    shape[axis] = pad
    gap = np.full(shape, 255, np.uint8)
    return np.concatenate([x for tile in tiles for x in (gap, tile)][1:], axis=axis)


def compose_grid(rows: Sequence[Sequence[np.ndarray]], column_names: Optional[Sequence[str]] = None,
                 pad: int = 2) -> np.ndarray:
    """One RGB uint8 image of same-size tiles ``rows[r][c]`` (short rows filled with white) separated by ``pad``
    white pixels, with a caption strip above each column when ``column_names`` are given."""
    tile_h, tile_w = rows[0][0].shape[:2]
    num_cols = max(len(r) for r in rows)
    blank = np.full((tile_h, tile_w, 3), 255, np.uint8)
    lines = [list(r) + [blank] * (num_cols - len(r)) for r in rows]
    if column_names:
        lines.insert(0, [_caption(name, tile_w) for name in column_names] + [_caption('', tile_w)] * (
            num_cols - len(column_names)))
    return _join([_join(line, 1, pad) for line in lines], 0, pad)


def read_images(paths: Iterable[str], size: Sequence[int], limit: Optional[int] = None,
                who: str = 'cluster maps') -> Tuple[List[str], List[np.ndarray]]:
    """The paths and the RGB uint8 images ``(h, w, 3)``, resized to ``size = (w, h)``, of the first ``limit``
    readable files of ``paths``, read by the robust loader: a bad file is skipped with a warning and quarantined
    (multisiam_mm.datasets.transforms.robust_loading.load_images)."""
    kept, images = [], []
    for path, bgr in load_images(paths, limit, who=who):
        kept.append(path)
        images.append(cv2.cvtColor(cv2.resize(bgr, tuple(size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return kept, images

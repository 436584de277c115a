"""Evaluation metrics (into mmpretrain's METRICS registry)."""
from .hungarian_miou import HungarianMIoU, hungarian_miou
from .object_discovery import ObjectDiscoveryMetric, best_overlaps, image_scores, kmeans_proposals

__all__ = ['HungarianMIoU', 'hungarian_miou', 'ObjectDiscoveryMetric', 'best_overlaps', 'image_scores',
           'kmeans_proposals']

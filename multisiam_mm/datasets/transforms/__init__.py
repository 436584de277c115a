"""Pair transforms: IoU-constrained view pairs with recorded geometry, per-view photometric pipelines, packing."""
from .iou_pair_crop import IoUPairCrop, PairCropStats, sample_pair_boxes
from .pair_formatting import PackPairInputs, PairPhotometric
from .robust_loading import RobustLoadImage, decode_image
from .spanning_view import OdinSpanningView, PackOdinInputs

__all__ = ['IoUPairCrop', 'PairCropStats', 'sample_pair_boxes', 'PairPhotometric', 'PackPairInputs', 'OdinSpanningView',
           'PackOdinInputs', 'RobustLoadImage', 'decode_image']

"""Odin's spanning view (Hénaff et al., ECCV 2022, Sec. 3.1 and appendix A.1) and the packing of Odin's inputs.

The object discovery network sees the *spanning view* v0: the smallest crop covering both augmented views v1 and v2,
cut from the UN-augmented image (no flip, no photometric augmentation) and resized to S x S (448 for ResNets, 224
for ViTs, A.1). Its masks are later cropped, flipped and resized into each view by the recorded geometry
(``multisiam_mm.models.utils.geometry.map_masks_to_view``).

``IoUPairCrop`` replaces ``img`` by the two views, so the spanning view cannot be cut by a later, separate transform:
:class:`OdinSpanningView` runs the pair crop itself (any transform that records ``view_boxes`` / ``view_flips``) on
the loaded image and then crops the spanning view from the image it kept. Put it where the pair crop would be, i.e.
before ``PairPhotometric``, which only touches ``img`` (the views) and leaves ``span_img`` un-augmented.

With ``RobustLoadImage(reduced_decode=True)`` the image arrives as a DeferredJpeg: the spanning view is declared to it
as a later crop, so that the pair crop decodes it at a DCT scale that keeps S pixels across the spanning box too, and
the spanning view is cut from the same reduced pixels (multisiam_mm.datasets.transforms.scaled_pixels).
"""
import math
from dataclasses import replace
from functools import partial
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TRANSFORMS

from ...models.utils.geometry import spanning_box
from .pair_formatting import PackPairInputs
from .robust_loading import DeferredJpeg
from .scaled_pixels import CropResize, ScaledPixels

SPANS = ('views', 'image')


@TRANSFORMS.register_module()
class OdinSpanningView(BaseTransform):
    """Two augmented views (by ``pair_crop``) plus Odin's un-augmented spanning view v0 of the same image.

    **Required keys:** ``img`` (H, W[, C] array, or a DeferredJpeg for a pair crop that decodes it: IoUPairCrop).

    **Added keys:** those of ``pair_crop`` (``img`` -> [view1, view2], ``view_boxes`` (2, 4), ``view_flips`` (2,),
    ``ori_shape``), and ``span_img`` (size, size[, C]) with ``span_box`` float32 (4,) (x1, y1, x2, y2) in original
    pixels, the box it was cut from (conventions of ``multisiam_mm.models.utils.geometry``).

    Args:
        pair_crop: config of the view-pair transform, e.g. ``dict(type='IoUPairCrop', size=224, iou_thr=0.)``:
            Odin draws BYOL's two views independently (Sec. 3.1, A.1), i.e. without an IoU constraint.
        size: side S of the resized spanning view (A.1: 448 for ResNet / Swin, 224 for ViT).
        span: ``'views'``: the smallest box covering both views (Sec. 3.1, the paper's setting); ``'image'``: the
            whole image, a fixed view for the discrete-update mode of Table 6, whose masks are cached per image and
            so must not depend on the views drawn in one epoch.
        interpolation, backend: resize method, as in ``mmcv.imresize``.
    """

    def __init__(self, pair_crop: dict, size: int = 448, span: str = 'views', interpolation: str = 'bicubic',
                 backend: str = 'cv2') -> None:
        if not (isinstance(size, int) and size > 0):
            raise ValueError(f'OdinSpanningView: size must be a positive int, got {size!r}')
        if span not in SPANS:
            raise ValueError(f'OdinSpanningView: span must be one of {SPANS}, got {span!r}')
        self.pair_crop = TRANSFORMS.build(pair_crop)
        self.size = size
        self.span = span
        self.interpolation = interpolation
        self.backend = backend
        self.crop_resize = CropResize(size, interpolation, backend)

    def span_box(self, view_boxes: np.ndarray, img_hw: Sequence[int]) -> np.ndarray:
        """Integer box (4,) float32 of the spanning view: covers both ``view_boxes`` (2, 4), or the whole image."""
        if self.span == 'image':
            return np.array((0, 0, img_hw[1], img_hw[0]), dtype=np.float32)
        boxes = torch.as_tensor(np.asarray(view_boxes, dtype=np.float64))
        x1, y1, x2, y2 = spanning_box(boxes[:1], boxes[1:])[0].tolist()
        return np.array((math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)), dtype=np.float32)

    def transform(self, results: dict) -> Optional[dict]:
        img = results['img']
        deferred = isinstance(img, DeferredJpeg)
        img_hw = img.hw if deferred else img.shape[:2]
        if deferred and img.device:
            raise ValueError("OdinSpanningView: device_decode covers the pair pipeline only (IoUPairCrop -> "
                             "PairPhotometric -> PackPairInputs); Odin's spanning view is cut on the CPU: set "
                             "RobustLoadImage(device_decode=False)")
        if deferred:
            span = (partial(self.span_box, img_hw=img_hw), self.crop_resize)
            img = results['img'] = replace(img, later_crops=img.later_crops + (span,))
        results = self.pair_crop(results)
        if results is None:  # a DeferredJpeg found corrupt when decoded (counted by its RobustLoadImage)
            return None
        if 'view_boxes' not in results:
            raise ValueError(f'OdinSpanningView: pair_crop {type(self.pair_crop).__name__} did not record '
                             f'view_boxes')
        box = self.span_box(results['view_boxes'], img_hw)
        pixels = img.pixels if deferred else ScaledPixels(img)
        results['span_img'] = pixels.crop(box, self.crop_resize)
        results['span_box'] = box
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(pair_crop={self.pair_crop!r}, size={self.size}, span={self.span!r}, '
                f'interpolation={self.interpolation!r}, backend={self.backend!r})')


@TRANSFORMS.register_module()
class PackOdinInputs(PackPairInputs):
    """:class:`PackPairInputs` plus the spanning view: ``inputs`` = [view1, view2, span (C, S0, S0)] tensors.

    The DataSample gets ``span_box`` float32 (4,) as a data field beside ``view_boxes`` and ``view_flips``; after
    collation and ``SelfSupDataPreprocessor`` (which normalises each element of the list) the model receives
    ``[v1 (B, 3, S, S), v2 (B, 3, S, S), v0 (B, 3, S0, S0)]``.

    **Required keys:** those of :class:`PackPairInputs`, ``span_img`` and ``span_box`` (from
    :class:`OdinSpanningView`).
    """

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        packed['inputs'].append(PackInputs.format_input(results['span_img']))
        packed['data_samples'].set_field(torch.as_tensor(np.asarray(results['span_box'], dtype=np.float32)),
                                         'span_box', field_type='data')
        return packed

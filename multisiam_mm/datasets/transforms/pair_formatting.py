"""Per-view photometric pipelines and packing for the view pairs made by IoUPairCrop.

mmpretrain's MultiView runs a whole pipeline (crop included) per view and keeps only ``img``, which loses the view
geometry. Here the geometry is fixed by IoUPairCrop first; :class:`PairPhotometric` then applies one pipeline per
view to the pixels only, and :class:`PackPairInputs` carries the geometry into each DataSample.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample

from .photometric_draws import check_pipeline, draw_pipeline, step_count
from .robust_loading import DeferredJpeg

# Keys that mmcv / mmpretrain geometric transforms write (RandomFlip always sets ``flip``); seeing one appear means a
# view pipeline moved pixels, which would silently invalidate the recorded view boxes and flips.
_GEOMETRY_KEYS = ('flip', 'flip_direction', 'scale_factor', 'crop_bbox', 'homography_matrix')


@TRANSFORMS.register_module()
class PairPhotometric(BaseTransform):
    """Apply ``view_pipelines[i]`` to view ``i`` of ``results['img']`` (BYOL's asymmetric T / T').

    **Required keys:** ``img`` (list of view arrays, as made by IoUPairCrop). **Modified keys:** ``img``.

    The pipelines must be photometric: each view keeps its shape and no geometric transform runs (checked: a changed
    shape or a geometry key such as ``flip`` in a view's results raises ValueError). Each view pipeline sees a shallow
    copy of ``results`` with ``img`` set to its view; only the transformed ``img`` comes back. The transforms draw from
    the global generators (numpy, python), which ``UnlabeledImageDataset`` seeds per sample from (seed, epoch, index)
    under the resumable samplers (docs/resume.md), so T and T' of a sample do not depend on the worker or a resume.

    Under ``RobustLoadImage(device_decode=True)`` a sample whose ``img`` is still JPEG bytes (a device
    DeferredJpeg) is not transformed: the random parameters of each view pipeline are drawn, by the transforms' own
    samplers in the same order (multisiam_mm.datasets.transforms.photometric_draws), into ``photometric_draws``
    (V, J, 4), which DevicePairPreprocessor applies to the views it cuts; a sample decoded on the CPU is transformed
    as usual and gets an all-"nothing" table.

    Args:
        view_pipelines: one list of transform configs (or callables) per view.
    """

    def __init__(self, view_pipelines: Sequence[Sequence]) -> None:
        self.pipelines = [Compose(list(p)) for p in view_pipelines]
        self._steps: Optional[int] = None  # draw-table rows, set on the first device_decode sample

    def transform(self, results: dict) -> dict:
        views = results['img']
        if isinstance(views, DeferredJpeg):  # device_decode: the preprocessor applies the drawn parameters
            results['photometric_draws'] = self.draw_tables([draw_pipeline(p.transforms) for p in self.pipelines])
            return results
        if len(views) != len(self.pipelines):
            raise ValueError(f'PairPhotometric: {len(self.pipelines)} view pipelines for {len(views)} views')
        results['img'] = [self._apply(i, pipeline, results, view)
                          for i, (pipeline, view) in enumerate(zip(self.pipelines, views))]
        if results.get('device_decode'):  # cut on the CPU, T / T' applied: nothing left for the preprocessor
            results['photometric_draws'] = self.draw_tables([np.zeros((0, 4), np.float32) for _ in self.pipelines])
        return results

    def draw_tables(self, tables: Sequence[np.ndarray]) -> np.ndarray:
        """(V, J, 4) float32: the views' draw tables, padded with "nothing" rows to J, the longest view pipeline's
        step count (so that every sample of a batch has the same J)."""
        if self._steps is None:
            for p in self.pipelines:
                check_pipeline(p.transforms)
            self._steps = max(sum(step_count(t) for t in p.transforms) for p in self.pipelines)
        out = np.zeros((len(tables), self._steps, 4), np.float32)
        for i, table in enumerate(tables):
            out[i, :len(table)] = table
        return out

    @staticmethod
    def _apply(i: int, pipeline: Compose, results: dict, view: np.ndarray) -> np.ndarray:
        view_results = {k: v for k, v in results.items() if k not in _GEOMETRY_KEYS}
        view_results['img'] = view
        out = pipeline(view_results)
        if out is None:
            raise ValueError(f'PairPhotometric: view pipeline {i} dropped the sample (a transform returned None)')
        moved = [k for k in _GEOMETRY_KEYS if k in out]
        if out['img'].shape != view.shape or moved:
            raise ValueError(f'PairPhotometric: view pipeline {i} is not photometric (shape {view.shape} -> '
                             f'{out["img"].shape}, geometry keys {moved}); geometric augmentation belongs to '
                             f'IoUPairCrop, which records it')
        return out['img']

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(view_pipelines={self.pipelines})'


@TRANSFORMS.register_module()
class PackPairInputs(BaseTransform):
    """Pack a view pair for mmpretrain: ``inputs`` = [view1 (C, S, S), view2] tensors, ``data_samples`` = DataSample.

    The DataSample holds the geometry as data fields (moved to the device with the batch): ``view_boxes`` float32
    (2, 4) crop boxes in original pixels and ``view_flips`` bool (2,); and ``meta_keys`` (``ori_shape`` included) as
    metainfo. After collation (mmengine ``pseudo_collate`` or ``default_collate``) ``data_samples`` is a list, so an
    algorithm reads ``torch.stack([ds.view_boxes for ds in data_samples])`` -> (B, 2, 4), likewise ``view_flips``
    -> (B, 2), and ``ds.ori_shape`` -> (H, W). IoUPairCrop's per-sample ``pair_candidates``, ``pair_passing`` and
    ``pair_fallback`` are default meta keys too (read by PairCropStatsHook); keys missing from ``results`` are skipped.

    Under ``RobustLoadImage(device_decode=True)`` ``inputs`` is ``[payload]``: the JPEG bytes (N,) uint8 of a device
    DeferredJpeg, or the CPU-cut views stacked (2, C, S, S); the DataSample also holds ``photometric_draws``
    (2, J, 4) and the metainfo ``view_interpolation``, for DevicePairPreprocessor (collate with pseudo_collate).

    **Required keys:** ``img`` (list of 2 arrays, or a device DeferredJpeg), ``view_boxes``, ``view_flips``,
    ``ori_shape``.
    """

    DEFAULT_META_KEYS = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'pair_candidates', 'pair_passing',
                         'pair_fallback')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        device = results.get('device_decode', False)
        if isinstance(img, DeferredJpeg):
            inputs: List[torch.Tensor] = [torch.frombuffer(bytearray(img.data), dtype=torch.uint8)]
        else:
            inputs = PackInputs.format_input(list(img))
            inputs = [torch.stack(inputs)] if device else inputs
        data_sample = DataSample()
        if device:
            data_sample.set_field(torch.as_tensor(results['photometric_draws']), 'photometric_draws',
                                  field_type='data')
            data_sample.set_field(results.get('view_interpolation', ''), 'view_interpolation', field_type='metainfo')
        data_sample.set_field(torch.as_tensor(np.asarray(results['view_boxes'], dtype=np.float32)), 'view_boxes',
                              field_type='data')
        data_sample.set_field(torch.as_tensor(np.asarray(results['view_flips'], dtype=np.bool_)), 'view_flips',
                              field_type='data')
        for key in self.meta_keys:
            if key in results:
                data_sample.set_field(results[key], key, field_type='metainfo')
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'

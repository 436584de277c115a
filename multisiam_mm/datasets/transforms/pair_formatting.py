"""Per-view photometric pipelines and packing for the view pairs made by IoUPairCrop.

mmpretrain's MultiView runs a whole pipeline (crop included) per view and keeps only ``img``, which loses the view
geometry. Here the geometry is fixed by IoUPairCrop first; :class:`PairPhotometric` then applies one pipeline per
view to the pixels only, and :class:`PackPairInputs` carries the geometry into each DataSample.
"""
from typing import List, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample

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

    Args:
        view_pipelines: one list of transform configs (or callables) per view.
    """

    def __init__(self, view_pipelines: Sequence[Sequence]) -> None:
        self.pipelines = [Compose(list(p)) for p in view_pipelines]

    def transform(self, results: dict) -> dict:
        views = results['img']
        if len(views) != len(self.pipelines):
            raise ValueError(f'PairPhotometric: {len(self.pipelines)} view pipelines for {len(views)} views')
        results['img'] = [self._apply(i, pipeline, results, view)
                          for i, (pipeline, view) in enumerate(zip(self.pipelines, views))]
        return results

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

    **Required keys:** ``img`` (list of 2 arrays), ``view_boxes``, ``view_flips``, ``ori_shape``.
    """

    DEFAULT_META_KEYS = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'pair_candidates', 'pair_passing',
                         'pair_fallback')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs: List[torch.Tensor] = PackInputs.format_input(list(results['img']))
        data_sample = DataSample()
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

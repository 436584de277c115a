"""IoUPairCrop: two RandomResizedCrop views whose IoU exceeds a threshold (MultiSiam Sec. 3.2), geometry recorded.

Distribution. The reference is naive sequential rejection: draw box A with torchvision's RandomResizedCrop (area
uniform in ``scale * image area``, log aspect ratio uniform in ``log(ratio)``, up to 10 attempts, else a centre crop),
draw box B the same way, independently, and start again unless ``IoU(A, B) > iou_thr``. :func:`sample_pair_boxes`
draws ``candidates_per_round`` such candidate pairs at once with numpy (per pair still needed) and returns the FIRST
one that passes. The candidates are i.i.d., so the first passing one has exactly the law of the sequential sampler;
neither the pair with the highest IoU nor a B re-drawn for a fixed A would (both bias the result, see
tests/test_iou_pair_crop.py, which also checks this one against a transcription of torchvision's sampler).

Bounded effort. After ``max_rounds`` rounds without a passing candidate, the fallback returns the highest-IoU candidate
of the last round (its IoU is <= iou_thr). Fallbacks are counted in :attr:`IoUPairCrop.stats` (per process: each
data worker holds its own copy) and warned through the current MMLogger when their count reaches 1, 2, 4, 8, ...
With the defaults (64 rounds of 16) and the ~26 % acceptance of iou_thr=0.5 on a 3:2 frame, a fallback has
probability 0.74^1024, i.e. never; it exists for extreme thresholds or tiny images.

What is checked at construction. Boxes have integer pixel corners, so two identical boxes (IoU = 1) have positive
probability for any scale and ratio range: every ``iou_thr < 1`` is reachable, and ``iou_thr >= 1`` (IoU must EXCEED
the threshold, and IoU <= 1) is the only impossible one; the bound IoU <= a / b for boxes of areas a <= b never rules
out a pair, because both boxes may draw the same area. How OFTEN a pair passes depends on the image size, unknown
until the first image, so it is measured (stats, benchmarks/pair_crop_bench.py) rather than checked.

Randomness comes from numpy's global state (``np.random``). Loaded through ``ResumableSampler`` /
``ResumableInfiniteSampler``, ``UnlabeledImageDataset`` seeds it for each sample from (seed, epoch, index)
(:func:`multisiam_mm.datasets.samplers.sample_rng`), so boxes and flips depend on the sample only, not on the worker
or on whether the run was resumed; with other samplers it is the worker's stream, which mmengine seeds per worker.

Reduced decoding. Given a :class:`~multisiam_mm.datasets.transforms.robust_loading.DeferredJpeg` (from
``RobustLoadImage(reduced_decode=True)``) instead of an array, the boxes are drawn from its header size, then it is
decoded at the coarsest DCT scale at which both boxes keep ``size`` pixels per side, and the views are cut from the
reduced pixels with the exact full-resolution geometry (multisiam_mm.datasets.transforms.scaled_pixels). The random
draws, boxes, flips and recorded geometry are those of the full-resolution path; only the view pixels differ, by the
smoothing of the reduced decode.
"""
import logging
import math
from dataclasses import dataclass, fields
from typing import Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

from multisiam_mm.models.utils.device_views import DEVICE_INTERPOLATIONS

from .robust_loading import DeferredJpeg
from .scaled_pixels import CropResize, ScaledPixels

RRC_ATTEMPTS = 10  # torchvision / mmpretrain RandomResizedCrop: attempts before the centre-crop fallback
_INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')
_BACKENDS = ('cv2', 'pillow')
_PLUS_MINUS = np.array((1.0, -1.0))[:, None, None]  # log aspect -> (log aspect, -log aspect) for (w, h)


@dataclass
class PairCropStats:
    """Effort of the pair sampler. ``candidates``: candidate pairs drawn; ``passing``: those with IoU > iou_thr;
    ``accepted``: pairs returned by rejection (the first passing candidate); ``fallbacks``: pairs returned by the
    max_rounds fallback."""

    candidates: int = 0
    passing: int = 0
    accepted: int = 0
    fallbacks: int = 0

    def __iadd__(self, other: 'PairCropStats') -> 'PairCropStats':
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def acceptance_rate(self) -> float:
        """Fraction of independent candidate pairs with IoU > iou_thr."""
        return self.passing / max(self.candidates, 1)


def centre_crop_size(img_hw: Tuple[int, int], ratio: Tuple[float, float]) -> Tuple[int, int]:
    """(h, w) of RandomResizedCrop's fallback centre crop: the whole image clipped to the aspect-ratio range."""
    img_h, img_w = img_hw
    in_ratio = img_w / img_h
    if in_ratio < min(ratio):
        return int(round(img_w / min(ratio))), img_w
    if in_ratio > max(ratio):
        return img_h, int(round(img_h * max(ratio)))
    return img_h, img_w


def random_resized_boxes(rng, shape: Tuple[int, ...], img_hw: Tuple[int, int], scale: Tuple[float, float],
                         ratio: Tuple[float, float]) -> np.ndarray:
    """i.i.d. torchvision RandomResizedCrop boxes of an (H, W) image: (*shape, 4) (x1, y1, x2, y2), integer-valued.

    Each box makes RRC_ATTEMPTS (area, aspect) attempts and keeps the first that fits the image, else the fallback
    centre crop (:func:`centre_crop_size`); its offsets are uniform over the integer positions inside the image.
    All attempts are drawn at once (a third of them miss on a 3:2 frame, so retry loops would cost more).
    """
    img_h, img_w = img_hw
    img_area, T, M = img_h * img_w, RRC_ATTEMPTS, math.prod(shape)
    u = rng.random((2 * T + 2, M))  # T areas, T log aspects, x offset, y offset
    area = img_area * scale[0] + img_area * (scale[1] - scale[0]) * u[:T]  # (T, M)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    log_aspect = log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[T:2 * T]
    # w = sqrt(area * aspect), h = sqrt(area / aspect); rint rounds half to even, as Python's round()
    wh = np.rint(np.sqrt(area * np.exp(log_aspect * _PLUS_MINUS)))  # (2, T, M)
    fits = (wh[0] <= img_w) & (wh[1] <= img_h)  # (T, M)
    if img_area * scale[0] * min(ratio[0], 1 / ratio[1]) <= 0.25:  # w or h may round to 0 on a tiny image
        fits &= wh.min(axis=0) >= 1
    pick = (fits.argmax(axis=0), np.arange(M))  # first fitting attempt of each box
    wh = wh[:, pick[0], pick[1]]  # (2, M)
    xy = np.floor(u[-2:] * (np.array((img_w + 1, img_h + 1))[:, None] - wh))
    if not fits[pick].all():  # a box without a fitting attempt: centre crop
        missed = ~fits[pick]
        crop_h, crop_w = centre_crop_size(img_hw, ratio)
        wh[:, missed] = np.array((crop_w, crop_h))[:, None]
        xy[:, missed] = np.array(((img_w - crop_w) // 2, (img_h - crop_h) // 2))[:, None]
    return np.concatenate((xy, xy + wh)).T.reshape(shape + (4,))


def _pair_iou(boxes: np.ndarray) -> np.ndarray:
    """IoU of the two boxes of each candidate: (M, 2, 4) -> (M,)."""
    a, b = boxes[:, 0], boxes[:, 1]
    overlap = np.maximum(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0)  # (M, 2)
    size = boxes[..., 2:] - boxes[..., :2]  # (M, 2, 2)
    inter = overlap[:, 0] * overlap[:, 1]
    area = size[..., 0] * size[..., 1]  # (M, 2)
    return inter / (area[:, 0] + area[:, 1] - inter)


def sample_pair_boxes(img_hw: Tuple[int, int], num_pairs: int, scale: Tuple[float, float],
                      ratio: Tuple[float, float], iou_thr: Optional[float], candidates_per_round: int,
                      max_rounds: int, rng=np.random) -> Tuple[np.ndarray, PairCropStats]:
    """Sample ``num_pairs`` view pairs with IoU > iou_thr, each distributed as naive sequential rejection.

    Each round draws ``candidates_per_round`` i.i.d. candidate pairs per pair still needed, and takes the passing
    ones in draw order. Passing candidates of an i.i.d. stream are i.i.d. draws from the law "(A, B) given
    IoU(A, B) > iou_thr", so for one pair this is the first passing candidate, exactly the sequential sampler, and a
    batch is a set of independent such pairs. Pairs still missing after ``max_rounds`` take the highest-IoU
    non-passing candidates of the last round (counted as fallbacks, appended last).

    Args:
        img_hw: original image (H, W).
        iou_thr: None or 0 disables the threshold (independent boxes, plain BYOL).
        rng: anything with ``.random(shape)``: the ``np.random`` module (global state, the default),
            a ``np.random.RandomState`` or a ``np.random.Generator``.

    Returns:
        boxes (num_pairs, 2, 4) float64 (x1, y1, x2, y2) in original pixels, integer-valued; and this call's stats.
    """
    stats = PairCropStats()
    if not iou_thr:
        stats.candidates = stats.passing = stats.accepted = num_pairs
        return random_resized_boxes(rng, (num_pairs, 2), img_hw, scale, ratio), stats

    picked = []
    need = num_pairs
    for round_idx in range(max_rounds):
        boxes = random_resized_boxes(rng, (need * candidates_per_round, 2), img_hw, scale, ratio)
        iou = _pair_iou(boxes)
        passing = iou > iou_thr
        first = np.flatnonzero(passing)[:need]
        stats.candidates += iou.size
        stats.passing += int(passing.sum())
        stats.accepted += first.size
        if round_idx == max_rounds - 1 and first.size < need:  # fallback
            failing = np.flatnonzero(~passing)
            best = failing[np.argsort(-iou[failing], kind='stable')[:need - first.size]]
            stats.fallbacks += best.size
            first = np.concatenate((first, best))
        picked.append(boxes[first])
        need -= first.size
        if not need:
            break
    return np.concatenate(picked), stats


def _check_range(name: str, value: Sequence[float]) -> Tuple[float, float]:
    if len(value) != 2 or not 0 < value[0] <= value[1]:
        raise ValueError(f'IoUPairCrop: {name} must be (min, max) with 0 < min <= max, got {value}')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class IoUPairCrop(BaseTransform):
    """Two views of one image: RandomResizedCrop boxes with IoU > iou_thr, resized, randomly flipped, recorded.

    **Required keys:** ``img`` (H, W[, C] array, uint8 or float32; or a DeferredJpeg, see module doc).

    **Modified keys:** ``img`` -> [view1, view2], each (size, size[, C]); ``ori_shape`` = (H, W);
    ``img_shape`` = (size, size).

    **Added keys:** ``view_boxes`` float32 (2, 4) crop boxes (x1, y1, x2, y2) in original pixels (see
    multisiam_mm.models.utils.geometry for the convention); ``view_flips`` bool (2,) horizontal flips;
    ``pair_candidates`` int, candidate pairs drawn for this sample, ``pair_passing`` int, how many of them had
    IoU > iou_thr, and ``pair_fallback`` bool, whether its pair came from the max_rounds fallback (per-sample
    statistics, which reach the main process through the data, unlike
    :attr:`stats`; PackPairInputs keeps them as metainfo and PairCropStatsHook logs them); ``decode_factor`` int,
    the DCT scale 1/f the views were cut at (1 for an array input).

    A DeferredJpeg left for the device (``RobustLoadImage(device_decode=True)``) stays ``img``: only the geometry
    is drawn and recorded, plus ``view_interpolation`` for the data preprocessor that cuts the views.

    Returns None when a DeferredJpeg turns out corrupt (counted by its RobustLoadImage), so that mmengine draws
    another sample.

    Args:
        size: output side S of each view.
        scale, ratio: RandomResizedCrop area fraction and aspect-ratio (w / h) ranges.
        iou_thr: keep pairs with IoU > iou_thr; None or 0 disables it (plain BYOL views).
        max_rounds, candidates_per_round: bounded effort of the rejection sampler (see module doc for the fallback).
        interpolation, backend: resize method, as in ``mmcv.imresize``.
        flip_prob: probability of a horizontal flip, drawn independently per view.
    """

    def __init__(self, size: int = 224, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3. / 4., 4. / 3.), iou_thr: Optional[float] = 0.5, max_rounds: int = 64,
                 candidates_per_round: int = 16, interpolation: str = 'bicubic', flip_prob: float = 0.5,
                 backend: str = 'cv2') -> None:
        if not (isinstance(size, int) and size > 0):
            raise ValueError(f'IoUPairCrop: size must be a positive int, got {size!r}')
        self.scale = _check_range('scale', scale)
        self.ratio = _check_range('ratio', ratio)
        if iou_thr is not None and not 0 <= iou_thr < 1:
            raise ValueError(f'IoUPairCrop: iou_thr must be None or in [0, 1) (IoU <= 1 cannot exceed a threshold '
                             f'>= 1), got {iou_thr}')
        for name, value in (('max_rounds', max_rounds), ('candidates_per_round', candidates_per_round)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f'IoUPairCrop: {name} must be an int >= 1, got {value!r}')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f'IoUPairCrop: interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}')
        if not 0 <= flip_prob <= 1:
            raise ValueError(f'IoUPairCrop: flip_prob must be in [0, 1], got {flip_prob}')
        if backend not in _BACKENDS:
            raise ValueError(f'IoUPairCrop: backend must be one of {_BACKENDS}, got {backend!r}')
        self.size = size
        self.iou_thr = iou_thr
        self.max_rounds = max_rounds
        self.candidates_per_round = candidates_per_round
        self.interpolation = interpolation
        self.flip_prob = flip_prob
        self.backend = backend
        self.stats = PairCropStats()

    def sample_boxes(self, img_hw: Tuple[int, int], num_pairs: int = 1) -> np.ndarray:
        """Geometry only: (num_pairs, 2, 4) boxes for an (H, W) image, from np.random; updates and warns on stats."""
        return self.sample_boxes_with_stats(img_hw, num_pairs)[0]

    def sample_boxes_with_stats(self, img_hw: Tuple[int, int],
                                num_pairs: int = 1) -> Tuple[np.ndarray, PairCropStats]:
        """:meth:`sample_boxes` plus this call's own :class:`PairCropStats` (also added to :attr:`stats`)."""
        boxes, stats = sample_pair_boxes(img_hw, num_pairs, self.scale, self.ratio, self.iou_thr,
                                         self.candidates_per_round, self.max_rounds)
        before = self.stats.fallbacks
        self.stats += stats
        if self.stats.fallbacks.bit_length() > before.bit_length():  # the count reached 1, 2, 4, 8, ...
            print_log(f'IoUPairCrop: no pair with IoU > {self.iou_thr} in {self.max_rounds} x '
                      f'{self.candidates_per_round} candidates for a {img_hw[0]}x{img_hw[1]} image; used the '
                      f'highest-IoU candidate instead ({self.stats.fallbacks} fallbacks so far, acceptance rate '
                      f'{self.stats.acceptance_rate:.4f}). Lower iou_thr or raise max_rounds.',
                      logger='current', level=logging.WARNING)
        return boxes, stats

    @property
    def crop_resize(self) -> CropResize:
        """How each view is cut and resized."""
        return CropResize(self.size, self.interpolation, self.backend)

    def transform(self, results: dict) -> Optional[dict]:
        img = results['img']
        deferred = isinstance(img, DeferredJpeg)
        img_hw = img.hw if deferred else img.shape[:2]
        boxes, stats = self.sample_boxes_with_stats(img_hw)
        boxes = boxes[0]
        flips = np.random.random(2) < self.flip_prob
        if deferred and img.device:  # views cut by the data preprocessor (DevicePairPreprocessor)
            if self.interpolation not in DEVICE_INTERPOLATIONS:
                raise ValueError(f'IoUPairCrop: interpolation {self.interpolation!r} has no device counterpart '
                                 f'(device_decode); use one of {DEVICE_INTERPOLATIONS}')
            img.report(None)
            results['view_interpolation'] = self.interpolation
            results['decode_factor'] = 1
        else:
            pixels = img.decode_for(boxes, self.crop_resize) if deferred else ScaledPixels(img)
            if pixels is None:
                return None
            views = [pixels.crop(box, self.crop_resize) for box in boxes]
            results['img'] = [np.ascontiguousarray(v[:, ::-1]) if flip else v for v, flip in zip(views, flips)]
            results['decode_factor'] = pixels.factor
        results['view_boxes'] = boxes.astype(np.float32)
        results['view_flips'] = flips
        results['ori_shape'] = img_hw
        results['img_shape'] = (self.size, self.size)
        results['pair_candidates'] = stats.candidates
        results['pair_passing'] = stats.passing
        results['pair_fallback'] = bool(stats.fallbacks)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, '
                f'iou_thr={self.iou_thr}, max_rounds={self.max_rounds}, '
                f'candidates_per_round={self.candidates_per_round}, interpolation={self.interpolation!r}, '
                f'flip_prob={self.flip_prob}, backend={self.backend!r})')

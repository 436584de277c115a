"""The random parameters of a view's photometric pipeline, drawn without touching pixels (issue 18, item 4).

For views that the data preprocessor cuts on the GPU (``RobustLoadImage(device_decode=True)``), ``PairPhotometric``
cannot apply BYOL's T / T' in the data worker: the pixels do not exist there yet. It calls :func:`draw_pipeline`
instead, which asks each transform of the view pipeline for its random parameters through the transform's OWN
sampling methods, in the order its ``transform`` would call them, and returns a draw table that
multisiam_mm.models.utils.photometric applies on the device. The random streams therefore advance exactly as on the
CPU path: the same sample seed gives the same parameters either way (tests/test_device_decode.py runs both).

Supported transforms (BYOL's T / T', configs/_base_/datasets/pair_pipeline.py): mmcv ``RandomApply`` around
supported transforms, mmpretrain ``ColorJitter`` (backend 'pillow', its default), mmcv ``RandomGrayscale`` (BGR,
``keep_channels=True``), mmpretrain ``GaussianBlur`` and ``Solarize``. Anything else raises ValueError naming it:
a transform that cannot be drawn here cannot run on the device either.

Draw table of one view: float32 (J, 4), one row per step: (kind, p1, p2, p3) with kinds of
multisiam_mm.models.utils.photometric (0: step not applied). ``ColorJitter`` has four steps (its random order),
``RandomGrayscale`` one (its three normalised BGR weights), ``GaussianBlur`` one (radius), ``Solarize`` one (thr).
J depends only on the pipeline, so every sample of a view has the same J.
"""
from typing import List, Sequence

import numpy as np
from mmcv.transforms import RandomApply, RandomGrayscale
from mmpretrain.datasets.transforms import ColorJitter, GaussianBlur, Solarize

from multisiam_mm.models.utils.photometric import BLUR, BRIGHTNESS, CONTRAST, GRAY, HUE, NONE, SATURATION, SOLARIZE

Step = List[float]
_JITTER_KINDS = (BRIGHTNESS, CONTRAST, SATURATION, HUE)  # ColorJitter's transform indices 0..3
SUPPORTED = ('RandomApply', 'ColorJitter', 'RandomGrayscale', 'GaussianBlur', 'Solarize')


def _none() -> Step:
    return [float(NONE), 0.0, 0.0, 0.0]


def step_count(transform) -> int:
    """Rows of the draw table that ``transform`` fills (ValueError for an unsupported transform)."""
    if isinstance(transform, RandomApply):
        return sum(step_count(t) for t in transform.transforms.transforms)
    if isinstance(transform, ColorJitter):
        return 4
    if isinstance(transform, (RandomGrayscale, GaussianBlur, Solarize)):
        return 1
    raise ValueError(f'device decode: {type(transform).__name__} has no device counterpart; the view pipelines may '
                     f'hold only {", ".join(SUPPORTED)} (or decode on the CPU: device_decode=False)')


def _check(transform) -> None:
    if isinstance(transform, ColorJitter) and transform.backend != 'pillow':
        raise ValueError(f"device decode: ColorJitter(backend={transform.backend!r}); the device ops follow its "
                         f"default backend 'pillow'")
    if isinstance(transform, RandomGrayscale) and (transform.color_format != 'bgr' or not transform.keep_channels):
        raise ValueError('device decode: RandomGrayscale needs color_format="bgr" and keep_channels=True')


def draw_transform(transform) -> List[Step]:
    """The draw-table rows of one transform, from its own samplers, consuming the random streams as its
    ``transform`` would."""
    _check(transform)
    if isinstance(transform, RandomApply):
        inner = list(transform.transforms.transforms)
        if not transform.random_apply():
            return [_none() for t in inner for _ in range(step_count(t))]
        return [row for t in inner for row in draw_transform(t)]
    if isinstance(transform, ColorJitter):
        order, *factors = transform._rand_params()  # permutation of 0..3, then b, c, s, h (None when off)
        return [[float(_JITTER_KINDS[i]), float(factors[i]), 0.0, 0.0] if factors[i] is not None else _none()
                for i in order]
    if isinstance(transform, RandomGrayscale):
        if not transform._random_prob() < transform.prob:
            return [_none()]
        w = np.asarray(transform.channel_weights, dtype=np.float64)
        return [[float(GRAY), *(w / w.sum()).tolist()]]
    if isinstance(transform, GaussianBlur):
        if transform.random_disable():
            return [_none()]
        radius = transform.radius if transform.radius is not None else transform.random_magnitude()
        return [[float(BLUR), float(radius), 0.0, 0.0]]
    if isinstance(transform, Solarize):
        if transform.random_disable():
            return [_none()]
        thr = transform.thr if transform.thr is not None else transform.random_magnitude()
        return [[float(SOLARIZE), float(thr), 0.0, 0.0]]
    step_count(transform)  # raises for an unsupported transform
    raise AssertionError(type(transform))


def draw_pipeline(transforms: Sequence) -> np.ndarray:
    """Draw table (J, 4) float32 of a view pipeline (a sequence of built transforms), see the module doc."""
    rows = [row for t in transforms for row in draw_transform(t)]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def check_pipeline(transforms: Sequence) -> None:
    """ValueError unless every transform of the view pipeline can be drawn here (run once, at construction)."""
    for t in transforms:
        _check(t)
        if isinstance(t, RandomApply):
            check_pipeline(list(t.transforms.transforms))
        else:
            step_count(t)



"""How much smaller a frame can be stored without any view of a pipeline becoming an upscale (issue 18, item 1).

A RandomResizedCrop view (``IoUPairCrop``, mmpretrain's ``RandomResizedCrop``) of an H x W frame is a box of area
s H W, s >= s_min, and aspect r = w / h in [r_min, r_max], resized to S x S. Its short side is
sqrt(s H W min(r, 1 / r)) >= sqrt(s_min H W min(r_min, 1 / r_max)) before the rounding to whole pixels (at most half
a pixel), or the side of RandomResizedCrop's centre-crop fallback. For scale (0.08, 1), ratio (3/4, 4/3) on
1920 x 1280 that is 384 px, so the frame can be stored 384 / 224 = 1.71x smaller and every 224-px view is still a
downscale (or 1:1). Odin's spanning view (``OdinSpanningView``) covers both views, so its box is at least as large as
the larger view's, or it is the whole image (``span='image'``); resized to 448 it allows no shrink of a 1920 x 1280
frame whose views may be 384 px small.

:func:`pipeline_views` reads the views of a config's training pipeline, :func:`shrink_plan` gives the factor and the
stored size of a frame of a given size (the largest factor at which every view keeps its output size, found on the
integer stored size itself, see :func:`stored_hw`), and the record written next to shrunk frames
(``frame_shrink.json``, :func:`write_record`) lets a run check its own config against them
(:func:`check_config_frames`). Pure functions: no image is touched here except by :func:`shrink_image`.
"""
import json
import math
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

RECORD_NAME = 'frame_shrink.json'
RECORD_FORMAT = 'multisiam_mm frame shrink v1'
# transforms that may come before the view crop without changing what a frame of another size gives
LOADERS = ('RobustLoadImage', 'LoadImageFromFile', 'mmpretrain.LoadImageFromFile', 'mmcv.LoadImageFromFile')
RRC_DEFAULTS = dict(scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.))  # IoUPairCrop and RandomResizedCrop defaults


@dataclass(frozen=True)
class ViewSpec:
    """One view a pipeline cuts from a frame: ``size`` is its output side S; the source box is a RandomResizedCrop
    box of ``scale`` / ``ratio`` (``kind='rrc'``; also a spanning box of two such views, which is at least as large)
    or the whole frame (``kind='image'``)."""

    name: str
    size: int
    kind: str = 'rrc'
    scale: Tuple[float, float] = RRC_DEFAULTS['scale']
    ratio: Tuple[float, float] = RRC_DEFAULTS['ratio']

    def min_side(self, hw: Sequence[int]) -> float:
        """Smallest short side (pixels) a source box of this view can have on an (H, W) frame (a lower bound)."""
        h, w = hw
        if self.kind == 'image':
            return float(min(h, w))
        bound = math.sqrt(self.scale[0] * h * w * min(self.ratio[0], 1 / self.ratio[1])) - 0.5  # rint: -0.5 px
        return min(bound, float(min(_centre_crop_hw(hw, self.ratio))))

    def describe(self) -> str:
        """``'<name> (<S> px, scale (a, b), ratio (c, d))'``."""
        shape = f', scale {self.scale}, ratio {tuple(round(r, 4) for r in self.ratio)}' if self.kind == 'rrc' else \
            ', whole frame'
        return f'{self.name} ({self.size} px{shape})'


def _centre_crop_hw(hw: Sequence[int], ratio: Tuple[float, float]) -> Tuple[int, int]:
    """(h, w) of RandomResizedCrop's fallback centre crop (the frame clipped to the aspect range)."""
    from .transforms.iou_pair_crop import centre_crop_size  # the sampler's own rule
    return centre_crop_size(tuple(hw), ratio)


@dataclass(frozen=True)
class ShrinkPlan:
    """What to do with a frame of (H, W) = ``hw``: store it at ``stored`` (H', W'); ``factor`` = H W / (H' W')
    square-rooted is close to the nominal factor; 1 and ``stored == hw`` when no shrink is allowed. ``limit`` names
    the view that bounds the factor (or why there is none)."""

    hw: Tuple[int, int]
    stored: Tuple[int, int]
    factor: float
    limit: str

    @property
    def shrinks(self) -> bool:
        return self.stored != self.hw


class NoShrink(ValueError):
    """The pipeline allows no shrink at all (the message says why)."""


def _walk(pipeline: Sequence[Mapping], where: str) -> List[ViewSpec]:
    """The views of a transform list; raises NoShrink for a transform before the crop whose effect is unknown."""
    views: List[ViewSpec] = []
    for step in pipeline:
        kind = step.get('type') if isinstance(step, Mapping) else type(step).__name__
        kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
        short = kind.split('.')[-1]
        if views:  # after the crop every transform works on the views, whatever the frame's size
            break
        if kind in LOADERS:
            continue
        if short == 'IoUPairCrop':
            views.append(_rrc(step, f'{where}IoUPairCrop views', 'size', 224, 'scale', 'ratio'))
        elif short == 'RandomResizedCrop':
            views.append(_rrc(step, f'{where}RandomResizedCrop', 'scale', None, 'crop_ratio_range',
                              'aspect_ratio_range'))
        elif short == 'OdinSpanningView':
            pair = _walk([step['pair_crop']], where)
            span = step.get('span', 'views')
            name = f'{where}OdinSpanningView (span={span!r})'
            size = int(step.get('size', 448))
            spanning = ViewSpec(name, size, 'image') if span == 'image' else \
                ViewSpec(name, size, 'rrc', pair[0].scale, pair[0].ratio)  # covers both views: >= either box
            views.extend(pair + [spanning])
        elif short == 'MultiView':
            for i, branch in enumerate(step['transforms']):
                views.extend(_walk(branch, f'{where}MultiView[{i}] '))
        else:
            raise NoShrink(f'transform {kind} comes before the view crop; how it treats a frame of another size is '
                           'not known here')
    return views


def _rrc(step: Mapping, name: str, size_key: str, size_default: Optional[int], scale_key: str,
         ratio_key: str) -> ViewSpec:
    size = step.get(size_key, size_default)
    size = max(size) if isinstance(size, (tuple, list)) else int(size)  # (w, h) output: the larger side
    return ViewSpec(name, int(size), 'rrc', tuple(map(float, step.get(scale_key, RRC_DEFAULTS['scale']))),
                    tuple(map(float, step.get(ratio_key, RRC_DEFAULTS['ratio']))))


def pipeline_views(pipeline: Sequence[Mapping]) -> List[ViewSpec]:
    """The views a training pipeline cuts from each frame (pair crop, Odin's spanning view, MultiView branches).

    Raises:
        NoShrink: no view crop in the pipeline, or a transform before it whose effect on frame size is unknown.
    """
    views = _walk(pipeline, '')
    if not views:
        raise NoShrink('the pipeline has no view crop (IoUPairCrop, OdinSpanningView, RandomResizedCrop): its '
                       'output may depend on every pixel of the frame')
    return views


def dataset_cfg(cfg: Mapping) -> Mapping:
    """The dataset config of ``train_dataloader`` (through wrappers such as RepeatDataset)."""
    dataset = cfg['train_dataloader']['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def config_views(cfg: Mapping) -> List[ViewSpec]:
    """:func:`pipeline_views` of a config's training pipeline."""
    return pipeline_views(dataset_cfg(cfg)['pipeline'])


def stored_hw(hw: Sequence[int], factor: float) -> Tuple[int, int]:
    """The integer size (H', W') = (ceil(H / f), ceil(W / f)) a frame of (H, W) is stored at for factor f >= 1."""
    return tuple(int(math.ceil(n / factor - 1e-9)) for n in hw)


def keeps_views(hw: Sequence[int], views: Sequence[ViewSpec]) -> List[ViewSpec]:
    """The views that could be upscales on an (H, W) frame (empty: every view keeps its output size)."""
    return [v for v in views if v.min_side(hw) < v.size]


def shrink_plan(hw: Sequence[int], views: Sequence[ViewSpec]) -> ShrinkPlan:
    """The largest shrink of an (H, W) frame after which every view still has at least its output size S per side.

    The factor is searched on the integer stored size (:func:`stored_hw`), so the guarantee holds for the size the
    frame is actually stored at: a bisection between 1 and min over views of (smallest box side) / S.
    """
    hw = (int(hw[0]), int(hw[1]))
    if keeps_views(hw, views):
        tight = min(views, key=lambda v: v.min_side(hw) / v.size)
        return ShrinkPlan(hw, hw, 1.0, f'no shrink: {tight.describe()} can come from a box of '
                                      f'{tight.min_side(hw):.0f} px on a {hw[1]}x{hw[0]} frame')
    low, high = 1.0, min(v.min_side(hw) / v.size for v in views) + 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if not keeps_views(stored_hw(hw, mid), views) else (low, mid)
    stored = stored_hw(hw, low)
    limit = min(views, key=lambda v: v.min_side(stored) / v.size)
    factor = math.sqrt(hw[0] * hw[1] / (stored[0] * stored[1]))
    if stored == hw:
        return ShrinkPlan(hw, hw, 1.0, f'no shrink: {limit.describe()} leaves no room on a {hw[1]}x{hw[0]} frame')
    return ShrinkPlan(hw, stored, factor, limit.describe())


def shrink_image(img: np.ndarray, stored: Sequence[int]) -> np.ndarray:
    """``img`` (H, W[, C]) resized to ``stored`` (H', W') by area averaging (anti-aliased); unchanged if equal."""
    if tuple(img.shape[:2]) == tuple(stored):
        return img
    return cv2.resize(img, (int(stored[1]), int(stored[0])), interpolation=cv2.INTER_AREA)


def size_key(hw: Sequence[int]) -> str:
    """``'<W>x<H>'`` of an (H, W) size, the key of a record's ``sizes``."""
    return f'{hw[1]}x{hw[0]}'


def parse_size_key(key: str) -> Tuple[int, int]:
    """(H, W) of ``'<W>x<H>'``."""
    w, h = key.split('x')
    return int(h), int(w)


def make_record(config: str, views: Sequence[ViewSpec], plans: Mapping[Tuple[int, int], ShrinkPlan],
                quality: int) -> dict:
    """The ``frame_shrink.json`` record: the config and views the frames were shrunk for, and per original frame
    size its factor, stored size and limiting view."""
    return dict(format=RECORD_FORMAT, config=config, views=[asdict(v) for v in views], interpolation='area',
                jpeg_quality=quality,
                sizes={size_key(hw): dict(factor=round(p.factor, 6), stored=size_key(p.stored), limit=p.limit)
                       for hw, p in sorted(plans.items())})


def write_record(folder: str, record: dict) -> str:
    """Write ``record`` to ``<folder>/frame_shrink.json`` atomically; returns the path."""
    path = osp.join(folder, RECORD_NAME)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=1)
        f.write('\n')
    os.replace(tmp, path)
    return path


def read_record(folder: str) -> Optional[dict]:
    """The record in ``folder``, or None when there is none."""
    path = osp.join(folder, RECORD_NAME)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def check_record(record: Mapping, views: Sequence[ViewSpec]) -> Tuple[List[str], List[str]]:
    """Compare shrunk frames with the views of a pipeline.

    Returns:
        (problems, notes): one line per stored size on which a view of ``views`` could be an upscale (the frames
        are too small for this pipeline), and one per size that this pipeline would allow to shrink further.
    """
    problems, notes = [], []
    for key, entry in record.get('sizes', {}).items():
        hw, stored = parse_size_key(key), parse_size_key(entry['stored'])
        short = keeps_views(stored, views)
        allowed = shrink_plan(hw, views)
        if short:
            worst = min(short, key=lambda v: v.min_side(stored) / v.size)
            problems.append(f'{key} frames were stored at {entry["stored"]} (factor {entry["factor"]:.3g}, shrunk '
                            f'for {record.get("config")}), where {worst.describe()} can come from a '
                            f'{worst.min_side(stored):.0f}-px box; this pipeline allows at most factor '
                            f'{allowed.factor:.3g} ({allowed.limit})')
        elif allowed.factor > entry['factor'] * 1.01:
            notes.append(f'{key} frames: shrunk by {entry["factor"]:.3g}, this pipeline would allow '
                         f'{allowed.factor:.3g} ({allowed.limit})')
    return problems, notes


def record_folders(cfg: Mapping) -> List[str]:
    """Folders where the record of a config's training frames may be: data_root, and the folder of its list file."""
    dataset = dataset_cfg(cfg)
    root = dataset.get('data_root') or ''
    folders = [root or '.']
    ann_file = dataset.get('ann_file') or ''
    if isinstance(ann_file, str) and ann_file:
        folders.append(osp.dirname(ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)) or '.')
    return list(dict.fromkeys(osp.normpath(f) for f in folders))


def check_config_frames(cfg: Mapping) -> Tuple[Optional[str], List[str]]:
    """Check the training frames of ``cfg`` against its pipeline when they carry a ``frame_shrink.json``.

    Returns:
        (error, notes): a one-line error when the frames were shrunk more than this pipeline allows (None when they
        fit, were not shrunk, or carry no record), and informational lines.
    """
    for folder in record_folders(cfg):
        record = read_record(folder)
        if record is None:
            continue
        try:
            views = config_views(cfg)
        except NoShrink as err:
            shrunk = [k for k, e in record.get('sizes', {}).items() if e['stored'] != k]
            if shrunk:
                return (f'frames in {folder} were shrunk for {record.get("config")} ({RECORD_NAME}), but this '
                        f'config allows no shrink: {err}; point data_root at the full-size frames'), []
            return None, []
        problems, notes = check_record(record, views)
        if problems:
            return (f'frames in {folder} are too small for this config: {problems[0]}'
                    f'{f" (and {len(problems) - 1} more sizes)" if len(problems) > 1 else ""}; re-shrink them with '
                    f'--shrink-for this config (tools/prepare_frames.py, tools/extract_waymo_frames.py) or point '
                    f'data_root at the full-size frames'), notes
        return None, notes
    return None, []


def describe_plans(config: str, plans: Mapping[Tuple[int, int], ShrinkPlan]) -> List[str]:
    """One line per frame size: ``'1920x1280 -> 1124x749 (factor 1.71, limited by ...)'`` or the no-shrink reason."""
    lines = []
    for hw, plan in sorted(plans.items()):
        if plan.shrinks:
            lines.append(f'{size_key(hw)} -> {size_key(plan.stored)} (factor {plan.factor:.3f}, '
                         f'{plan.factor ** 2:.2f}x fewer pixels; limited by {plan.limit}) for {config}')
        else:
            lines.append(f'{size_key(hw)}: {config} allows {plan.limit}; stored as it is')
    return lines


@dataclass
class ShrinkPolicy:
    """The views of one config and the plans computed so far, per frame size (a cache of :func:`shrink_plan`)."""

    config: str
    views: List[ViewSpec]
    reason: Optional[str] = None  # why the config allows no shrink at all, else None
    plans: Dict[Tuple[int, int], ShrinkPlan] = None

    def __post_init__(self) -> None:
        self.plans = dict(self.plans or {})

    @classmethod
    def from_config(cls, config: str) -> 'ShrinkPolicy':
        """The policy of a config file (its training pipeline)."""
        from mmengine.config import Config
        cfg = Config.fromfile(config)
        try:
            return cls(config, config_views(cfg))
        except NoShrink as err:
            return cls(config, [], str(err))

    def plan(self, hw: Sequence[int]) -> ShrinkPlan:
        """The plan of an (H, W) frame."""
        hw = (int(hw[0]), int(hw[1]))
        if hw not in self.plans:
            self.plans[hw] = ShrinkPlan(hw, hw, 1.0, f'no shrink: {self.reason}') if self.reason else \
                shrink_plan(hw, self.views)
        return self.plans[hw]

    def record(self, quality: int) -> dict:
        return make_record(self.config, self.views, self.plans, quality)

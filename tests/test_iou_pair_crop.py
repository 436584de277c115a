"""IoUPairCrop: threshold, exact law of sequential rejection, fallback, config checks; pair formatting and packing."""
import logging
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmpretrain.registry import TRANSFORMS
from scipy.stats import ks_2samp

from multisiam_mm.datasets.transforms import IoUPairCrop, PackPairInputs, PairPhotometric, sample_pair_boxes
from multisiam_mm.datasets.transforms.iou_pair_crop import random_resized_boxes

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)
CONFIG = osp.join(osp.dirname(__file__), '..', 'configs', '_base_', 'datasets', 'pair_pipeline.py')


def iou(a, b) -> np.ndarray:
    """IoU of boxes (..., 4) x 2 -> (...)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


# --------------------------------------------------------- reference: torchvision RandomResizedCrop, sequentially
def naive_box(rs: np.random.RandomState, img_h: int, img_w: int) -> tuple:
    """torchvision RandomResizedCrop.get_params, transcribed with numpy scalars; box (x1, y1, x2, y2)."""
    area = img_h * img_w
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target_area = area * rs.uniform(*SCALE)
        aspect = math.exp(rs.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= img_w and 0 < h <= img_h:
            i = rs.randint(0, img_h - h + 1)
            j = rs.randint(0, img_w - w + 1)
            return j, i, j + w, i + h
    in_ratio = img_w / img_h
    if in_ratio < min(RATIO):
        w, h = img_w, int(round(img_w / min(RATIO)))
    elif in_ratio > max(RATIO):
        w, h = int(round(img_h * max(RATIO))), img_h
    else:
        w, h = img_w, img_h
    i, j = (img_h - h) // 2, (img_w - w) // 2
    return j, i, j + w, i + h


def naive_pairs(n, img_hw, thr, seed):
    """The law IoUPairCrop must reproduce: draw A, draw B, reject unless IoU > thr."""
    rs = np.random.RandomState(seed)
    out = []
    while len(out) < n:
        a, b = naive_box(rs, *img_hw), naive_box(rs, *img_hw)
        if iou(a, b) > thr:
            out.append((a, b))
    return np.array(out, dtype=np.float64)


def max_iou_pairs(n, img_hw, thr, seed, candidates=16):
    """WRONG: the highest-IoU of several candidate pairs."""
    rs = np.random.RandomState(seed)
    out = []
    while len(out) < n:
        cands = np.array([(naive_box(rs, *img_hw), naive_box(rs, *img_hw)) for _ in range(candidates)])
        ious = iou(cands[:, 0], cands[:, 1])
        if ious.max() > thr:
            out.append(cands[ious.argmax()])
    return np.array(out, dtype=np.float64)


def fixed_a_pairs(n, img_hw, thr, seed, tries=100):
    """WRONG: B re-drawn for a fixed A (A is then not conditioned on the pair passing)."""
    rs = np.random.RandomState(seed)
    out = []
    while len(out) < n:
        a = naive_box(rs, *img_hw)
        for _ in range(tries):
            b = naive_box(rs, *img_hw)
            if iou(a, b) > thr:
                out.append((a, b))
                break
    return np.array(out, dtype=np.float64)


def pair_statistics(pairs: np.ndarray) -> dict:
    a, b = pairs[:, 0], pairs[:, 1]
    wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    return dict(iou=iou(a, b), area_a=wa * ha, area_b=(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), aspect_a=wa / ha,
                centre_x_a=(a[:, 0] + a[:, 2]) / 2, centre_y_b=(b[:, 1] + b[:, 3]) / 2)


def min_ks_pvalue(pairs: np.ndarray, reference: np.ndarray) -> float:
    """Smallest two-sample KS p-value over the pair statistics."""
    s, r = pair_statistics(pairs), pair_statistics(reference)
    return min(ks_2samp(s[k], r[k]).pvalue for k in s)


N_KS, IMG_KS, THR_KS, P_MIN = 3000, (427, 640), 0.5, 1e-3


@pytest.fixture(scope='module')
def reference_pairs():
    return naive_pairs(N_KS, IMG_KS, THR_KS, seed=1)


# ----------------------------------------------------------------------------------------------------------- law
def test_law_matches_sequential_rejection(reference_pairs):
    boxes, stats = sample_pair_boxes(IMG_KS, N_KS, SCALE, RATIO, THR_KS, 8, 64, rng=np.random.RandomState(2))
    assert stats.fallbacks == 0
    assert min_ks_pvalue(boxes, reference_pairs) > P_MIN


def test_law_one_pair_per_call_matches_sequential_rejection(reference_pairs):
    """The transform's path: one pair per call from the global np.random state (first passing candidate)."""
    crop = IoUPairCrop(iou_thr=THR_KS, candidates_per_round=4)
    np.random.seed(3)
    boxes = np.concatenate([crop.sample_boxes(IMG_KS) for _ in range(N_KS)])
    assert min_ks_pvalue(boxes, reference_pairs) > P_MIN


@pytest.mark.parametrize('wrong_sampler', [max_iou_pairs, fixed_a_pairs])
def test_ks_check_rejects_wrong_samplers(reference_pairs, wrong_sampler):
    assert min_ks_pvalue(wrong_sampler(N_KS, IMG_KS, THR_KS, seed=4), reference_pairs) < P_MIN


def test_no_threshold_is_independent_random_resized_crop():
    boxes, stats = sample_pair_boxes(IMG_KS, N_KS, SCALE, RATIO, None, 8, 64, rng=np.random.RandomState(5))
    assert stats.candidates == stats.accepted == N_KS
    assert min_ks_pvalue(boxes, naive_pairs(N_KS, IMG_KS, -1.0, seed=6)) > P_MIN
    assert (iou(boxes[:, 0], boxes[:, 1]) <= 0.5).mean() > 0.5


# ----------------------------------------------------------------------------------------------------- threshold
@pytest.mark.parametrize('img_hw', [(427, 640), (1280, 1920), (1920, 1080), (300, 60), (64, 64), (20, 31)])
@pytest.mark.parametrize('thr', [0.3, 0.5, 0.7])
def test_every_pair_exceeds_threshold_and_fits(img_hw, thr):
    for seed in range(5):
        boxes, stats = sample_pair_boxes(img_hw, 400, SCALE, RATIO, thr, 8, 64, rng=np.random.default_rng(seed))
        assert stats.fallbacks == 0 and stats.accepted == 400
        assert (iou(boxes[:, 0], boxes[:, 1]) > thr).all()
        assert (boxes == np.round(boxes)).all()
        assert (boxes[..., :2] >= 0).all() and (boxes[..., 2] <= img_hw[1]).all() and (boxes[..., 3] <= img_hw[0]).all()
        assert (boxes[..., 2:] > boxes[..., :2]).all()


def test_centre_crop_fallback_of_random_resized_crop():
    """A 1 x 100 strip: no attempt fits the aspect range, so every box is the clipped centre crop, as torchvision."""
    rs = np.random.RandomState(0)
    boxes = random_resized_boxes(rs, (50,), (1, 100), SCALE, RATIO)
    assert boxes.shape == (50, 4) and (boxes == (49, 0, 50, 1)).all()
    assert naive_box(rs, 1, 100) == (49, 0, 50, 1)


@pytest.mark.parametrize('img_hw', [(1, 3), (2, 2), (5, 3)])
def test_tiny_images_match_torchvision_box_frequencies(img_hw):
    """Tiny images: w or h can round to 0 (attempt rejected), the centre crop is frequent; same law as torchvision."""
    n = 4000
    ours = random_resized_boxes(np.random.RandomState(0), (n,), img_hw, SCALE, RATIO).astype(int)
    rs = np.random.RandomState(1)
    ref = np.array([naive_box(rs, *img_hw) for _ in range(n)])
    assert (ours[:, 2:] > ours[:, :2]).all()
    kinds = {tuple(b) for b in np.concatenate((ours, ref))}
    for kind in kinds:
        assert abs((ours == kind).all(1).mean() - (ref == kind).all(1).mean()) < 0.03, kind


# ------------------------------------------------------------------------------------------------------ fallback
def test_fallback_is_highest_iou_candidate_counted_and_warned():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        crop = IoUPairCrop(iou_thr=0.99, max_rounds=1, candidates_per_round=4)
        np.random.seed(0)
        for _ in range(10):
            crop.sample_boxes((1280, 1920))
    finally:
        logger.removeHandler(handler)
    assert crop.stats.candidates == 40
    assert crop.stats.fallbacks + crop.stats.accepted == 10 and crop.stats.fallbacks >= 8
    warned = [r for r in records if 'IoUPairCrop' in r.getMessage()]
    # rate-limited: one warning each time the count reaches a power of two (1, 2, 4, 8)
    assert len(warned) == crop.stats.fallbacks.bit_length()

    boxes, stats = sample_pair_boxes((1280, 1920), 1, SCALE, RATIO, 0.99, 6, 1, rng=np.random.RandomState(7))
    cands = random_resized_boxes(np.random.RandomState(7), (6, 2), (1280, 1920), SCALE, RATIO)
    ious = iou(cands[:, 0], cands[:, 1])
    assert stats.fallbacks == 1 and ious.max() <= 0.99
    np.testing.assert_array_equal(boxes[0], cands[ious.argmax()])


# ------------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize('kwargs, field', [
    (dict(iou_thr=1.0), 'iou_thr'), (dict(iou_thr=-0.1), 'iou_thr'), (dict(scale=(0.5, 0.2)), 'scale'),
    (dict(scale=(0.0, 1.0)), 'scale'), (dict(ratio=(4 / 3, 3 / 4)), 'ratio'), (dict(ratio=(-1, 1)), 'ratio'),
    (dict(size=0), 'size'), (dict(max_rounds=0), 'max_rounds'), (dict(candidates_per_round=0), 'candidates_per_round'),
    (dict(flip_prob=1.5), 'flip_prob'), (dict(interpolation='cubic'), 'interpolation'),
    (dict(backend='turbo'), 'backend'),
])
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        IoUPairCrop(**kwargs)


# ----------------------------------------------------------------------------------------------------- transform
def synthetic_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8)


def test_transform_outputs_and_reproducibility():
    img = synthetic_image(120, 200)
    crop = IoUPairCrop(size=32, flip_prob=0.5)
    np.random.seed(11)
    out = crop(dict(img=img))
    assert [v.shape for v in out['img']] == [(32, 32, 3)] * 2 and out['img'][0].dtype == np.uint8
    assert out['view_boxes'].dtype == np.float32 and out['view_boxes'].shape == (2, 4)
    assert out['view_flips'].dtype == np.bool_ and out['view_flips'].shape == (2,)
    assert out['ori_shape'] == (120, 200) and out['img_shape'] == (32, 32)
    assert iou(out['view_boxes'][0], out['view_boxes'][1]) > 0.5
    np.random.seed(11)
    again = crop(dict(img=img))
    for a, b in zip(out['img'], again['img']):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out['view_boxes'], again['view_boxes'])


def test_flip_mirrors_the_same_crop():
    img = synthetic_image(90, 130)
    views = {}
    for p in (0.0, 1.0):  # same seed -> same boxes (flips are drawn after them)
        np.random.seed(5)
        views[p] = IoUPairCrop(size=24, flip_prob=p)(dict(img=img))
    np.testing.assert_array_equal(views[0.0]['view_boxes'], views[1.0]['view_boxes'])
    assert not views[0.0]['view_flips'].any() and views[1.0]['view_flips'].all()
    for plain, flipped in zip(views[0.0]['img'], views[1.0]['img']):
        np.testing.assert_array_equal(plain[:, ::-1], flipped)
        assert flipped.flags.c_contiguous


def test_pair_photometric_rejects_geometric_pipelines():
    results = IoUPairCrop(size=16)(dict(img=synthetic_image(60, 80)))
    with pytest.raises(ValueError, match='not photometric'):
        PairPhotometric([[dict(type='RandomFlip', prob=1.0)], []])(dict(results))
    with pytest.raises(ValueError, match='not photometric'):
        PairPhotometric([[], [dict(type='Resize', scale=(8, 8))]])(dict(results))
    with pytest.raises(ValueError, match='2 view pipelines for 3 views'):
        PairPhotometric([[], []])(dict(results, img=list(results['img']) + [results['img'][0]]))


def test_config_pipeline_packs_what_the_algorithm_needs():
    """pair_pipeline.py (minus file loading) -> collate -> (B, 2, 4) boxes, (B, 2) flips, ori_shape, views."""
    init_default_scope('mmpretrain')  # as the Runner does (default_scope); RandomApply builds its children with it
    cfg = Config.fromfile(CONFIG)
    assert [t['type'] for t in cfg.pair_pipeline] == ['RobustLoadImage', 'IoUPairCrop', 'PairPhotometric',
                                                      'PackPairInputs']
    transforms = [TRANSFORMS.build(t) for t in cfg.pair_pipeline[1:]]
    sizes = [(300, 400), (427, 640), (500, 260)]
    np.random.seed(0)
    samples = []
    for i, hw in enumerate(sizes):
        results = dict(img=synthetic_image(*hw, seed=i), img_path=f'img{i}.png', sample_idx=i)
        for t in transforms:
            results = t(results)
        samples.append(results)
    assert isinstance(transforms[-1], PackPairInputs)

    for collate in (pseudo_collate, default_collate):
        batch = collate(samples)
        data_samples = batch['data_samples']
        assert isinstance(data_samples, list) and len(data_samples) == 3
        boxes = torch.stack([ds.view_boxes for ds in data_samples])
        flips = torch.stack([ds.view_flips for ds in data_samples])
        assert boxes.shape == (3, 2, 4) and boxes.dtype == torch.float32
        assert flips.shape == (3, 2) and flips.dtype == torch.bool
        assert [tuple(ds.ori_shape) for ds in data_samples] == sizes
        assert [ds.img_path for ds in data_samples] == ['img0.png', 'img1.png', 'img2.png']
        assert len(batch['inputs']) == 2
    views = default_collate(samples)['inputs']
    assert all(v.shape == (3, 3, 224, 224) and v.dtype == torch.uint8 for v in views)
    views = pseudo_collate(samples)['inputs']
    assert all(len(v) == 3 and v[0].shape == (3, 224, 224) for v in views)
    for b in boxes:
        assert iou(b[0].numpy(), b[1].numpy()) > 0.5

"""Odin: spanning view, mask mapping, mask pooling (eq. 1), contrastive loss (eqs. 2-4), discovery-network updates
(eq. 7, Table 6), object discovery metrics (A.4), configs and a short training run."""
import os.path as osp
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from conftest import ROOT, apply_cfg_options, build_parts, random_pair_batch, set_schedule
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, METRICS, MODELS, TRANSFORMS
from torch import nn

from multisiam_mm.evaluation.object_discovery import (
    DEFAULT_KS,
    best_overlaps,
    image_scores,
    kmeans_proposals,
    resize_labels,
)
from multisiam_mm.models.algorithms.odin import object_contrastive_loss
from multisiam_mm.models.utils.ema import cosine_ema_tau
from multisiam_mm.models.utils.geometry import cell_coords, map_masks_to_view, spanning_box
from multisiam_mm.models.utils.mask_pooling import labels_to_masks, mask_pool
from multisiam_mm.models.utils.masked_mlp import MaskedBatchNorm1d

init_default_scope('mmpretrain')
ODIN_DOC = osp.join(ROOT, 'docs', 'odin.md')
ODIN_IN1K = osp.join(ROOT, 'configs', 'odin', 'odin_r50_16xb256-lars-1000e_in1k.py')
ODIN_WAYMO = osp.join(ROOT, 'configs', 'odin', 'odin_r50_8xb128-coslr-300e_waymo.py')


# ---------------------------------------------------------------- spanning view and mask geometry

def coordinate_image(h: int = 60, w: int = 90) -> np.ndarray:
    """float32 (h, w, 3): channel 0 = x, channel 1 = y of each pixel centre, channel 2 = 1."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return np.stack([x, y, np.ones_like(x)], axis=-1)


@pytest.mark.parametrize('seed', range(4))
def test_spanning_view_covers_both_views_and_shows_the_original_pixels(seed):
    np.random.seed(seed)
    span_size = 48
    t = TRANSFORMS.build(dict(type='OdinSpanningView', size=span_size, interpolation='bilinear',
                              pair_crop=dict(type='IoUPairCrop', size=16, iou_thr=0., interpolation='bilinear')))
    img = coordinate_image()
    out = t(dict(img=img))
    boxes, box = torch.as_tensor(out['view_boxes']), torch.as_tensor(out['span_box'])
    torch.testing.assert_close(box, spanning_box(boxes[:1], boxes[1:])[0])  # smallest box covering both views
    assert (box[:2] <= boxes[:, :2]).all() and (box[2:] >= boxes[:, 2:]).all()
    # un-augmented: the pixel (u, v) of the spanning view shows x1 + (u + 0.5) (x2 - x1) / S (no flip)
    expected = cell_coords(box[None], span_size, span_size)[0].permute(1, 2, 0).numpy()  # (S, S, 2)
    scale = (box[2:] - box[:2]).numpy() / span_size
    inner = (slice(int(np.ceil(1 / scale[1])), -int(np.ceil(1 / scale[1]))),
             slice(int(np.ceil(1 / scale[0])), -int(np.ceil(1 / scale[0]))))  # bilinear is exact off the border
    np.testing.assert_allclose(out['span_img'][..., :2][inner], expected[inner], atol=1e-3)
    packed = TRANSFORMS.build(dict(type='PackOdinInputs'))(out)
    assert [tuple(x.shape) for x in packed['inputs']] == [(3, 16, 16), (3, 16, 16), (3, span_size, span_size)]
    torch.testing.assert_close(packed['data_samples'].span_box, box)


def test_whole_image_span_for_the_cached_discrete_mode():
    t = TRANSFORMS.build(dict(type='OdinSpanningView', size=32, span='image', pair_crop=dict(type='IoUPairCrop',
                                                                                             size=16, iou_thr=0.)))
    out = t(dict(img=coordinate_image(40, 50)))
    assert out['span_box'].tolist() == [0, 0, 50, 40] and out['span_img'].shape[:2] == (32, 32)
    with pytest.raises(ValueError, match='span'):
        TRANSFORMS.build(dict(type='OdinSpanningView', span='union', pair_crop=dict(type='IoUPairCrop')))


VIEWS = torch.tensor([[30., 20., 70., 50.], [10., 25., 60., 70.]])
FLIPS = torch.tensor([True, False])
SPAN = torch.tensor([[5., 10., 80., 60.], [0., 0., 90., 80.]])


def test_masks_mapped_into_a_view_land_on_the_right_original_pixels():
    """Coordinate 'masks' over the spanning box, mapped into a (flipped) view, hold that view's cell coordinates."""
    h = w = 12
    coords = cell_coords(SPAN, h, w)  # (B, 2, h, w): two linear "masks"
    mapped = map_masks_to_view(coords, SPAN, VIEWS, FLIPS, (7, 9), mode='bilinear')
    expected = cell_coords(VIEWS, 7, 9, FLIPS)
    lo, hi = coords[:, :, 0, 0], coords[:, :, -1, -1]  # outermost source cell centres: inside them, exact
    inside = ((expected >= lo[..., None, None]) & (expected <= hi[..., None, None])).all(1)
    assert inside.float().mean() > 0.7
    torch.testing.assert_close(mapped.permute(0, 2, 3, 1)[inside], expected.permute(0, 2, 3, 1)[inside])


def test_label_masks_mapped_with_nearest_keep_each_cell_label_of_its_original_pixel():
    """Quadrant labels of the spanning box: every view cell gets the quadrant of its original (x, y)."""
    h = w = 8
    labels = torch.zeros(2, h, w, dtype=torch.long)
    labels[:, :, w // 2:] += 1
    labels[:, h // 2:] += 2
    masks = map_masks_to_view(labels_to_masks(labels, 4), SPAN, VIEWS, FLIPS, (6, 6), mode='nearest')
    xy = cell_coords(VIEWS, 6, 6, FLIPS)
    mid = (SPAN[:, :2] + SPAN[:, 2:]) / 2
    quadrant = (xy[:, 0] >= mid[:, 0, None, None]).long() + 2 * (xy[:, 1] >= mid[:, 1, None, None]).long()
    assert (masks.sum(1) == 1).all()  # a partition of the view's cells (views lie inside the spanning box)
    assert torch.equal(masks.argmax(1), quadrant)


# ---------------------------------------------------------------- eq. 1 and eqs. 2-4

def test_mask_pooling_equals_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    h, masks = torch.randn(2, 5, 4, 3, generator=g), torch.rand(2, 3, 4, 3, generator=g)
    masks[1, 2] = 0  # an empty mask
    pooled, mass = mask_pool(h, masks)
    for b in range(2):
        for k in range(3):
            total = sum(masks[b, k, i, j] for i in range(4) for j in range(3))
            weighted = sum(masks[b, k, i, j] * h[b, :, i, j] for i in range(4) for j in range(3))
            torch.testing.assert_close(mass[b, k], total)
            expected = weighted / total if total > 0 else torch.zeros(5)
            torch.testing.assert_close(pooled[b, k], expected, rtol=1e-5, atol=1e-6)
    assert mass[1, 2] == 0


def naive_contrastive_loss(q, z_t, valid_q, valid_t, alpha):
    """Eqs. 2-3 written out: per valid object, -log of its positive against all other valid target objects."""
    B, K, _ = q.shape
    qn, zn = nnf.normalize(q, dim=-1), nnf.normalize(z_t, dim=-1)
    losses = []
    for b in range(B):
        for k in range(K):
            if not (valid_q[b, k] and valid_t[b, k]):
                continue
            pos = torch.exp(qn[b, k] @ zn[b, k] / alpha)
            neg = sum(torch.exp(qn[b, k] @ zn[c, n] / alpha) for c in range(B) for n in range(K)
                      if (c, n) != (b, k) and valid_t[c, n])
            losses.append(-torch.log(pos / (pos + neg)))
    return torch.stack(losses).mean()


def random_objects(B=3, K=4, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, z_t = torch.randn(B, K, D, generator=g), torch.randn(B, K, D, generator=g)
    valid_q = torch.rand(B, K, generator=g) > 0.25
    valid_t = torch.rand(B, K, generator=g) > 0.25
    return q, z_t, valid_q, valid_t


@pytest.mark.parametrize('seed', range(3))
def test_contrastive_loss_equals_the_naive_formula(seed):
    q, z_t, valid_q, valid_t = random_objects(seed=seed)
    loss = object_contrastive_loss(q, z_t, valid_q, valid_t, 0.1)
    torch.testing.assert_close(loss, naive_contrastive_loss(q, z_t, valid_q, valid_t, 0.1), rtol=1e-4, atol=1e-5)


def test_empty_masks_are_excluded_from_the_loss_and_the_batch_statistics():
    q, z_t, valid_q, valid_t = random_objects()
    loss = object_contrastive_loss(q, z_t, valid_q, valid_t, 0.1)
    q2, z2 = q.clone(), z_t.clone()
    q2[~valid_q] = 100.0  # whatever an empty mask pools to must not matter
    z2[~valid_t] = -100.0
    torch.testing.assert_close(object_contrastive_loss(q2, z2, valid_q, valid_t, 0.1), loss)
    # no valid pair at all: a zero loss, not NaN
    none = torch.zeros_like(valid_q)
    assert object_contrastive_loss(q, z_t, none, valid_t, 0.1) == 0

    x, valid = torch.randn(10, 6), torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=torch.bool)
    masked, plain = MaskedBatchNorm1d(6), nn.BatchNorm1d(6)
    torch.testing.assert_close(masked(x, valid)[valid], plain(x[valid]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked.running_mean, plain.running_mean)
    torch.testing.assert_close(masked.running_var, plain.running_var)


# ---------------------------------------------------------------- the model

def tiny_odin(**kwargs) -> dict:
    """Odin on a ResNet-18 with narrow MLPs (64x64 views -> 2x2 maps; a 128x128 spanning view -> 4x4), K = 4."""
    return dict(dict(
        type='Odin', num_clusters=4,
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN')),
        projector=dict(in_channels=512, hid_channels=64, out_channels=32),
        predictor=dict(in_channels=32, hid_channels=64, out_channels=32)), **kwargs)


def test_gradients_reach_the_online_network_only_and_the_discovery_net_follows_eq_7():
    torch.manual_seed(0)
    model = MODELS.build(tiny_odin(discovery_momentum=0.25))
    set_schedule(0, 10)
    data = model.data_preprocessor(random_pair_batch(span_size=128), True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss']) and losses['shared_objects'] > 0
    assert losses['ema_tau'].item() == pytest.approx(cosine_ema_tau(0, 10, 0.004))  # λξ's τ, logged
    losses['loss'].backward()
    assert all(p.grad is None for p in model.target_net.parameters())
    assert all(p.grad is None for p in model.discovery_net.parameters())
    for part in (model.backbone, model.projector, model.predictor):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    # first update: a copy of the online network; then τ <- (1 - λτ) τ + λτ θ
    disc, online = list(model.discovery_net.parameters()), list(model.online_nets().parameters())
    assert all(torch.equal(d, p) for d, p in zip(disc, online))
    before = [d.clone() for d in disc]
    with torch.no_grad():
        for p in online:
            p.add_(1.0)
    model.update_discovery_net(model.online_nets())
    for d, b, p in zip(disc, before, online):
        torch.testing.assert_close(d, 0.75 * b + 0.25 * p)


def test_discrete_copy_mode_caches_the_segments_until_the_next_copy(monkeypatch):
    torch.manual_seed(0)
    model = MODELS.build(tiny_odin(discovery_update='copy', discovery_interval=2))
    calls = []
    discover = model.discover
    monkeypatch.setattr(model, 'discover', lambda span: calls.append(len(span)) or discover(span))
    data = model.data_preprocessor(random_pair_batch(span_size=128), True)
    for step, epoch in enumerate((0, 1, 1, 2)):
        set_schedule(step, 10, epoch)
        model(**data, mode='loss')
    assert calls == [4, 4]  # epoch 0: copy + segment; epochs 0-1: cached; epoch 2: copy + segment again
    assert int(model.discovery_version) == 2 and len(model._mask_cache) == 4
    labels, boxes = model.discover_masks(data['inputs'][2], data['data_samples'])
    assert labels.shape == (4, 4, 4) and torch.equal(boxes, torch.tensor([[0., 0., 100., 90.]] * 4))


def test_odin_validates_its_config():
    with pytest.raises(ValueError, match='discovery_update'):
        MODELS.build(tiny_odin(discovery_update='sometimes'))
    with pytest.raises(ValueError, match='mask_mode'):
        MODELS.build(tiny_odin(mask_mode='bicubic'))
    with pytest.raises(ValueError, match='num_clusters'):
        MODELS.build(tiny_odin(discovery_update='copy', num_clusters=300))
    with pytest.raises(ValueError, match='three|two views'):
        model = MODELS.build(tiny_odin())
        model.loss(random_pair_batch(span_size=128)['inputs'][:2], random_pair_batch(span_size=128)['data_samples'])


# ---------------------------------------------------------------- object discovery metrics (A.4)

def hand_made_scene():
    """4x4 image: instance 1 = left column, instance 2 = top-right 2x2 block, both of one class."""
    inst = torch.zeros(4, 4, dtype=torch.long)
    inst[:, 0] = 1
    inst[:2, 2:] = 2
    halves = torch.zeros(4, 4, dtype=torch.long)
    halves[:, 2:] = 1
    quadrants = halves + 2 * (torch.arange(4)[:, None] >= 2).long()
    return inst, (inst > 0).long(), torch.stack([torch.zeros(4, 4, dtype=torch.long), halves, quadrants])


def test_abo_and_or_on_a_hand_made_example():
    inst, cls, proposals = hand_made_scene()
    # K=1: IoUs 4/16, 4/16; halves: 4/8, 4/8; quadrants: 2/6, 4/4
    torch.testing.assert_close(best_overlaps(inst, proposals[:2], (1, 2)), torch.tensor([0.5, 0.5]))
    scores = image_scores(proposals, (1, 2, 4), inst, cls)
    assert scores['abo_instance'] == pytest.approx(0.75)
    assert scores['object_recovery'] == pytest.approx(0.5)  # 0.5 is not > 0.5
    assert scores['abo_class'] == pytest.approx(0.5)  # merged 8 px: K=1 gives 8/16, TR quadrant 4/8
    assert image_scores(proposals, (1, 2, 4), torch.zeros(4, 4, dtype=torch.long)) == dict(num_instances=0.0)


def test_metric_clusters_features_into_255_proposals_and_averages_images():
    inst, cls, _ = hand_made_scene()
    feats = torch.zeros(8, 2, 2)  # one distinct direction per 2x2 quadrant of a 4x4 image
    for i, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        feats[i, r, c] = 1
    quad_inst = torch.arange(4).view(2, 2).repeat_interleave(2, 0).repeat_interleave(2, 1) + 1
    proposals = resize_labels(kmeans_proposals(feats[None])[0], (4, 4))  # (8 runs, 4, 4)
    assert sum(DEFAULT_KS) == 255 and proposals.shape == (8, 4, 4)
    torch.testing.assert_close(best_overlaps(quad_inst, proposals[2:3], (4,)), torch.ones(4))  # K=4: quadrants
    expected = [image_scores(proposals, DEFAULT_KS, quad_inst), image_scores(proposals, DEFAULT_KS, inst, cls)]
    metric = METRICS.build(dict(type='ObjectDiscoveryMetric'))
    metric.process(None, [dict(pred_features=feats, gt_instance_map=quad_inst),
                          dict(pred_features=feats, gt_instance_map=inst, gt_class_map=cls),
                          dict(pred_features=feats, gt_instance_map=torch.zeros(4, 4, dtype=torch.long))])
    out = metric.evaluate(3)
    assert out['object_discovery/num_images'] == 2  # the image without instances is skipped
    for name, key in (('ABO_i', 'abo_instance'), ('OR', 'object_recovery')):
        assert out[f'object_discovery/{name}'] == pytest.approx(50 * (expected[0][key] + expected[1][key]))
    assert out['object_discovery/ABO_c'] == pytest.approx(100 * expected[1]['abo_class'])  # only image 2 has it


def test_components_are_registered_by_importing_the_package():
    code = ('import multisiam_mm\n'
            'from mmpretrain.registry import METRICS, MODELS, TRANSFORMS\n'
            'for r, n in ((MODELS, "Odin"), (TRANSFORMS, "OdinSpanningView"), (TRANSFORMS, "PackOdinInputs"),\n'
            '             (METRICS, "ObjectDiscoveryMetric")):\n'
            '    assert r.get(n) is not None, n')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd='/', timeout=120)
    assert res.returncode == 0, res.stderr


def test_eval_tool_help():
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'eval_object_discovery.py'), '--help'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for opt in ('--data-root', '--config', '--checkpoint', '--size', '--ks'):
        assert opt in res.stdout


# ---------------------------------------------------------------- configs and documented switches

def documented_switches() -> list:
    """(row, [key=value ...]) from the switch table of docs/odin.md."""
    row = re.compile(r'^\|\s*(Table \S+|option)\s*\|\s*(.+?)\s*\|.*\|\s*(`(.*)`|\(none\))\s*\|$')
    with open(ODIN_DOC) as f:
        matches = [row.match(line.strip()) for line in f]
    return [(f'{m.group(1)}: {m.group(2)}', shlex.split(m.group(4) or '')) for m in matches if m]


def test_configs_hold_the_paper_settings():
    cfg = Config.fromfile(ODIN_IN1K)
    m = cfg.model
    assert m.type == 'Odin' and m.num_clusters == 16 and m.temperature == pytest.approx(0.1)
    assert m.discovery_update == 'ema' and m.discovery_momentum == pytest.approx(1e-3)
    assert m.neck.type == 'mmdet.FPN' and m.projector.hid_channels == 4096 and m.projector.out_channels == 256
    assert cfg.train_cfg.max_epochs == 1000 and cfg.train_dataloader.batch_size * 16 == 4096
    assert cfg.optim_wrapper.optimizer.type == 'LARS' and cfg.optim_wrapper.optimizer.lr == pytest.approx(3.2)
    span = cfg.train_dataloader.dataset.pipeline[1]
    assert span.type == 'OdinSpanningView' and span.size == 448 and span.pair_crop.iou_thr == 0
    assert span.pair_crop.size == 224
    waymo = Config.fromfile(ODIN_WAYMO)
    assert waymo.train_cfg.max_epochs == 300 and waymo.optim_wrapper.optimizer.lr == pytest.approx(0.8)
    rows = [name for name, _ in documented_switches()]
    assert sum(name.startswith('Table 6') for name in rows) == 6, rows


@pytest.mark.slow
@pytest.mark.parametrize('row', documented_switches(), ids=lambda r: r[0])
def test_documented_switch_builds(row):
    build_parts(apply_cfg_options(Config.fromfile(ODIN_IN1K), row[1]))


# ---------------------------------------------------------------- training

def tiny_odin_pipeline() -> list:
    return [
        dict(type='LoadImageFromFile'),
        dict(type='OdinSpanningView', size=96, pair_crop=dict(type='IoUPairCrop', size=64, iou_thr=0.)),
        dict(type='PackOdinInputs'),
    ]


@pytest.mark.slow
def test_training_on_synthetic_scenes_decreases_the_loss(tiny_streets):
    torch.manual_seed(0)
    np.random.seed(0)
    model = MODELS.build(tiny_odin())
    dataset = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=tiny_streets, ann_file='train.txt',
                                  pipeline=tiny_odin_pipeline()))
    batches = [default_collate([dataset[i] for i in range(j, j + 8)]) for j in (0, 8)]
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    steps, history = 16, []
    for it in range(steps):
        set_schedule(it, steps)
        losses = model(**model.data_preprocessor(batches[it % 2], True), mode='loss')
        assert torch.isfinite(losses['loss'])
        optim.zero_grad()
        losses['loss'].backward()
        optim.step()
        history.append(losses['loss'].item())
    first, last = sum(history[:4]) / 4, sum(history[-4:]) / 4
    assert last < first - 0.1, history


@pytest.mark.slow
def test_eval_tool_runs_on_synthetic_scenes(tiny_streets):
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'eval_object_discovery.py'), '--data-root',
                          tiny_streets, '--depth', '18', '--size', '64', '--ks', '1', '2', '4', '--device', 'cpu'],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert '| ResNet-18 (random init) | 4 |' in res.stdout, res.stdout


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_object_contrastive_loss_under_autocast_is_the_fp32_loss(dtype):
    """Under AMP (bf16 / fp16 autocast) the masked logits are computed in fp32: the loss equals the fp32 loss of the
    same inputs (before the fix, bf16 logits could not take float32's minimum as the mask fill and raised)."""
    from multisiam_mm.models.algorithms.odin import object_contrastive_loss
    g = torch.Generator().manual_seed(0)
    q, z = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    valid_q = torch.tensor([[True, True, False, True], [True, True, True, True]])
    valid_t = torch.tensor([[True, False, True, True], [True, True, True, False]])
    ref = object_contrastive_loss(q, z, valid_q, valid_t, 0.1)
    with torch.autocast(device_type='cpu', dtype=dtype):
        amp = object_contrastive_loss(q, z, valid_q, valid_t, 0.1)
    assert amp.dtype == torch.float32 and torch.allclose(amp, ref, rtol=1e-6, atol=1e-6)

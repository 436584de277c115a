"""MoCo-based MultiSiam (supplement B.2): InfoNCE, the key queue, gradients and a training run."""
import copy
import math

import pytest
import torch
import torch.nn.functional as nnf
from conftest import random_pair_batch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from multisiam_mm.models.algorithms.multisiam_moco import KeyQueue, info_nce

init_default_scope('mmpretrain')


def tiny_moco(**kw) -> dict:
    return dict(dict(
        type='MultiSiamMoCo', queue_len=32, temperature=0.2,
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN')),
        neck=dict(type='MultiSiamNeck', in_channels=512, hid_channels=64, out_channels=16, with_bn=False)), **kw)


def test_info_nce_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    q = nnf.normalize(torch.randn(5, 8, generator=g), dim=1)
    k = nnf.normalize(torch.randn(5, 8, generator=g), dim=1)
    neg = nnf.normalize(torch.randn(8, 7, generator=g), dim=0)
    tau = 0.2
    expected = 0.0
    for n in range(5):
        pos = math.exp(float(q[n] @ k[n]) / tau)
        negs = sum(math.exp(float(q[n] @ neg[:, j]) / tau) for j in range(7))
        expected += -math.log(pos / (pos + negs)) / 5
    assert info_nce(q, k, neg, tau).item() == pytest.approx(expected, rel=1e-5)


def test_queue_is_fifo_and_wraps_around():
    queue = KeyQueue(dim=4, length=6)
    first = nnf.normalize(torch.randn(4, 4), dim=1)
    queue.push(first)
    assert torch.allclose(queue.keys[:, :4], first.T) and queue.ptr.item() == 4
    second = nnf.normalize(torch.randn(4, 4), dim=1)
    queue.push(second)
    assert torch.allclose(queue.keys[:, 4:], second[:2].T) and torch.allclose(queue.keys[:, :2], second[2:].T)
    assert queue.ptr.item() == 2


def test_gradients_reach_the_query_network_only_and_the_queues_fill():
    torch.manual_seed(0)
    model = MODELS.build(tiny_moco())
    before = model.queue_2d.keys.clone()
    data = model.data_preprocessor(random_pair_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_1d', 'loss_2d', 'ema_tau'} and all(torch.isfinite(v) for v in losses.values())
    assert losses['ema_tau'].item() == pytest.approx(0.999)  # constant key momentum: τ = 1 - momentum
    (losses['loss_1d'] + losses['loss_2d']).backward()
    assert all(p.grad is None for p in model.target_net.parameters())
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in model.neck.parameters())
    assert model.queue_2d.ptr.item() == 4  # one direction (MoCo v2's) x 4 images
    assert not torch.allclose(model.queue_2d.keys[:, :4], before[:, :4])


def swapped_views(batch: dict) -> dict:
    """The same batch with v and v' exchanged (inputs, boxes and flips)."""
    samples = []
    for ds in batch['data_samples']:
        s = ds.clone()
        s.set_field(ds.view_boxes.flip(0), 'view_boxes')
        s.set_field(ds.view_flips.flip(0), 'view_flips')
        samples.append(s)
    return dict(inputs=batch['inputs'][::-1], data_samples=samples)


def losses_and_grads(model, data: dict, directions: str):
    """loss_1d, loss_2d and the backbone + neck gradients of one step of ``model`` (a fresh copy) in ``directions``."""
    model = copy.deepcopy(model)
    model.loss_directions = directions
    losses = model(**data, mode='loss')
    (losses['loss_1d'] + losses['loss_2d']).backward()
    grads = [p.grad.clone() for p in [*model.backbone.parameters(), *model.neck.parameters()] if p.grad is not None]
    return losses['loss_1d'].detach(), losses['loss_2d'].detach(), grads, model.queue_1d.ptr.item()


def test_loss_directions_one_mean_sum():
    """'one' is MoCo v2's single direction; 'sum' = 'one'(v, v') + 'one'(v', v) (the same queue, both terms at full
    weight: twice the step of 'mean'); 'mean' halves it. One key per image per direction enters the queue."""
    torch.manual_seed(0)
    cfg = tiny_moco()  # a narrower ResNet-18 (16 base channels): four steps in seconds
    cfg['backbone'].update(base_channels=16, stem_channels=16)
    cfg['neck']['in_channels'] = 128
    model = MODELS.build(cfg)
    assert model.loss_directions == 'one'
    batch = random_pair_batch()
    data, swapped = model.data_preprocessor(batch, True), model.data_preprocessor(swapped_views(batch), True)
    one_ab, one_ba, mean, total = (losses_and_grads(model, d, m) for d, m in
                                   ((data, 'one'), (swapped, 'one'), (data, 'mean'), (data, 'sum')))
    for i in (0, 1):  # loss_1d, loss_2d
        assert torch.allclose(total[i], one_ab[i] + one_ba[i], rtol=1e-5)
        assert torch.allclose(total[i], 2 * mean[i], rtol=1e-6)
        assert not torch.allclose(one_ab[i], one_ba[i], rtol=1e-3)  # the two directions differ
    assert len(total[2]) == len(mean[2]) == len(one_ab[2])
    for g_sum, g_mean, g_ab, g_ba in zip(total[2], mean[2], one_ab[2], one_ba[2]):
        assert torch.allclose(g_sum, 2 * g_mean, rtol=1e-5, atol=1e-8)
        assert torch.allclose(g_sum, g_ab + g_ba, rtol=1e-4, atol=1e-6)
    assert (one_ab[3], mean[3], total[3]) == (4, 8, 8)  # keys enqueued: B per direction


def test_shipped_moco_config_uses_moco_v2_direction():
    from mmengine.config import Config
    cfg = Config.fromfile('configs/multisiam/multisiam-moco_r50_8xb128-coslr-325e_waymo.py')
    assert cfg.model.get('loss_directions', 'one') == 'one'


def test_moco_variant_validates_its_config():
    with pytest.raises(ValueError, match='loss_lambda'):
        MODELS.build(tiny_moco(loss_lambda=-0.1))
    with pytest.raises(ValueError, match='loss_directions'):
        MODELS.build(tiny_moco(loss_directions='both'))

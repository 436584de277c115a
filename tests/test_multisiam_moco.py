"""MoCo-based MultiSiam (supplement B.2): InfoNCE, the key queue, gradients and a training run."""
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
    assert model.queue_2d.ptr.item() == 8  # two directions x 4 images
    assert not torch.allclose(model.queue_2d.keys[:, :8], before[:, :8])


def test_moco_variant_validates_its_config():
    with pytest.raises(ValueError, match='loss_lambda'):
        MODELS.build(tiny_moco(loss_lambda=-0.1))

"""Large-batch training as in the paper: gradient accumulation (the ablations' update every 4 iterations) under the
paper's LARS optimiser equals one step on the 4x larger batch, target EMA included; AMP keeps k-means and the
losses in float32; channels_last gives the same losses."""
import copy

import pytest
import torch
from conftest import random_pair_batch, set_schedule, tiny_model, tiny_runner_cfg
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from multisiam_mm.models.utils import kmeans as kmeans_module

init_default_scope('mmpretrain')
ACCUMULATE, MICRO = 4, 2


def _lars(accumulative_counts: int) -> dict:
    """The paper's optimiser (configs/_base_/schedules/lars_coslr.py) with a given accumulation."""
    cfg = Config.fromfile('configs/_base_/schedules/lars_coslr.py').optim_wrapper
    return dict(cfg, optimizer=dict(cfg.optimizer, lr=0.2), accumulative_counts=accumulative_counts)


def _slice(batch: dict, start: int, stop: int) -> dict:
    return dict(inputs=[v[start:stop] for v in batch['inputs']], data_samples=batch['data_samples'][start:stop])


def _per_sample_model(ema_interval: int) -> torch.nn.Module:
    """The tiny MultiSiam with BatchNorm on running statistics: every sample's loss is then independent of the
    others in its batch (with batch statistics, a batch of 2 and a batch of 8 normalise differently, accumulation or
    not), so the comparison isolates the accumulation itself."""
    torch.manual_seed(0)
    model = MODELS.build(dict(tiny_model(), ema_interval=ema_interval))
    model.train()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
    return model


def test_accumulating_4_micro_batches_equals_one_step_on_the_4x_batch():
    big, small = _per_sample_model(ema_interval=1), _per_sample_model(ema_interval=ACCUMULATE)
    big_opt, small_opt = build_optim_wrapper(big, _lars(1)), build_optim_wrapper(small, _lars(ACCUMULATE))
    small_opt.initialize_count_status(small, 0, 2 * ACCUMULATE)
    for step in range(2):  # two optimiser steps: the second one uses a target that moved once
        batch = random_pair_batch(B=ACCUMULATE * MICRO, seed=step)
        set_schedule(step, 2)
        big_losses = big.train_step(copy.deepcopy(batch), big_opt)
        small_losses = []
        for i in range(ACCUMULATE):
            set_schedule(step * ACCUMULATE + i, 2 * ACCUMULATE)  # the same cosine τ position in both runs
            small_losses.append(small.train_step(_slice(copy.deepcopy(batch), i * MICRO, (i + 1) * MICRO),
                                                 small_opt))
        mean_small = sum(losses['loss'] for losses in small_losses) / ACCUMULATE
        torch.testing.assert_close(mean_small, big_losses['loss'], rtol=1e-5, atol=1e-6)
        for (name, p_big), p_small in zip(big.named_parameters(), small.parameters()):
            torch.testing.assert_close(p_small, p_big, rtol=1e-4, atol=1e-6, msg=f'{name} after step {step}')
        for p_big, p_small in zip(big.target_net.parameters(), small.target_net.parameters()):
            torch.testing.assert_close(p_small, p_big, rtol=1e-4, atol=1e-6)
    fresh = _per_sample_model(ema_interval=1)  # the steps really changed the weights: not two untouched models
    assert all(not torch.equal(a, b) for a, b in zip(big.backbone.parameters(), fresh.backbone.parameters()))


def test_without_ema_interval_the_target_moves_every_micro_batch():
    """The reason for ``ema_interval``: the default updates the target at every micro-batch."""
    per_step, per_micro = _per_sample_model(ema_interval=ACCUMULATE), _per_sample_model(ema_interval=1)
    for model in (per_step, per_micro):
        opt = build_optim_wrapper(model, _lars(ACCUMULATE))
        opt.initialize_count_status(model, 0, 2 * ACCUMULATE)
        for i in range(ACCUMULATE + 2):
            set_schedule(i, 2 * ACCUMULATE)
            model.train_step(_slice(random_pair_batch(B=MICRO, seed=i), 0, MICRO), opt)
    assert int(per_step.target_net.steps) == int(per_micro.target_net.steps) == ACCUMULATE + 2
    diffs = [not torch.equal(a, b) for a, b in zip(per_step.target_net.parameters(), per_micro.target_net.parameters())]
    assert any(diffs)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_amp_keeps_kmeans_and_the_losses_in_float32(dtype, monkeypatch):
    model = _per_sample_model(ema_interval=1)
    set_schedule(0, 10)
    seen = []
    original = kmeans_module._lloyd

    def spy(gram, *args, **kwargs):
        seen.append((gram.dtype, torch.is_autocast_enabled('cpu')))
        return original(gram, *args, **kwargs)

    monkeypatch.setattr(kmeans_module, '_lloyd', spy)
    data = model.data_preprocessor(random_pair_batch(), True)
    with torch.autocast(device_type='cpu', dtype=dtype):
        losses = model(**data, mode='loss')
        backbone_out = model.backbone(data['inputs'][0])[-1]
    assert backbone_out.dtype == dtype  # autocast is really on for the network
    assert seen and all(d == torch.float32 and not on for d, on in seen)
    for name, value in losses.items():
        if 'loss' in name:
            assert value.dtype == torch.float32 and torch.isfinite(value), name
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.backbone.parameters() if p.grad is not None)


def test_channels_last_gives_the_same_losses():
    model = _per_sample_model(ema_interval=1)
    set_schedule(0, 10)
    data = model.data_preprocessor(random_pair_batch(), True)
    reference = model(**copy.deepcopy(data), mode='loss')
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    data_cl = dict(data, inputs=[v.contiguous(memory_format=torch.channels_last) for v in data['inputs']])
    losses = model_cl(**data_cl, mode='loss')
    for name in ('loss_1d', 'loss_2d'):
        torch.testing.assert_close(losses[name], reference[name], rtol=1e-4, atol=1e-5)


def test_channels_last_hook_trains_in_nhwc(tiny_streets, tmp_path):
    cfg = dict(tiny_runner_cfg(tiny_streets, str(tmp_path), max_iters=1, ckpt_interval=1),
               custom_hooks=[dict(type='ChannelsLastHook')])
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    weight = runner.model.backbone.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert runner.iter == 1

"""Observability: IoUPairCrop's per-sample statistics, PairCropStatsHook and MultiSiam's logged EMA τ."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_runner_cfg
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from mmpretrain.models.utils import CosineEMA
from mmpretrain.structures import DataSample
from torch import nn

from multisiam_mm.datasets.transforms.iou_pair_crop import IoUPairCrop
from multisiam_mm.datasets.transforms.pair_formatting import PackPairInputs
from multisiam_mm.datasets.transforms.spanning_view import OdinSpanningView, PackOdinInputs
from multisiam_mm.engine.hooks import PairCropStatsHook
from multisiam_mm.models.utils.ema import cosine_ema_tau


def _sample(candidates: int, passing: int, fallback: bool) -> DataSample:
    return DataSample(metainfo=dict(pair_candidates=candidates, pair_passing=passing, pair_fallback=fallback))


@pytest.mark.parametrize('iou_thr, max_rounds', [(0.5, 64), (0.999, 1)])
def test_transform_records_per_sample_stats_and_the_packer_carries_them(iou_thr, max_rounds):
    np.random.seed(0)
    crop = IoUPairCrop(size=16, iou_thr=iou_thr, max_rounds=max_rounds, candidates_per_round=4)
    results = crop(dict(img=np.random.randint(0, 255, (48, 64, 3), dtype=np.uint8)))
    assert results['pair_candidates'] == crop.stats.candidates >= 1
    assert results['pair_passing'] == crop.stats.passing
    assert (results['pair_passing'] == 0) == (max_rounds == 1)  # none of the 4 draws has IoU > 0.999
    assert results['pair_fallback'] == bool(crop.stats.fallbacks)
    assert results['pair_fallback'] == (max_rounds == 1)  # IoU > 0.999 needs identical boxes: 4 draws miss
    sample = PackPairInputs()(results)['data_samples']
    assert sample.pair_candidates == results['pair_candidates'] and sample.pair_fallback == results['pair_fallback']
    assert sample.pair_passing == results['pair_passing']


def test_odin_spanning_view_carries_the_stats():
    np.random.seed(0)
    view = OdinSpanningView(pair_crop=dict(type='IoUPairCrop', size=16, iou_thr=0.), size=24)
    results = view(dict(img=np.random.randint(0, 255, (48, 64, 3), dtype=np.uint8)))
    sample = PackOdinInputs()(results)['data_samples']
    assert sample.pair_candidates == sample.pair_passing == 1 and sample.pair_fallback is False


def test_hook_logs_acceptance_and_fallbacks_of_the_batch():
    hub = MessageHub.get_instance('test_paircrop_stats_hook')
    runner = SimpleNamespace(message_hub=hub)
    batch = dict(data_samples=[_sample(16, 5, False), _sample(16, 1, False), _sample(32, 0, True), DataSample()])
    PairCropStatsHook().after_train_iter(runner, 0, batch)
    assert hub.get_scalar('train/paircrop_acceptance').current() == pytest.approx(6 / 64)
    assert hub.get_scalar('train/paircrop_fallbacks').current() == 1
    PairCropStatsHook().after_train_iter(runner, 1, dict(data_samples=[DataSample()]))  # no stats: skipped
    assert len(hub.get_scalar('train/paircrop_acceptance').data[0]) == 1


def test_tau_follows_cosine_ema():
    assert cosine_ema_tau(0, 10, 0.004) == pytest.approx(0.996)
    assert cosine_ema_tau(5, 10, 0.004) == pytest.approx(0.998)
    assert cosine_ema_tau(10, 10, 0.004) == pytest.approx(1.0)
    hub = MessageHub.get_instance('test_cosine_ema_tau')
    hub.update_info('max_iters', 10)
    source = nn.Linear(1, 1, bias=False)
    ema = CosineEMA(source, momentum=0.004)
    ema.update_parameters(source)  # update 0 copies
    for step in range(1, 4):
        before = ema.module.weight.detach().clone()
        with torch.no_grad():
            source.weight.add_(1.0)
        ema.update_parameters(source)
        tau = cosine_ema_tau(step, 10, 0.004)
        assert torch.allclose(ema.module.weight, tau * before + (1 - tau) * source.weight)


def test_runner_logs_paircrop_acceptance_and_ema_tau(tiny_streets, tmp_path):
    cfg = dict(tiny_runner_cfg(tiny_streets, str(tmp_path), max_iters=2),
               custom_hooks=[dict(type='PairCropStatsHook')],
               visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]))
    Runner.from_cfg(Config(cfg)).train()
    lines = [json.loads(line) for line in next(tmp_path.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    assert len(lines) == 2
    for it, line in enumerate(lines):
        assert 0 < line['paircrop_acceptance'] <= 1 and line['paircrop_fallbacks'] == 0
        assert line['ema_tau'] == pytest.approx(cosine_ema_tau(it, 2, 0.004))

"""A run resumed from a checkpoint ends on the weights of the run that was never stopped (issue 16).

MultiSiam, DenseSiam (with its RegionSim switch half-way) and Odin train 12 iterations with 2 data workers; a second
Runner resumes the checkpoint of iteration 5 and trains to 12. Every tensor of the final state (parameters, BN
statistics, EMA target, Odin's discovery network) must agree to 1e-6: the augmentations are seeded per sample from
(seed, epoch, index), the sampler continues at its saved position, and the global generators are seeded per step.
The epoch-based loop is checked the same way from a mid-epoch checkpoint found by ``resume=True`` alone, and a resume
must not load any sample it skips.
"""
import os.path as osp

import pytest
import torch
from conftest import tiny_runner_cfg
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, HOOKS
from test_distributed import tiny_config
from test_odin import tiny_odin_pipeline

from multisiam_mm.datasets import UnlabeledImageDataset

MAX_ITERS, RESUME_AT, TOL = 12, 5, 1e-6


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads made these tiny steps 20-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Interrupted(Exception):
    pass


@HOOKS.register_module(force=True)
class InterruptAfterIterHook(Hook):
    """Raises after iteration ``at`` (after its checkpoint: lowest priority), as a kill between two steps would."""

    priority = 'LOWEST'

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at:
            raise Interrupted


@HOOKS.register_module(force=True)
class RecordGlobalDrawHook(Hook):
    """Draws from torch's global generator before each step, as model code using it (dropout, ...) would."""

    def __init__(self) -> None:
        self.draws = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.draws[runner.iter] = float(torch.rand(()))


@DATASETS.register_module(force=True)
class CountingDataset(UnlabeledImageDataset):
    """UnlabeledImageDataset that records the indices it loads (main process: use num_workers=0)."""

    loaded = []

    def __getitem__(self, idx):
        CountingDataset.loaded.append(int(idx))
        return super().__getitem__(idx)


def method_cfg(name: str, data_root: str, work: str, **kwargs) -> dict:
    # the quarter-width ResNet-18 models of the distributed test: a step costs a fraction of a second on a CPU
    cfg = tiny_runner_cfg(data_root, work, max_iters=MAX_ITERS, ckpt_interval=RESUME_AT, model=tiny_config(name))
    cfg['train_dataloader'].update(num_workers=2)
    if name == 'odin':
        cfg['train_dataloader']['dataset']['pipeline'] = tiny_odin_pipeline()
    if name == 'densesiam':
        cfg['custom_hooks'] = [dict(type='DenseSiamRegionSimHook', start=0.5)]  # RegionSim on after iteration 6
    cfg['experiment_name'] = f'{name}_{osp.basename(work)}'  # a MessageHub of its own
    cfg.update(kwargs)
    return cfg


def final_state(runner: Runner) -> dict:
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def max_abs_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0 for k in a)


@pytest.mark.parametrize('name', ['multisiam', 'densesiam', 'odin'])
def test_resumed_run_ends_on_the_uninterrupted_weights(name, tiny_streets, tmp_path):
    whole = Runner.from_cfg(Config(method_cfg(name, tiny_streets, str(tmp_path / 'whole'))))
    whole.train()
    resumed = Runner.from_cfg(Config(method_cfg(name, tiny_streets, str(tmp_path / 'resumed'), resume=True,
                                                load_from=str(tmp_path / 'whole' / f'iter_{RESUME_AT}.pth'))))
    resumed.train()
    assert resumed.iter == whole.iter == MAX_ITERS
    diff = max_abs_difference(final_state(whole), final_state(resumed))
    print(f'{name}: max |w_resumed - w_uninterrupted| = {diff:.3g}')
    assert diff <= TOL, f'{name}: resumed weights differ from the uninterrupted run by {diff:.3g}'


def test_model_side_global_draws_repeat_after_resume(tiny_streets, tmp_path):
    hooks = [dict(type='RecordGlobalDrawHook')]
    loop = dict(type='ResumableIterBasedTrainLoop', max_iters=8)
    whole = Runner.from_cfg(Config(method_cfg('multisiam', tiny_streets, str(tmp_path / 'whole'), custom_hooks=hooks,
                                              train_cfg=loop)))
    whole.train()
    resumed = Runner.from_cfg(Config(method_cfg(
        'multisiam', tiny_streets, str(tmp_path / 'resumed'), custom_hooks=hooks, resume=True, train_cfg=loop,
        load_from=str(tmp_path / 'whole' / f'iter_{RESUME_AT}.pth'))))
    resumed.train()
    draws = [h for h in whole.hooks if isinstance(h, RecordGlobalDrawHook)][0].draws
    again = [h for h in resumed.hooks if isinstance(h, RecordGlobalDrawHook)][0].draws
    assert sorted(again) == list(range(RESUME_AT, 8))
    assert all(again[i] == draws[i] for i in again)


def epoch_cfg(data_root: str, work: str, **kwargs) -> dict:
    """16 images, batch 4: 4 iterations an epoch, 3 epochs; mid-epoch checkpoints every 5 iterations."""
    cfg = method_cfg('multisiam', data_root, work, **kwargs)
    cfg['train_dataloader']['sampler'] = dict(type='ResumableSampler', shuffle=True)
    cfg.update(train_cfg=dict(type='ResumableEpochBasedTrainLoop', max_epochs=3),
               param_scheduler=[dict(type='CosineAnnealingLR', T_max=3, by_epoch=True, convert_to_iter_based=True)],
               log_processor=dict(by_epoch=True, window_size=1))
    cfg['default_hooks']['checkpoint'] = dict(type='MidEpochCheckpointHook', interval=1, iter_interval=5,
                                              max_keep_ckpts=2)
    return cfg


def test_epoch_based_run_resumes_mid_epoch_from_last_checkpoint(tiny_streets, tmp_path):
    whole = Runner.from_cfg(Config(epoch_cfg(tiny_streets, str(tmp_path / 'whole'))))
    whole.train()
    assert whole.iter == 12 and whole.epoch == 3
    # max_keep_ckpts=2 epoch checkpoints; the mid-epoch ones are superseded by the next epoch checkpoint
    assert sorted(p.name for p in (tmp_path / 'whole').glob('*.pth')) == ['epoch_2.pth', 'epoch_3.pth']

    work = str(tmp_path / 'killed')
    killed = Runner.from_cfg(Config(epoch_cfg(tiny_streets, work, custom_hooks=[
        dict(type='InterruptAfterIterHook', at=7)])))
    with pytest.raises(Interrupted):
        killed.train()
    last = open(osp.join(work, 'last_checkpoint')).read().strip()
    assert osp.basename(last) == 'iter_5.pth'  # mid-epoch: epoch 2, after its first batch
    meta = torch.load(last, map_location='cpu', weights_only=True)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 5)

    resumed = Runner.from_cfg(Config(dict(epoch_cfg(tiny_streets, work), resume=True,
                                          experiment_name='multisiam_killed_resumed')))
    resumed.train()
    assert resumed.iter == 12
    diff = max_abs_difference(final_state(whole), final_state(resumed))
    print(f'epoch-based multisiam: max |w_resumed - w_uninterrupted| = {diff:.3g}')
    assert diff <= TOL


def test_resume_loads_no_skipped_sample(tiny_streets, tmp_path):
    def cfg(work: str, **kwargs) -> dict:
        c = method_cfg('multisiam', tiny_streets, work, **kwargs)
        c['train_dataloader'].update(num_workers=0)
        c['train_dataloader']['dataset']['type'] = 'CountingDataset'
        c['default_hooks']['checkpoint']['interval'] = 10
        return c

    CountingDataset.loaded.clear()
    Runner.from_cfg(Config(cfg(str(tmp_path / 'whole')))).train()
    stream = list(CountingDataset.loaded)
    assert len(stream) == MAX_ITERS * 4

    CountingDataset.loaded.clear()
    Runner.from_cfg(Config(cfg(str(tmp_path / 'resumed'), resume=True,
                               load_from=str(tmp_path / 'whole' / 'iter_10.pth')))).train()
    # only the 2 batches after iteration 10, and exactly those of the uninterrupted run
    assert CountingDataset.loaded == stream[40:], f'resume loaded {len(CountingDataset.loaded)} samples, not 8'

"""Shared fixtures: a tiny synthetic street-scene set and a tiny MultiSiam config that trains on CPU in seconds."""
import argparse
import copy
import importlib.util
import itertools
import os.path as osp

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

import multisiam_mm  # noqa: F401  (registers the components)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

torch.set_num_threads(2)


def load_tool(name: str):
    """A tools/ script as a module (its main() runs in this process)."""
    spec = importlib.util.spec_from_file_location(f'tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def tiny_streets(tmp_path_factory) -> str:
    """16 synthetic street scenes of 96x64 pixels (written once per test session)."""
    from multisiam_mm.datasets import write_synthetic_dataset
    root = str(tmp_path_factory.mktemp('streets'))
    write_synthetic_dataset(root, num_train=16, num_val=4, width=96, height=64, seed=0)
    return root


def tiny_model(alignment: str = 'offset', **cluster_head) -> dict:
    """MultiSiam on a ResNet-18 with narrow heads (64x64 views -> 2x2 final map)."""
    return dict(
        type='MultiSiam',
        alignment=alignment,
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN')),
        neck=dict(type='MultiSiamNeck', in_channels=512, hid_channels=64, out_channels=32),
        head=dict(type='LatentPredictHead',
                  loss=dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0),
                  predictor=dict(type='NonLinearNeck', in_channels=32, hid_channels=64, out_channels=32,
                                 with_bias=True, with_last_bn=False, with_avg_pool=False)),  # BYOL's predictor
        cluster_head=dict(dict(type='ClusterHead', in_channels=32, hid_channels=64, out_channels=32,
                               num_clusters=3), **cluster_head),
    )


def tiny_pipeline(size: int = 64) -> list:
    return [
        dict(type='LoadImageFromFile'),
        dict(type='IoUPairCrop', size=size, iou_thr=0.5),
        dict(type='PackPairInputs'),
    ]


_RUN_NUMBERS = itertools.count()


def tiny_runner_cfg(data_root: str, work_dir: str, max_iters: int = 4, ckpt_interval: int = 2,
                    model: dict = None) -> dict:
    """A full mmengine Runner config (iteration-based) around the tiny model.

    Each config has an experiment name of its own: mmengine names the run's logger, MessageHub and Visualizer after
    it, and its default (the timestamp, to the second) made two runs started in the same second share one logger,
    whose file lies in the first run's work_dir.
    """
    return copy.deepcopy(dict(
        experiment_name=f'tiny_run_{next(_RUN_NUMBERS)}',
        default_scope='mmpretrain',
        custom_imports=dict(imports=['multisiam_mm'], allow_failed_imports=False),
        model=model or tiny_model(),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='UnlabeledImageDataset', data_root=data_root, ann_file='train.txt',
                         pipeline=tiny_pipeline())),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=[dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, begin=0, end=max_iters)],
        train_cfg=dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=ckpt_interval, max_keep_ckpts=5)),
        log_processor=dict(by_epoch=False, window_size=1),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        log_level='WARNING',
    ))


def set_schedule(it: int, max_iters: int, epoch: int = 0) -> None:
    """Put the iteration, epoch and max_iters in the MessageHub, as the Runner does (CosineEMA reads them)."""
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', it)
    hub.update_info('max_iters', max_iters)
    hub.update_info('epoch', epoch)


def random_pair_batch(B: int = 4, size: int = 64, span_size: int = 0, seed: int = 0) -> dict:
    """A batch as the data preprocessor receives it: two random views (and a spanning view if span_size) with the
    view geometry of IoUPairCrop (boxes in a 120x100 original image, the second view flipped)."""
    g = torch.Generator().manual_seed(seed)
    sizes = (size, size, span_size) if span_size else (size, size)
    inputs = [torch.rand(B, 3, s, s, generator=g) * 255 for s in sizes]
    samples = []
    for i in range(B):
        ds = DataSample()
        ds.set_field(torch.tensor([[0., 0., 80., 80.], [20., 10., 100., 90.]]), 'view_boxes')
        ds.set_field(torch.tensor([False, True]), 'view_flips')
        if span_size:
            ds.set_field(torch.tensor([0., 0., 100., 90.]), 'span_box')
        ds.set_metainfo(dict(ori_shape=(100, 120), sample_idx=i))
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def apply_cfg_options(cfg: Config, options: list) -> Config:
    """Merge ``--cfg-options key=value ...`` exactly as tools/train.py and mim parse them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    if options:
        cfg.merge_from_dict(parser.parse_args(['--cfg-options', *options]).cfg_options)
    return cfg


def config_value(cfg: Config, key: str):
    """The value at a dotted config key (list indices as numbers)."""
    node = cfg
    for part in key.split('.'):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


def build_parts(cfg: Config) -> None:
    """Build what a Runner builds from a training config, in the config's default scope (mmpretrain, mmseg or
    mmdet): the model, the training pipeline and the custom hooks."""
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        ROOT_MODELS.build(cfg.model)
        dataset = cfg.train_dataloader.dataset
        while 'pipeline' not in dataset:  # dataset wrappers (RepeatDataset, ...)
            dataset = dataset.dataset
        for t in dataset.pipeline:
            ROOT_TRANSFORMS.build(t)
        for h in cfg.get('custom_hooks', []):
            ROOT_HOOKS.build({k: v for k, v in h.items() if k != 'priority'})  # the Runner takes the priority itself

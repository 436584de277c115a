"""Segmentation probes (configs/benchmarks/mmseg, tools/probe_segmentation.py), cluster maps and ClusterMapHook."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, load_tool, tiny_runner_cfg
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

from multisiam_mm.evaluation.cluster_maps import (
    CLUSTER_PALETTE,
    backbone_tensors,
    canonical_labels,
    cluster_labels,
    colourise,
    compose_grid,
    overlay,
)
from multisiam_mm.utils.backbone_export import BackboneKeyError


@pytest.fixture(scope='module')
def probe():
    return load_tool('probe_segmentation')


def _probe_argv(data_root: str, work_dir: str, *extra: str) -> list:
    """A few-iteration probe on the tiny 96x64 scenes."""
    return ['--data-root', data_root, '--work-dir', work_dir, '--iters', '3', '--batch-size', '2', '--crop', '64',
            '--scale', '96', '64', '--workers', '0', '--log-interval', '1', *extra]


@pytest.fixture(scope='module')
def multisiam_ckpt(tiny_streets, tmp_path_factory) -> str:
    """A MultiSiam (ResNet-18) pretraining checkpoint after 2 iterations on the tiny scenes."""
    work_dir = str(tmp_path_factory.mktemp('multisiam'))
    Runner.from_cfg(Config(tiny_runner_cfg(tiny_streets, work_dir, max_iters=2, ckpt_interval=2))).train()
    return osp.join(work_dir, 'iter_2.pth')


def test_seg_folder_config_reads_tiny_set(probe, tiny_streets, tmp_path):
    from mmseg.registry import DATASETS
    probe.register_all_modules(init_default_scope=False)
    cfg = probe.probe_config(probe.parse_args(['--random-init', *_probe_argv(tiny_streets, str(tmp_path))]))
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 18
    with DefaultScope.overwrite_default_scope('mmseg'):
        train, val = DATASETS.build(cfg.train_dataloader.dataset), DATASETS.build(cfg.val_dataloader.dataset)
        sample, crop = val[0], train[0]['inputs']
    assert (len(train), len(val)) == (16, 4)
    assert train.metainfo['classes'] == ('road', 'sidewalk', 'building', 'sky', 'vegetation', 'pole', 'car', 'person')
    seg = sample['data_samples'].gt_sem_seg.data
    assert tuple(seg.shape[-2:]) == (64, 96) and int(seg.max()) < 8
    assert tuple(crop.shape[-2:]) <= (64, 64)


def test_linear_config_freezes_backbone_and_seg_folder_base_builds():
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/benchmarks/mmseg/linear_r18_synthetic_streets.py'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert [n for n, p in model.decode_head.named_parameters() if p.requires_grad] == ['conv_seg.weight',
                                                                                         'conv_seg.bias']
    base = Config.fromfile(osp.join(ROOT, 'configs/benchmarks/mmseg/_base_/seg_folder.py'))
    assert base.val_evaluator.ignore_index == 255 and base.train_dataloader.dataset.type == 'BaseSegDataset'


def test_mmseg_resnet_takes_pretraining_backbone_keys(multisiam_ckpt):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/benchmarks/mmseg/fcn_r18_synthetic_streets.py'))
    backbone = MODELS.build(cfg.model.backbone)
    missing, unexpected = backbone.load_state_dict(backbone_tensors(multisiam_ckpt), strict=True)
    assert not missing and not unexpected


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['linear', 'finetune'])
@pytest.mark.parametrize('source', ['random', 'multisiam'])
def test_probe_runs_end_to_end(probe, tiny_streets, multisiam_ckpt, tmp_path, capsys, mode, source):
    weights = ['--random-init'] if source == 'random' else ['--checkpoint', multisiam_ckpt]
    scope_before = getattr(DefaultScope.get_current_instance(), 'scope_name', None)
    result = probe.main(_probe_argv(tiny_streets, str(tmp_path), '--mode', mode, *weights))
    out = capsys.readouterr().out
    assert '[probe] iter 3/3' in out and '| **mIoU** |' in out and f'mIoU: {result["mIoU"]:.2f}' in out
    assert getattr(DefaultScope.get_current_instance(), 'scope_name', None) == scope_before  # left as it was
    assert 0.0 <= result['mIoU'] <= 100.0 and list(result['per_class'])[:2] == ['road', 'sidewalk']
    scalars = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    assert len(scalars) == 1 and open(scalars[0]).read().count('"mIoU"') == 1  # evaluated once, not twice
    if source == 'multisiam':  # the probe's backbone starts from the checkpoint's online backbone
        assert torch.load(osp.join(str(tmp_path), 'probe_backbone.pth'))['state_dict'].keys() == \
            backbone_tensors(multisiam_ckpt).keys()


def test_probe_strict_loading_names_the_keys(probe, tiny_streets, tmp_path):
    state = PRETRAIN_MODELS.build(dict(type='ResNet', depth=18)).state_dict()
    state.pop('layer1.0.conv1.weight')
    state['layer5.0.conv1.weight'] = torch.zeros(1)
    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': state}, bad)
    with pytest.raises(BackboneKeyError, match=r'missing keys \(1\): layer1\.0\.conv1\.weight') as err:
        probe.main(_probe_argv(tiny_streets, str(tmp_path / 'wd'), '--checkpoint', bad))
    assert 'unexpected keys (1): layer5.0.conv1.weight' in str(err.value)


def test_probe_help(probe, capsys):
    with pytest.raises(SystemExit):
        probe.parse_args(['--help'])
    assert '--img-dir' in capsys.readouterr().out


def test_cluster_labels_shape_determinism_and_canonical_order():
    feats = torch.randn(2, 16, 5, 7, generator=torch.Generator().manual_seed(0))
    labels = cluster_labels(feats, num_clusters=3)
    assert labels.shape == (2, 5, 7) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) < 3
    assert torch.equal(labels, cluster_labels(feats.clone(), num_clusters=3))
    assert (labels[:, 0, 0] == 0).all()
    flat = labels.flatten(1)
    for row in flat:  # clusters numbered by first appearance
        firsts = [int((row == k).nonzero()[0]) for k in row.unique()]
        assert firsts == sorted(firsts)
    assert torch.equal(canonical_labels(torch.tensor([[2, 2, 0, 1, 0]])), torch.tensor([[0, 0, 1, 2, 1]]))


def test_constant_map_gives_one_colour():
    labels = cluster_labels(torch.ones(1, 8, 4, 6), num_clusters=3)
    assert labels.unique().tolist() == [0]
    image = np.full((32, 48, 3), 90, np.uint8)
    drawn = overlay(image, labels[0].numpy(), alpha=1.0)
    assert drawn.shape == image.shape and np.unique(drawn.reshape(-1, 3), axis=0).tolist() == [[230, 25, 75]]


def test_colours_and_grid():
    labels = np.array([[0, 1], [2, 11]])
    assert colourise(labels).tolist() == [[CLUSTER_PALETTE[0].tolist(), CLUSTER_PALETTE[1].tolist()],
                                          [CLUSTER_PALETTE[2].tolist(), CLUSTER_PALETTE[1].tolist()]]
    image = np.zeros((4, 6, 3), np.uint8)
    drawn = overlay(image, labels, alpha=0.5)
    assert drawn[0, 0].tolist() == (CLUSTER_PALETTE[0] / 2).round().astype(int).tolist()
    assert drawn[0, 5].tolist() == (CLUSTER_PALETTE[1] / 2).round().astype(int).tolist()  # nearest upsampling
    tile = np.zeros((10, 20, 3), np.uint8)
    grid = compose_grid([[tile, tile, tile], [tile]], ['a', 'b', 'c'], pad=2)
    assert grid.shape == (18 + 2 + 10 + 2 + 10, 3 * 20 + 2 * 2, 3) and grid.dtype == np.uint8


def test_visualize_clusters_tool(multisiam_ckpt, tiny_streets, tmp_path):
    out = str(tmp_path / 'grid.png')
    load_tool('visualize_clusters').main([
        '--checkpoints', 'random', multisiam_ckpt, '--names', 'random', 'MultiSiam', '--images',
        osp.join(tiny_streets, 'images', 'val'), '--num-images', '2', '--size', '96', '64', '--out', out])
    assert cv2.imread(out).shape == (18 + 2 + 64 + 2 + 64, 3 * 96 + 2 * 2, 3)


@pytest.mark.slow
def test_cluster_map_hook_writes_pngs_at_interval(tiny_streets, tmp_path):
    cfg = tiny_runner_cfg(tiny_streets, str(tmp_path), max_iters=3, ckpt_interval=3)
    cfg['custom_hooks'] = [dict(type='ClusterMapHook', interval=2, num_images=2, size=(64, 48))]
    cfg['visualizer'] = dict(type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
    Runner.from_cfg(Config(cfg)).train()
    written = sorted(osp.basename(p) for p in glob.glob(osp.join(str(tmp_path), 'vis_data', 'cluster_maps', '*')))
    assert written == ['iter_000002.png', 'iter_000003.png']  # every 2 iterations and the last
    assert cv2.imread(osp.join(str(tmp_path), 'vis_data', 'cluster_maps', written[0])).shape == (48, 2 * 64 + 2, 3)
    logged = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'vis_image', 'cluster_maps_*.png'))
    assert sorted(osp.basename(p) for p in logged) == ['cluster_maps_2.png', 'cluster_maps_3.png']

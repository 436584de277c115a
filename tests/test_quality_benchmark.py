"""The quality benchmark (benchmarks/quality): aggregation, ABO inputs, the plan, and a resumable end-to-end run."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, apply_cfg_options

sys.path.insert(0, osp.join(ROOT, 'benchmarks', 'quality'))
from abo import class_segments, labelled_pairs  # noqa: E402
from arms import ARMS  # noqa: E402
from report import mean_spread, summarise  # noqa: E402
from run import collect_images, parse_args, plan, scaled  # noqa: E402

RUN = osp.join(ROOT, 'benchmarks', 'quality', 'run.py')


def test_every_arm_builds_from_its_config_and_switches():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    for name, arm in ARMS.items():
        if arm.config is None:
            continue
        cfg = apply_cfg_options(Config.fromfile(osp.join(ROOT, arm.config)), [f'{k}={v}' for k, v in
                                                                              arm.options.items()])
        assert cfg.train_dataloader.batch_size == 16 and cfg.model.backbone.depth == 18, name
        MODELS.build(cfg.model)
        iou_thr = cfg.train_dataloader.dataset.pipeline[1].get('iou_thr')
        if name.endswith('_mmpretrain'):  # outside rungs: mmpretrain's own model class, independent crops
            assert type(MODELS.build(cfg.model)).__module__.startswith('mmpretrain.'), name
            assert iou_thr == 0.0, name
        elif name.startswith(('byol', 'multisiam')):
            assert iou_thr == (0.0 if name == 'byol' else 0.5), name
            assert (cfg.model.cluster_head is None) == name.startswith('byol'), name


def test_mmpretrain_byol_rung_is_mmpretrain_byol_config_at_the_benchmark_widths():
    """The outside BYOL rung keeps every neck / predictor switch of mmpretrain's own BYOL config, and the same
    pipeline, optimiser and EMA as our "byol" rung: only the model class and its MLP builder differ."""
    import mmpretrain
    from mmengine.config import Config
    ours = Config.fromfile(osp.join(ROOT, ARMS['byol_mmpretrain'].config))
    theirs = Config.fromfile(osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'byol',
                                      'byol_resnet50_16xb256-coslr-200e_in1k.py'))
    widths = ('in_channels', 'hid_channels', 'out_channels')
    for mine, ref in ((ours.model.neck, theirs.model.neck), (ours.model.head.predictor, theirs.model.head.predictor)):
        assert {k: v for k, v in mine.items() if k not in widths} == {k: v for k, v in ref.items() if k not in widths}
    assert ours.model.type == theirs.model.type == 'BYOL'
    byol = apply_cfg_options(Config.fromfile(osp.join(ROOT, ARMS['byol'].config)),
                             [f'{k}={v}' for k, v in ARMS['byol'].options.items()])
    assert ours.train_dataloader.dataset.pipeline == byol.train_dataloader.dataset.pipeline
    assert ours.optim_wrapper == byol.optim_wrapper and ours.model.base_momentum == byol.model.base_momentum


def test_mean_and_sample_spread_over_seeds():
    stat = mean_spread([20.0, 24.0])
    assert stat == dict(mean=22.0, std=pytest.approx(2.0 ** 1.5), min=20.0, max=24.0, n=2)
    assert mean_spread([5.0])['std'] == 0.0 and mean_spread([]) is None
    summary = summarise({'byol': {'linear': [dict(mIoU=20.0, seconds=1.0), dict(mIoU=24.0, seconds=3.0)]}})
    assert summary['byol']['linear']['mean'] == 22.0 and summary['byol']['linear_seconds']['mean'] == 2.0
    assert summary['byol']['finetune'] is None


def test_class_segments_merge_each_class_and_drop_ignored_pixels():
    label = np.array([[0, 0, 3], [255, 3, 1]], dtype=np.uint8)
    assert class_segments(label, 255).tolist() == [[1, 1, 4], [0, 4, 2]]


def test_labelled_pairs_match_images_and_labels_at_any_depth(tmp_path):
    for rel in ('a/x_image.jpg', 'b/c/y_image.jpg'):
        for root, suffix in (('img', '_image.jpg'), ('ann', '_label.png')):
            path = tmp_path / root / 'val' / rel.replace('_image.jpg', suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    pairs = labelled_pairs(str(tmp_path), 'img', 'ann', '_image.jpg', '_label.png')
    assert [osp.relpath(label, tmp_path) for _, label in pairs] == ['ann/val/a/x_label.png', 'ann/val/b/c/y_label.png']
    (tmp_path / 'ann' / 'val' / 'a' / 'x_label.png').unlink()
    with pytest.raises(FileNotFoundError, match='no label'):
        labelled_pairs(str(tmp_path), 'img', 'ann', '_image.jpg', '_label.png')


def test_plan_budget_and_inputs(tmp_path):
    args = parse_args(['--arms', 'random', 'byol', '--seeds', '0', '1', '--budget', '2', '--seg-root', 'x',
                       '--pretrain-images', 'y'])
    steps = plan(args)
    assert steps[:5] == [('random', 0, 'linear'), ('random', 0, 'finetune'), ('random', 0, 'abo'),
                         ('byol', 0, 'pretrain'), ('byol', 0, 'linear')]  # random init has no pretraining
    assert len(steps) == 2 * (3 + 4)
    assert scaled(args) == dict(pretrain_iters=400, linear_iters=600, finetune_iters=300, abo_images=500)
    (tmp_path / 'd').mkdir()
    cv2.imwrite(str(tmp_path / 'd' / 'b.png'), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / 'd' / 'notes.txt').write_text('not an image')
    (tmp_path / 'list.txt').write_text('# frames\nd/b.png\n\n')
    assert collect_images([str(tmp_path / 'd'), str(tmp_path / 'list.txt')]) == [str(tmp_path / 'd' / 'b.png')] * 2
    with pytest.raises(FileNotFoundError):
        collect_images([str(tmp_path / 'missing')])
    with pytest.raises(SystemExit):  # a pretrained arm without images
        parse_args(['--arms', 'byol', '--seg-root', 'x'])


@pytest.mark.slow
def test_end_to_end_run_writes_the_table_and_resumes(tiny_streets, tmp_path):
    work = tmp_path / 'quality'
    cmd = [sys.executable, RUN, '--work-dir', str(work), '--arms', 'random', 'byol', '--seeds', '0',
           '--budget', '0.05', '--pretrain-images', osp.join(tiny_streets, 'images', 'train'),
           '--seg-root', tiny_streets, '--scale', '96', '64', '--probe-crop', '48', '--workers', '0']
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert 'ETA' in first.stdout and '[byol s0 pretrain]' in first.stdout
    results = json.loads((work / 'results.json').read_text())
    for arm in ('random', 'byol'):
        row = results['summary'][arm]
        assert 0 <= row['linear']['mean'] <= 100 and 0 <= row['finetune']['mean'] <= 100
        assert 0 < row['abo']['mean'] <= 100
    pretrain = json.loads((work / 'byol' / 'seed0' / 'pretrain.json').read_text())
    assert pretrain['iters'] == 10 and osp.exists(pretrain['checkpoint'])
    assert torch.load(pretrain['checkpoint'], map_location='cpu', weights_only=True)['meta']['iter'] == 10
    assert '| byol: BYOL (independent crops) | 67.2 |' in (work / 'results.md').read_text()
    assert (work / 'results.png').stat().st_size > 0
    # a rerun finds every stage done: nothing is trained again, the same table comes out
    (work / 'byol' / 'seed0' / 'abo.json').unlink()  # ... except a stage whose result was lost
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert '1/1 byol seed 0 abo' in second.stdout and 'pretrain]' not in second.stdout
    assert json.loads((work / 'results.json').read_text())['summary']['byol']['abo'] is not None

"""The schedules of the paper configs against the papers' numbers, tools/print_schedule.py, and auto_scale_lr.

Each PAPER entry gives what the paper says, with its section; what a paper does not give is marked in ``not_paper``
with where the value comes from instead. Papers: MultiSiam (ICCV 2021) and its supplement, DenseSiam (ECCV 2022),
Odin (ECCV 2022), as in /work/shared/papers.
"""
import importlib.util
import os.path as osp
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'print_schedule.py')
_spec = importlib.util.spec_from_file_location('print_schedule', TOOL)
print_schedule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(print_schedule)

BYOL_WARMUP = '10 epochs, linear from 0.0001 x lr'


@dataclass(frozen=True)
class Paper:
    gpus: int
    batch_per_gpu: int
    accumulation: int
    epochs: Optional[int]
    optimizer: str
    base_lr: float  # lr = base_lr x total batch / 256
    weight_decay: float
    tau: Tuple[Optional[float], Optional[float]]  # EMA τ at the start and at the end
    warmup: str
    source: str  # where the numbers are in the paper
    not_paper: str = ''  # the numbers the paper does not give, and where they come from


MULTISIAM = ('MultiSiam Sec. 4.1: "LARS ... cosine learning rate scheduler ... base learning rate is set to 1.0 ... '
             'lr = lr_base x bs/256 ... Weight decay is set to 1e-5 ... batch size of 1024 running on 8 Tesla V100 '
             'GPUs ... 325 epochs on Waymo"; "momentum starts at 0.996 and increases gradually to 1.0"')
BYOL_WARMUP_SOURCE = ('warm-up: not in the paper; BYOL\'s 10 linear epochs, as OpenSelfSup\'s BYOL config (the '
                      'paper\'s codebase, Sec. 4.1)')

PAPER = {
    'configs/multisiam_waymo.py': Paper(
        8, 128, 1, 325, 'LARS', 1.0, 1e-5, (0.996, 1.0), BYOL_WARMUP, f'{MULTISIAM}; Table 1', BYOL_WARMUP_SOURCE),
    'configs/multisiam/multisiam_r50_8xb128-coslr-200e_in1k.py': Paper(
        8, 128, 1, 200, 'LARS', 1.0, 1e-5, (0.996, 1.0), BYOL_WARMUP,
        'supplement C: "All hyper-parameters are kept the same with Waymo ... 200 epochs"', BYOL_WARMUP_SOURCE),
    'configs/multisiam/multisiam_r50_8xb128-coslr-55e_soda5m.py': Paper(
        8, 128, 1, 55, 'LARS', 1.0, 1e-5, (0.996, 1.0), BYOL_WARMUP,
        'Table 1 (SODA5M, 55 epochs); Sec. 4.1 for the rest', BYOL_WARMUP_SOURCE),
    'configs/multisiam/ablations/multisiam_r50_8xb128-accum4-coslr-150e_waymo.py': Paper(
        8, 128, 4, 150, 'LARS', 0.3, 1e-5, (0.99, 1.0), BYOL_WARMUP,
        'Sec. 4.3: "150 epochs ... base learning of 0.3 ... batch size is set to 1024, and parameters are updated '
        'every four iterations to mimic a batch size of 4096"; supplement Table A4: base momentum 0.99',
        BYOL_WARMUP_SOURCE),
    'configs/multisiam/multisiam-moco_r50_8xb128-coslr-325e_waymo.py': Paper(
        8, 128, 1, 325, 'SGD', 0.03, 1e-4, (0.999, 0.999), 'none',
        'Table 1 (MultiSiam††, Waymo, 325 epochs); Sec. 4.1 (1024 on 8 GPUs per experiment)',
        'optimiser, lr, wd, key momentum and no warm-up: not in supplement B.2; MoCo v2\'s, the method it is '
        'based on'),
    'configs/byol/byol_r50_8xb128-coslr-325e_waymo.py': Paper(
        8, 128, 1, 325, 'LARS', 1.0, 1e-5, (0.996, 1.0), BYOL_WARMUP, 'Table 1 (BYOL, Waymo, 325 epochs)',
        'lr and wd: the paper tuned its baselines (Sec. 4.1) without printing the values; MultiSiam\'s schedule, so '
        'the comparison changes only the model'),
    'configs/densesiam/densesiam_r50_8xb64-coslr-200e_in1k.py': Paper(
        8, 64, 1, 200, 'SGD', 0.05, 1e-4, (None, None), 'none',
        'DenseSiam Sec. 5.1: SimSiam\'s setting, lr = lr_base x BatchSize / 256, "The batch size is 512 by default", '
        'cosine decay, SGD, "200 epochs on IN1k"; no momentum encoder (Sec. 1)',
        'base lr 0.05 and wd 1e-4: lost in the text extraction; SimSiam\'s and the authors\' released config '
        '(Sec. 5.1: the same values for segmentation); no warm-up: SimSiam has none'),
    'configs/densesiam/densesiam_r50_8xb32-coslr-200e_in1k.py': Paper(
        8, 32, 1, 200, 'SGD', 0.05, 1e-4, (None, None), 'none', 'DenseSiam Sec. 5.1 (as above)',
        'total batch 256, not the paper\'s 512: SimSiam\'s own batch, lr linearly scaled (Sec. 5.1\'s rule); the '
        'paper\'s 512 is densesiam_r50_8xb64-coslr-200e_in1k.py'),
    'configs/densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py': Paper(
        8, 32, 1, 200, 'SGD', 0.05, 1e-4, (None, None), 'none', 'DenseSiam Sec. 5.1 (as above)',
        'not a paper setting: the ImageNet recipe on Waymo, batch 256 as the 8xb32 ImageNet config'),
    'configs/odin/odin_r50_16xb256-lars-1000e_in1k.py': Paper(
        16, 256, 1, 1000, 'LARS', 0.2, 1.5e-5, (0.996, 1.0), BYOL_WARMUP,
        'Odin A.3: "1000 epochs using the LARS optimizer with a batch size of 4096 ... optimization details of BYOL '
        '... base learning rate is 0.2 and the weight decay is 1.5 - 1075" (read 1.5e-5); Sec. 3.1: target network '
        'with BYOL\'s schedule (τ 0.996 -> 1), λτ = 1e-3',
        '16 GPUs x 256 for the paper\'s 128 TPU workers x 32 (same total batch); weight decay garbled in the print '
        '(BYOL\'s is 1.5e-6, docs/odin.md); warm-up: BYOL\'s 10 epochs ("optimization details of BYOL")'),
    'configs/odin/odin_r50_8xb128-coslr-300e_waymo.py': Paper(
        8, 128, 1, 300, 'LARS', 0.2, 1.5e-5, (0.996, 1.0), BYOL_WARMUP, 'Odin A.3 recipe (as above)',
        'not a paper setting: Odin pretrains on ImageNet only; 8 x 128 and 300 epochs are this repository\'s'),
}


@pytest.fixture(scope='module')
def schedules():
    return {path: print_schedule.read_schedule(osp.join(ROOT, path)) for path in PAPER}


@pytest.mark.parametrize('path', sorted(PAPER))
def test_config_schedule_is_the_papers(path, schedules):
    paper, s = PAPER[path], schedules[path]
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert paper.source  # every entry cites its section
    assert cfg.train_dataloader.batch_size == paper.batch_per_gpu
    assert cfg.optim_wrapper.get('accumulative_counts', 1) == paper.accumulation
    assert (s.gpus, s.batch_per_gpu, s.accumulation) == (paper.gpus, paper.batch_per_gpu, paper.accumulation)
    assert cfg.train_cfg.get('max_epochs') == paper.epochs
    assert cfg.optim_wrapper.optimizer.type == paper.optimizer
    total = paper.gpus * paper.batch_per_gpu * paper.accumulation
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(paper.base_lr * total / 256)
    assert s.lr_batch == total and s.base_lr == pytest.approx(paper.base_lr)
    assert cfg.optim_wrapper.optimizer.weight_decay == pytest.approx(paper.weight_decay)
    if paper.tau[0] is None:
        assert s.ema_start is None and s.ema_end is None  # no target network
    else:
        assert (s.ema_start, s.ema_end) == pytest.approx(paper.tau)
    assert s.warmup == paper.warmup


@pytest.mark.parametrize('path', sorted(PAPER))
def test_cosine_decay_to_the_last_epoch(path):
    """Every paper config decays its lr by a cosine that ends at the last epoch (MultiSiam Sec. 4.1, DenseSiam
    Sec. 5.1, Odin A.3), after the warm-up when there is one."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    schedulers = cfg.param_scheduler if isinstance(cfg.param_scheduler, list) else [cfg.param_scheduler]
    cosine = [s for s in schedulers if s.type == 'CosineAnnealingLR']
    assert len(cosine) == 1 and cosine[0].end == cfg.train_cfg.max_epochs
    assert cosine[0].T_max == cosine[0].end - cosine[0].begin
    warmup = [s for s in schedulers if s.type == 'LinearLR']
    assert cosine[0].begin == (warmup[0].end if warmup else 0)


def test_waymo_325_epochs_match_imagenet_200_epochs_in_iterations(schedules):
    """MultiSiam Sec. 4.1: "325 epochs on Waymo to maintain similar training iterations with training 200 epochs on
    ImageNet": with the dataset sizes of print_schedule (790k, 1.28M) and the batch of 1024, within 1 %."""
    waymo = schedules['configs/multisiam_waymo.py'].total_iters
    imagenet = schedules['configs/multisiam/multisiam_r50_8xb128-coslr-200e_in1k.py'].total_iters
    assert waymo == 250_900 and imagenet == 250_000
    assert abs(waymo / imagenet - 1) < 0.01


def test_unsupervised_segmentation_config_keeps_the_papers_optimiser():
    """The synthetic-streets config is not a paper setting (CPU scale: batch 16, 200 iterations, no ImageNet
    initialisation); what it keeps of DenseSiam Sec. 5.1: the pre-training base lr 0.05 x batch / 256, wd 1e-4, SGD
    momentum 0.9, a constant lr ("the constant learning schedule works better")."""
    s = print_schedule.read_schedule(osp.join(ROOT, 'configs/densesiam/densesiam-useg_r18_fpn_synthetic-streets.py'))
    cfg = Config.fromfile(s.config)
    assert (s.total_batch, s.epochs, s.total_iters, s.dataset) == (16, None, 200, None)
    assert s.base_lr == pytest.approx(0.05) and s.weight_decay == 1e-4 and cfg.optim_wrapper.optimizer.momentum == 0.9
    assert [p.type for p in cfg.param_scheduler] == ['ConstantLR'] and s.warmup == 'none'


def scaled_lr(cfg: Config, world_size: int) -> float:
    """The lr after mmengine's ``Runner.scale_lr`` with auto_scale_lr enabled, on ``world_size`` processes with the
    config's batch per process (the Runner's own method on a stand-in runner; nothing is built but the optimiser)."""
    wrapper = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr))
    runner = SimpleNamespace(_train_dataloader=cfg.train_dataloader, world_size=world_size, param_schedulers=None,
                             logger=MMLogger.get_instance('test_schedules'))
    Runner.scale_lr(runner, wrapper, dict(cfg.auto_scale_lr, enable=True))
    return wrapper.optimizer.param_groups[0]['lr']


SCALED_CONFIGS = {**{p: e.gpus for p, e in PAPER.items()},
                  'configs/densesiam/densesiam-useg_r18_fpn_synthetic-streets.py': 1,
                  # single-process CPU-scale configs: lr written for their batch of 16
                  'configs/demo/multisiam_synthetic_demo.py': 1,
                  **{f'configs/benchmarks/quality/{name}_r18_streets.py': 1 for name in (
                      'multisiam', 'densesiam', 'odin', 'byol_mmpretrain', 'densecl_mmpretrain')}}


@pytest.mark.parametrize('path', sorted(SCALED_CONFIGS))
def test_auto_scale_lr_keeps_lr_at_the_configs_own_batch(path):
    """auto_scale_lr.base_batch_size is the batch the lr is scaled for: enabling it on the config's own GPUs x batch
    leaves lr unchanged (no double scaling), and on twice the GPUs doubles it (linear scaling)."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    gpus = SCALED_CONFIGS[path]
    assert cfg.auto_scale_lr.enable is False
    assert scaled_lr(cfg, gpus) == pytest.approx(cfg.optim_wrapper.optimizer.lr)
    assert scaled_lr(cfg, 2 * gpus) == pytest.approx(2 * cfg.optim_wrapper.optimizer.lr)


def test_print_schedule_table_rows(capsys):
    table = print_schedule.main(['configs/multisiam_waymo.py', 'odin_r50_16xb256-lars-1000e_in1k'])
    assert capsys.readouterr().out.strip() == table
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith('| config | total batch |')
    assert lines[2] == ('| configs/multisiam_waymo.py | 1,024 | 8 x 128 | 325 | Waymo Open (790,000) | 772 | 250,900 | '
                        'LARS 4 (1,024) | 1 | 1e-05 | 0.996 -> 1 (cosine) | 10 epochs, linear from 0.0001 x lr |  |')
    assert '| 4,096 | 16 x 256 | 1,000 | ImageNet-1k (1,280,000) | 313 | 313,000 | LARS 3.2 (4,096) |' in lines[3]


def test_print_schedule_overrides_and_notes():
    s = print_schedule.read_schedule(osp.join(ROOT, 'configs/multisiam_waymo.py'), gpus=4, dataset_size=1000)
    assert (s.total_batch, s.iters_per_epoch, s.total_iters) == (512, 2, 650)  # ceil(ceil(1000 / 4) / 128) = 2
    assert s.notes == [] and s.lr_batch == 1024  # lr stays the config's; the batch it is for too
    odin = print_schedule.read_schedule(osp.join(ROOT, 'configs/odin/odin_r50_16xb256-lars-1000e_in1k.py'), gpus=8)
    assert odin.notes == ['file name says 16 x 256, config 8 x 256']


def test_print_schedule_cli_help_and_missing_config(capsys):
    """In-process (importing torch again in a subprocess costs half a minute on the 2-core machine): --help names
    every column and the dataset-size sources; a missing config is one line on stderr, exit status 2."""
    with pytest.raises(SystemExit) as exit_help:
        print_schedule.main(['--help'])
    assert exit_help.value.code == 0
    help_text = ' '.join(capsys.readouterr().out.split())
    for word in ('total batch', 'GPUs x batch per GPU', 'iterations per epoch', 'lr (and the batch it is scaled '
                 'for)', 'EMA τ', 'warm-up', '--gpus', '--dataset-size', 'MultiSiam Sec. 4.1'):
        assert word in help_text, word
    with pytest.raises(SystemExit) as exit_missing:
        print_schedule.run_cli(print_schedule.main, ['configs/multisiam_wamyo.py'])
    out = capsys.readouterr()
    assert exit_missing.value.code == 2 and out.out == ''
    assert out.err.strip().splitlines() == [
        "error: config 'configs/multisiam_wamyo.py' not found; did you mean configs/multisiam_waymo.py?"]

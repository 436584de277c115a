"""Time to the first new iteration when resuming at iteration 10 and at 1000: mmengine's replaying loop vs the
resumable loop (issue 16).

    python benchmarks/resume_bench.py [--positions 10 1000] [--repeats 2] [--batch 8] [--workers 2]

For each loop a tiny MultiSiam (ResNet-18 at a quarter of its width, 64x64 views) trains one iteration on 64
synthetic street scenes (96x64 JPEGs: LoadImageFromFile, IoUPairCrop, BYOL's photometric pipeline), and its
checkpoint is re-labelled as written at iteration P (meta and MessageHub ``iter`` = P, the sampler state at P
batches). A new Runner then resumes it with ``max_iters = P + 1``; the time is measured from ``runner.train()``
(data loader, workers, checkpoint load, and for mmengine's ``IterBasedTrainLoop`` + ``InfiniteSampler`` the replay
of P batches) to the end of the first new iteration. The weights are those of iteration 1 in every case: only the
resume path is timed, not training. Prints a markdown table (median over --repeats runs).
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Dict, List

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
from multisiam_mm.datasets import write_synthetic_dataset  # noqa: E402
from multisiam_mm.engine.runner import SAMPLER_STATE_KEY  # noqa: E402

LOOPS = {  # name: (loop type, sampler type)
    'mmengine IterBasedTrainLoop + InfiniteSampler (replay)': ('IterBasedTrainLoop', 'InfiniteSampler'),
    'ResumableIterBasedTrainLoop + ResumableInfiniteSampler': ('ResumableIterBasedTrainLoop',
                                                               'ResumableInfiniteSampler'),
}
PHOTOMETRIC = [
    dict(type='RandomApply', transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2,
                                              hue=0.1)], prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
]


class FirstIterationTimer(Hook):
    """Records ``time.perf_counter()`` at the end of the first iteration the run makes."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.done = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.done is None:
            self.done = time.perf_counter()


def runner_cfg(loop: str, sampler: str, data_root: str, work_dir: str, max_iters: int, args, name: str) -> dict:
    backbone = dict(type='ResNet', depth=18, stem_channels=16, base_channels=16, norm_cfg=dict(type='BN'))
    return dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['multisiam_mm'], allow_failed_imports=False),
        experiment_name=name,
        model=dict(
            type='MultiSiam',
            data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], to_rgb=True),
            backbone=backbone,
            neck=dict(type='MultiSiamNeck', in_channels=128, hid_channels=32, out_channels=16),
            head=dict(type='LatentPredictHead',
                      loss=dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0),
                      predictor=dict(type='NonLinearNeck', in_channels=16, hid_channels=32, out_channels=16,
                                     with_avg_pool=False)),
            cluster_head=dict(type='ClusterHead', in_channels=16, hid_channels=32, out_channels=16, num_clusters=3)),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=args.batch, num_workers=args.workers, persistent_workers=args.workers > 0,
            sampler=dict(type=sampler, shuffle=True), collate_fn=dict(type='default_collate'),
            dataset=dict(type='UnlabeledImageDataset', data_root=data_root, ann_file='train.txt', pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='IoUPairCrop', size=64, iou_thr=0.5, flip_prob=0.5),
                dict(type='PairPhotometric', view_pipelines=[PHOTOMETRIC, PHOTOMETRIC]),
                dict(type='PackPairInputs')])),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(type=loop, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1, max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=1000)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        log_level='WARNING',
    )


def relabel(ckpt: str, out: str, position: int, batch: int, dataset_size: int) -> None:
    """Copy ``ckpt`` as if written after iteration ``position`` (meta, MessageHub and sampler position)."""
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    state['meta']['iter'] = position
    info = state['message_hub']['runtime_info']
    info['iter'] = position
    if SAMPLER_STATE_KEY in info:
        info[SAMPLER_STATE_KEY] = dict(info[SAMPLER_STATE_KEY], epoch=0, position=position * batch,
                                       dataset_size=dataset_size)
    torch.save(state, out)


def time_resume(loop: str, sampler: str, data_root: str, ckpt: str, position: int, args, name: str) -> float:
    work = tempfile.mkdtemp(prefix='resume_bench_')
    cfg = dict(runner_cfg(loop, sampler, data_root, work, position + 1, args, name), resume=True, load_from=ckpt)
    cfg['default_hooks']['checkpoint']['interval'] = 10 ** 9  # time the resume, not a checkpoint write
    runner = Runner.from_cfg(Config(cfg))
    timer = FirstIterationTimer()
    runner.register_hook(timer)
    start = time.perf_counter()
    runner.train()
    assert runner.iter == position + 1
    return timer.done - start


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--positions', type=int, nargs='+', default=[10, 1000], help='iterations to resume at')
    parser.add_argument('--repeats', type=int, default=2, help='runs per cell (the table gives the median)')
    parser.add_argument('--batch', type=int, default=8, help='images per batch')
    parser.add_argument('--workers', type=int, default=2, help='data-loader workers')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the steps are tiny; more threads only contend on a shared CPU
    tmp = tempfile.mkdtemp(prefix='resume_bench_data_')
    data_root = osp.join(tmp, 'streets')
    num_images = 64
    write_synthetic_dataset(data_root, num_train=num_images, num_val=1, width=96, height=64, seed=0)
    times: Dict[str, Dict[int, List[float]]] = {}
    for k, (name, (loop, sampler)) in enumerate(LOOPS.items()):
        seed_work = osp.join(tmp, f'seed_{k}')
        Runner.from_cfg(Config(runner_cfg(loop, sampler, data_root, seed_work, 1, args, f'seed_{k}'))).train()
        times[name] = {}
        for p in args.positions:
            ckpt = osp.join(tmp, f'loop{k}_iter_{p}.pth')
            relabel(osp.join(seed_work, 'iter_1.pth'), ckpt, p, args.batch, num_images)
            times[name][p] = []
            for r in range(args.repeats):
                t = time_resume(loop, sampler, data_root, ckpt, p, args, f'loop{k}_{p}_{r}')
                times[name][p].append(t)
                print(f'  {name}: resumed at {p}: {t:.2f} s', file=sys.stderr, flush=True)
    print(f'\nTime to the first new iteration after a resume (s, median of {args.repeats}; batch {args.batch}, '
          f'{args.workers} workers, {os.cpu_count()} CPUs)\n')
    print('| loop | ' + ' | '.join(f'resume at {p}' for p in args.positions) + ' |')
    print('|---|' + '---:|' * len(args.positions))
    for name, row in times.items():
        print(f'| {name} | ' + ' | '.join(f'{statistics.median(row[p]):.2f}' for p in args.positions) + ' |')


if __name__ == '__main__':
    main()

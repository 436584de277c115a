"""GPU JPEG decoding (issue 18, item 4): what a data worker still does, and what the device does instead.

Two measurements on paper-resolution JPEGs (generated 1920x1280 street scenes by default, or --images):

  worker   pairs per second of ONE process (= one data worker) running the full MultiSiam pair pipeline of
           configs/_base_/datasets/pair_pipeline.py (decode, IoUPairCrop, BYOL's T / T', packing) against its
           device_decode variant (read the bytes, parse the header, draw boxes, flips and T / T' parameters, pack
           the bytes), interleaved in one run;
  device   pairs per second of DevicePairPreprocessor on --device at --batch pairs: nvJPEG batch decode (on a CPU:
           torchvision's libjpeg-turbo), the view cuts, T / T' and normalisation, synchronised, median of --repeats
           batches after a warm-up, with the device's peak memory.

Workers per GPU = --gpu-images-per-s / worker pairs per second (an input, not a measurement), as in
benchmarks/loader_bench.py.

    python benchmarks/device_decode_bench.py [--device cuda] [--batch 64] [--frames 16] [--repeats 10]
    python benchmarks/device_decode_bench.py --quick     # smoke test: CPU-sized, 2 frames of 480x320
"""
import argparse
import copy
import math
import os
import os.path as osp
import random
import sys
import tempfile
import time
import warnings
from typing import List

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from decode_bench import timed_interleaved, write_synthetic_frames  # noqa: E402

from multisiam_mm.datasets.image_listing import list_images  # noqa: E402

NAMES = ('CPU pipeline (decode, crop, T / T\')', 'device_decode worker (bytes, boxes, draws)')


def parse_args(argv: List[str] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', help='folder of real JPEG frames (default: synthetic street scenes)')
    p.add_argument('--frames', type=int, default=16, help='synthetic frames, or the first N of --images')
    p.add_argument('--width', type=int, default=1920, help='synthetic frame width')
    p.add_argument('--height', type=int, default=1280, help='synthetic frame height')
    p.add_argument('--size', type=int, default=224, help='view size')
    p.add_argument('--batch', type=int, default=64, help='pairs per device batch')
    p.add_argument('--repeats', type=int, default=10, help='interleaved worker passes and timed device batches')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', help='cuda or cpu')
    p.add_argument('--gpu-images-per-s', type=float, default=1000.0,
                   help='training step rate of one GPU, images (view pairs) per second (default: %(default)s)')
    p.add_argument('--quick', action='store_true', help='2 frames of 480x320, batch 4, 2 repetitions (a smoke test)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.width, args.height, args.batch, args.repeats, args.size = 2, 480, 320, 4, 2, 64
    return args


def pipelines(size: int):
    """(CPU pipeline, device_decode pipeline) of configs/_base_/datasets/pair_pipeline.py at view size ``size``."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/pair_pipeline.py'))
    built = []
    for name in ('pair_pipeline', 'device_pair_pipeline'):
        steps = copy.deepcopy(cfg[name])
        steps[1]['size'] = size
        built.append(Compose(steps))
    return built


def worker_pass(pipeline, paths: List[str]) -> None:
    for path in paths:
        if pipeline(dict(img_path=path)) is None:
            raise RuntimeError(f'{path}: the pipeline dropped it')


def device_rate(samples: List[dict], batch: int, device: torch.device, repeats: int) -> float:
    """Median pairs per second of DevicePairPreprocessor on ``device`` (batches of ``batch`` samples)."""
    from mmpretrain.registry import MODELS
    pre = MODELS.build(dict(type='DevicePairPreprocessor', mean=[123.675, 116.28, 103.53],
                            std=[58.395, 57.12, 57.375], to_rgb=True)).to(device)
    data = pseudo_collate([samples[i % len(samples)] for i in range(batch)])
    times = []
    for i in range(repeats + 1):  # the first batch warms up nvJPEG / the allocator
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = pre(copy.copy(data))
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    assert out['inputs'][0].shape[0] == batch
    return batch / float(np.median(times))


def main(argv: List[str] = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')  # mmcv's adjust_color ("Only use 'alpha'"), torchvision's decode deprecation
    init_default_scope('mmpretrain')
    import multisiam_mm  # noqa: F401  (registration)
    device = torch.device(args.device)
    np.random.seed(args.seed)
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.images:
            paths = list_images(args.images, extensions=('.jpg', '.jpeg'))[:args.frames]
            source = f'{len(paths)} JPEGs from {args.images}'
        else:
            paths = write_synthetic_frames(tmp, args.frames, args.width, args.height, 95, 0.0)
            source = f'{len(paths)} synthetic {args.width}x{args.height} street scenes, JPEG quality 95'
        cpu, dev = pipelines(args.size)
        seconds = timed_interleaved({NAMES[0]: lambda: worker_pass(cpu, paths),
                                     NAMES[1]: lambda: worker_pass(dev, paths)}, args.repeats)
        samples = [dev(dict(img_path=p)) for p in paths]
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        rate = device_rate(samples, args.batch, device, args.repeats)
        peak = f'{torch.cuda.max_memory_allocated() / 2 ** 30:.2f}' if device.type == 'cuda' else '—'
    load = os.getloadavg()
    where = torch.cuda.get_device_name(0) if device.type == 'cuda' else f'CPU ({os.cpu_count()} cores)'
    print(f'{source}; two {args.size}x{args.size} views with T / T\'; worker: one process, {args.repeats} '
          f'interleaved passes; device: {where}, batch {args.batch}; load {load[0]:.1f} / {load[1]:.1f} / '
          f'{load[2]:.1f}\n')
    print(f'| stage | pairs/s | ms/pair | workers per GPU at {args.gpu_images_per_s:g} images/s | peak GiB |')
    print('|---|---:|---:|---:|---:|')
    for name in NAMES:
        worker = len(paths) * args.repeats / seconds[name].sum()
        print(f'| {name} | {worker:.1f} | {1e3 / worker:.2f} | {math.ceil(args.gpu_images_per_s / worker)} | — |')
    print(f'| DevicePairPreprocessor on {device.type} (decode, cut, T / T\', normalise) | {rate:.1f} | '
          f'{1e3 / rate:.2f} | — | {peak} |')


if __name__ == '__main__':
    main()

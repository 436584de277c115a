"""View pairs per second per data worker on paper-resolution JPEGs (issue 18, item 3): mmpretrain's BYOL pipeline
on full frames against ours on full frames (with and without reduced DCT decoding) and on frames stored at the size
the pipeline's views allow (multisiam_mm.datasets.frame_shrink), interleaved in one run on one process.

Pipelines (two 224-px views per file, scale (0.08, 1), ratio (3/4, 4/3), bicubic):
  (a) mmpretrain: LoadImageFromFile + MultiView of two RandomResizedCrop (BYOL's crop);
  (b) ours, full frames: RobustLoadImage + IoUPairCrop(iou_thr);
  (c) ours, full frames, RobustLoadImage(reduced_decode=True);
  (d) ours, shrunk frames: (b) on the frames shrunk for (b)'s views (1920x1280 -> 1123x749, every view still a
      downscale, same box law in frame-relative coordinates: tests/test_frame_shrink.py);
  (e) ours, shrunk frames, reduced decoding.
One process is one mmengine data worker (OpenCV single-threaded). Workers per GPU = --gpu-images-per-s / pairs per
second of a worker (one training image is one view pair), an input of this script, not a measurement.

    python benchmarks/loader_bench.py [--images DIR] [--frames 16] [--repeats 20] [--gpu-images-per-s 1000]
    python benchmarks/loader_bench.py --quick      # smoke test: 2 frames, 2 repetitions
"""
import argparse
import math
import os
import os.path as osp
import sys
import tempfile
from collections import Counter
from functools import partial
from typing import Dict, List

import cv2
import numpy as np
from mmcv.transforms import Compose

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from decode_bench import build_pipelines, factor_shares, run_pass, timed_interleaved, write_synthetic_frames  # noqa

from multisiam_mm.datasets import frame_shrink  # noqa: E402
from multisiam_mm.datasets.image_listing import list_images  # noqa: E402
from multisiam_mm.datasets.transforms import IoUPairCrop, RobustLoadImage, decode_image  # noqa: E402

NAMES = ('(a) mmpretrain BYOL pipeline, full frames', '(b) ours, full frames',
         '(c) ours, full frames, reduced decode', '(d) ours, shrunk frames', '(e) ours, shrunk frames, reduced decode')


def parse_args(argv: List[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', help='folder of real JPEG frames (default: synthetic 1920x1280 street scenes)')
    parser.add_argument('--frames', type=int, default=16, help='synthetic frames, or the first N of --images')
    parser.add_argument('--repeats', type=int, default=20, help='interleaved repetitions')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--iou-thr', type=float, default=0.5)
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality of synthetic and shrunk frames')
    parser.add_argument('--gpu-images-per-s', type=float, default=1000.0,
                        help='training step rate of one GPU, images (view pairs) per second (default: %(default)s)')
    parser.add_argument('--quick', action='store_true', help='2 frames, 2 repetitions (a smoke test)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeats = 2, 2
    return args


def shrink_frames(paths: List[str], folder: str, views, quality: int) -> List[str]:
    """Each frame stored at the size ``views`` allow for it (as tools/prepare_frames.py does)."""
    out = []
    for i, path in enumerate(paths):
        with open(path, 'rb') as f:
            img = decode_image(f.read())
        plan = frame_shrink.shrink_plan(img.shape[:2], views)
        out.append(osp.join(folder, f'shrunk_{i:06d}.jpg'))
        cv2.imwrite(out[-1], frame_shrink.shrink_image(img, plan.stored), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return out


def main(argv: List[str] = None) -> None:
    args = parse_args(argv)
    cv2.setNumThreads(0)
    np.random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.images:
            paths = list_images(args.images, extensions=('.jpg', '.jpeg'))[:args.frames]
            source = f'{len(paths)} JPEGs from {args.images}'
        else:
            paths = write_synthetic_frames(tmp, args.frames, 1920, 1280, args.quality, 0.0)
            source = f'{len(paths)} synthetic 1920x1280 street scenes, JPEG quality {args.quality}'
        full = build_pipelines(args.size, args.iou_thr)
        crop = IoUPairCrop(args.size, iou_thr=args.iou_thr, interpolation='bicubic')
        views = frame_shrink.pipeline_views([dict(type='IoUPairCrop', size=args.size, scale=crop.scale,
                                                  ratio=crop.ratio)])
        shrunk = shrink_frames(paths, tmp, views, args.quality)
        pipelines = dict(zip(NAMES, list(full.values()) + [
            Compose([RobustLoadImage(), crop]), Compose([RobustLoadImage(reduced_decode=True), crop])]))
        files = dict(zip(NAMES, [paths] * 3 + [shrunk] * 2))
        factors: Dict[str, Counter] = {name: Counter() for name in NAMES}
        steps = {name: partial(run_pass, pipelines[name], files[name], args.size, factors[name]) for name in NAMES}
        seconds = timed_interleaved(steps, args.repeats)
        sizes = Counter(cv2.imread(p).shape[1::-1] for p in shrunk[:4])
    load = os.getloadavg()
    print(f'{source}; shrunk frames {", ".join(f"{w}x{h}" for w, h in sizes)}; two {args.size}x{args.size} views, '
          f'iou_thr={args.iou_thr}; one process (= one data worker); {args.repeats} interleaved repetitions; load '
          f'{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores\n')
    print(f'| pipeline | pairs/s per worker | ms/pair | × (a) | workers per GPU at {args.gpu_images_per_s:g} '
          'images/s | decode scale |')
    print('|---|---:|---:|---:|---:|---|')
    base = seconds[NAMES[0]]
    for name in NAMES:
        rate = len(paths) * args.repeats / seconds[name].sum()
        print(f'| {name} | {rate:.1f} | {1e3 / rate:.2f} | {np.median(base / seconds[name]):.2f}x | '
              f'{math.ceil(args.gpu_images_per_s / rate)} | {factor_shares(factors[name])} |')


if __name__ == '__main__':
    main()

"""Throughput and acceptance statistics of IoUPairCrop's pair sampling on one CPU core; prints a markdown table.

Rows:
  * geometry, 1 pair per call -- the data-pipeline path (``IoUPairCrop.sample_boxes``, global np.random state);
  * geometry, batched         -- ``IoUPairCrop.sample_boxes(img_hw, --batch)``: the vectorised sampler amortised;
  * full transform            -- geometry + crop + two resizes of a uint8 frame, for scale.
Acceptance is the fraction of independent candidate pairs with IoU > iou_thr; candidates/pair counts every candidate
drawn (a round draws ``candidates_per_round`` per missing pair) per pair returned; the sequential rejection sampler
would draw 1 / acceptance.

    python benchmarks/pair_crop_bench.py --height 1280 --width 1920 --iou-thr 0.5
"""
import argparse
import math
import os
import time
from typing import Callable

import numpy as np

from multisiam_mm.datasets.transforms import IoUPairCrop, PairCropStats


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--height', type=int, default=1280, help='original frame height')
    parser.add_argument('--width', type=int, default=1920, help='original frame width')
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU threshold')
    parser.add_argument('--scale', type=float, nargs=2, default=(0.08, 1.0), help='RandomResizedCrop area range')
    parser.add_argument('--candidates-per-round', type=int, default=None,
                        help='candidates per missing pair and round (default: IoUPairCrop default)')
    parser.add_argument('--batch', type=int, default=4096, help='pairs per call in the batched row')
    parser.add_argument('--seconds', type=float, default=3.0, help='time budget per row')
    parser.add_argument('--core', type=int, default=0, help='CPU core to pin to (-1: no pinning)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def pairs_per_second(step: Callable[[], int], seconds: float) -> float:
    """Run ``step`` (returns the number of pairs it made) repeatedly for ``seconds``."""
    pairs = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        pairs += step()
    return pairs / elapsed


def main() -> None:
    args = parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    np.random.seed(args.seed)
    img_hw = (args.height, args.width)
    kwargs = dict(scale=tuple(args.scale), iou_thr=args.iou_thr)
    if args.candidates_per_round is not None:
        kwargs['candidates_per_round'] = args.candidates_per_round
    single, batched, full = IoUPairCrop(**kwargs), IoUPairCrop(**kwargs), IoUPairCrop(**kwargs)
    frame = np.random.RandomState(args.seed).randint(0, 256, img_hw + (3,), dtype=np.uint8)
    rows = [
        ('geometry, 1 pair per call', single.stats,
         pairs_per_second(lambda: len(single.sample_boxes(img_hw)), args.seconds)),
        (f'geometry, batched ({args.batch} pairs per call)', batched.stats,
         pairs_per_second(lambda: len(batched.sample_boxes(img_hw, args.batch)), args.seconds)),
        ('full transform (crop + 2 bicubic resizes to 224)', full.stats,
         pairs_per_second(lambda: len(full(dict(img=frame))['img']) // 2, args.seconds)),
    ]

    core = f'core {args.core}' if args.core >= 0 else 'unpinned'
    print(f'IoUPairCrop on a {args.width}x{args.height} frame, iou_thr={args.iou_thr}, scale={tuple(args.scale)}, '
          f'candidates_per_round={single.candidates_per_round}, max_rounds={single.max_rounds}, one process '
          f'({core})\n')
    print('| path | pairs/s | acceptance (IoU > thr) | candidates / pair | fallbacks |')
    print('|---|---:|---:|---:|---:|')
    total = PairCropStats()
    for name, stats, rate in rows:
        p = stats.acceptance_rate
        ci = 1.96 * math.sqrt(p * (1 - p) / stats.candidates)
        made = stats.accepted + stats.fallbacks
        print(f'| {name} | {rate:,.0f} | {p:.4f} ± {ci:.4f} | {stats.candidates / made:.2f} | {stats.fallbacks} |')
        total += stats
    print(f'\nAll rows: acceptance {total.acceptance_rate:.4f} over {total.candidates:,} independent candidate pairs; '
          f'sequential rejection would draw 1 / acceptance = {1 / total.acceptance_rate:.2f} per accepted pair.')


if __name__ == '__main__':
    main()

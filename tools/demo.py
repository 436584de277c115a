"""The main job of the README: generate the synthetic street scenes if missing, pretrain on them, report.

    python tools/demo.py [--config CFG] [--work-dir DIR] [--data-root DIR] [--max-iters N] [--resume]

Prints mmengine's progress lines (iteration, ETA, losses, k-means statistics) while training and ends with the
loss at the start and at the end and the path of the final checkpoint.
"""
import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

from mmengine.config import Config
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
import multisiam_mm  # noqa: E402,F401
from multisiam_mm.datasets import write_synthetic_dataset  # noqa: E402
from multisiam_mm.utils.scalars import loss_curve  # noqa: E402

DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'multisiam_synthetic_demo.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pretrain MultiSiam on the synthetic street scenes (CPU demo).')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='training config (default: the demo config)')
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'), help='logs and checkpoints')
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data', 'synthetic_streets'),
                        help='where the synthetic scenes are (generated there if missing)')
    parser.add_argument('--num-images', type=int, default=512, help='synthetic training images to generate')
    parser.add_argument('--max-iters', type=int, default=None, help='override the number of iterations')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in --work-dir')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    t0 = time.time()
    print(f'[demo] synthetic street scenes in {args.data_root} ({args.num_images} training images)', flush=True)
    write_synthetic_dataset(args.data_root, num_train=args.num_images, num_val=64, seed=0, progress=True)

    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.train_dataloader.dataset.data_root = args.data_root
    if args.max_iters is not None:
        cfg.train_cfg.max_iters = args.max_iters
    cfg.resume = args.resume
    runner = Runner.from_cfg(cfg)
    runner.train()

    curve = loss_curve(runner.log_dir)
    ckpt_file = osp.join(cfg.work_dir, 'last_checkpoint')
    ckpt = open(ckpt_file).read().strip() if osp.exists(ckpt_file) else '(no checkpoint written)'
    print(f'\n[demo] done in {time.time() - t0:.0f} s')
    if curve:
        (i0, l0), (i1, l1) = curve[0], curve[-1]
        print(f'[demo] loss at start (iter {i0}): {l0:.4f}')
        print(f'[demo] loss at end   (iter {i1}): {l1:.4f}')
    print(f'[demo] checkpoint: {ckpt}')
    return ckpt


if __name__ == '__main__':
    main()

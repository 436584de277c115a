"""The main job of the README: pretrain MultiSiam on CPU for a few minutes and report.

    python tools/demo.py [--config CFG] [--work-dir DIR] [--data-root DIR | --images DIR_OR_LIST] [--max-iters N]
                         [--resume]

Without --images it trains on the synthetic street scenes of --data-root (default data/synthetic_streets), generating
them there if missing; --data-root must be empty, missing or a folder the generator made: a folder holding anything
else (your own images) is refused, nothing is written into it. With --images it trains on your images instead: every
image under a folder (recursive) or the paths of a list file; nothing is generated and nothing is written there.

Prints mmengine's progress lines (iteration, ETA, losses, k-means statistics) while training and ends with the
loss at the start and at the end and the path of the final checkpoint. Unreadable images are skipped and listed in
<work_dir>/bad_files.txt.
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
from multisiam_mm.datasets.image_listing import use_images  # noqa: E402
from multisiam_mm.datasets.transforms.robust_loading import record_bad_files  # noqa: E402
from multisiam_mm.engine.hooks.bad_files_hook import add_bad_files_hook  # noqa: E402
from multisiam_mm.utils.cli_errors import UserError, run_cli  # noqa: E402
from multisiam_mm.utils.scalars import loss_curve  # noqa: E402

DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'multisiam_synthetic_demo.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pretrain MultiSiam for a few CPU minutes: on the synthetic street '
                                                 'scenes, or on your own images (--images).')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='training config (default: the demo config)')
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'), help='logs and checkpoints')
    data = parser.add_mutually_exclusive_group()
    data.add_argument('--data-root', default=osp.join(ROOT, 'data', 'synthetic_streets'),
                      help='folder of the synthetic scenes, generated there if missing (an empty folder or one the '
                           'generator made; any other folder is refused)')
    data.add_argument('--images', metavar='DIR_OR_LIST',
                      help='train on your images instead: a folder (searched recursively) or a list file, one path '
                           'per line; nothing is written there')
    parser.add_argument('--num-images', type=int, default=512, help='synthetic training images to generate')
    parser.add_argument('--max-iters', type=int, default=None, help='override the number of iterations')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in --work-dir')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    t0 = time.time()
    cfg = Config.fromfile(args.config)
    if args.images is not None:
        try:
            use_images(cfg, args.images)
        except ValueError as err:
            raise UserError(str(err)) from None
        print(f'[demo] training on your images: {args.images}', flush=True)
    else:
        print(f'[demo] synthetic street scenes in {args.data_root} ({args.num_images} training images)', flush=True)
        try:
            write_synthetic_dataset(args.data_root, num_train=args.num_images, num_val=64, seed=0, progress=True)
        except FileExistsError as err:
            raise UserError(f'--data-root: {err}; to train on the images there: tools/demo.py --images '
                            f'{args.data_root}') from None
        cfg.train_dataloader.dataset.data_root = args.data_root
    cfg.work_dir = args.work_dir
    if args.max_iters is not None:
        cfg.train_cfg.max_iters = args.max_iters
    cfg.resume = args.resume
    add_bad_files_hook(cfg)
    with record_bad_files(cfg.work_dir):  # before the Runner: the data workers start with the train loop
        runner = Runner.from_cfg(cfg)
        runner.train()

    logged = osp.isfile(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))  # not before the first log interval
    curve = loss_curve(runner.log_dir) if logged else []
    ckpt_file = osp.join(cfg.work_dir, 'last_checkpoint')
    ckpt = open(ckpt_file).read().strip() if osp.exists(ckpt_file) else '(no checkpoint written)'
    print(f'\n[demo] done in {time.time() - t0:.0f} s')
    if curve:
        (i0, l0), (i1, l1) = curve[0], curve[-1]
        print(f'[demo] loss at start (iter {i0}): {l0:.4f}')
        print(f'[demo] loss at end   (iter {i1}): {l1:.4f}')
    else:
        print(f'[demo] no loss logged yet (fewer iterations than the log interval, '
              f'{cfg.default_hooks.logger.interval})')
    print(f'[demo] checkpoint: {ckpt}')
    return ckpt


if __name__ == '__main__':
    run_cli(main)

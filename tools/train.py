"""Train a multisiam_mm (or any mmpretrain) self-supervised model with mmengine's Runner.

Examples:
  python tools/train.py configs/multisiam_waymo.py --work-dir work_dirs/ms
  python tools/train.py CONFIG --resume                 # resume from the latest checkpoint in the work dir
  python tools/train.py CONFIG --resume PATH.pth        # resume from a given checkpoint
  torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
  srun --ntasks 2 python -u tools/train.py CONFIG --launcher slurm

Without CUDA, --launcher pytorch/slurm run on CPU: gloo process group, DDP without device ids
(multisiam_mm/utils/dist_launch.py, docs/distributed.md).

CONFIG is a path or the file name of a config under configs/ (e.g. multisiam_synthetic_demo). A config that does not
exist, a missing list file or image folder, or a missing --resume checkpoint stops before the Runner is built, with
one line naming the problem and the fix (exit status 2).

--images DIR_OR_LIST trains on your own images instead of the config's data: every image under a folder (recursive,
any case of .jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff, other files ignored) or the paths of a list file, one per line
(relative ones from the list file's folder). Nothing is written there. Unreadable images are skipped and listed in
<work_dir>/bad_files.txt (docs/own_data.md).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.dist import get_dist_info
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
import multisiam_mm  # noqa: E402,F401  registers the components and the checkpoint safe-globals
from multisiam_mm.datasets.frame_shrink import check_config_frames  # noqa: E402
from multisiam_mm.datasets.image_listing import use_images  # noqa: E402
from multisiam_mm.datasets.transforms.robust_loading import record_bad_files  # noqa: E402
from multisiam_mm.engine.hooks.bad_files_hook import add_bad_files_hook  # noqa: E402
from multisiam_mm.utils.cli_errors import UserError, check_data_sources, check_file, resolve_config, run_cli  # noqa: E402
from multisiam_mm.utils.dist_launch import prepare_cpu_distributed  # noqa: E402

CONFIG_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')  # also under multisiam_mm/.mim


def parse_args(argv: list = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a self-supervised model (mmengine Runner).')
    parser.add_argument('config', help='training config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or with no value from the latest one in work-dir')
    parser.add_argument('--images', metavar='DIR_OR_LIST',
                        help='train on these images: a folder (searched recursively) or a list file, one path per '
                             'line; replaces the data of train_dataloader.dataset')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument('--no-pin-memory', action='store_true', help='disable pin_memory in the dataloaders')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value (e.g. train_cfg.max_iters=100)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch = torchrun, slurm = srun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Fold the command-line arguments into the config."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.images is not None:
        try:
            use_images(cfg, args.images)
        except ValueError as err:
            raise UserError(str(err)) from None
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_pin_memory:
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(key) is not None:
                cfg[key]['pin_memory'] = False
    return cfg


def main(argv: list = None) -> None:
    """Parse the arguments, build the Runner (on CPU, distributed over gloo) and train."""
    args = parse_args(argv)
    args.config = resolve_config(args.config, CONFIG_ROOT)
    cfg = merge_args(Config.fromfile(args.config), args)
    check_data_sources(cfg)
    shrink_error, shrink_notes = check_config_frames(cfg)  # frames shrunk for another config (frame_shrink.json)
    if shrink_error:
        raise UserError(shrink_error)
    for note in shrink_notes:
        print(f'note: {note}', flush=True)
    if cfg.get('resume') and cfg.get('load_from'):
        check_file(cfg.load_from, 'checkpoint to resume from', 'give a .pth of the work dir, or --resume alone for '
                   'its latest checkpoint')
    if args.launcher in ('pytorch', 'slurm') and get_device() == 'cpu':
        prepare_cpu_distributed(cfg)  # mmengine's init_dist and DDP wrapping assume an accelerator
    add_bad_files_hook(cfg)
    with record_bad_files(cfg.work_dir):  # before the Runner: the data workers start with the train loop
        runner = Runner.from_cfg(cfg)
        if args.launcher != 'none':
            rank, world_size = get_dist_info()
            print(f'multisiam_mm train: rank {rank} of {world_size} ({get_device()}), '
                  f'local rank {os.environ.get("LOCAL_RANK")}', flush=True)
        runner.train()


if __name__ == '__main__':
    run_cli(main)

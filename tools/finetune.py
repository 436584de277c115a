"""Pretraining checkpoint -> fine-tuning run in one command: extract the backbone, then train an mmseg / mmdet config.

Examples:
  python tools/finetune.py work_dirs/multisiam fcn_r50_pretrained_40k_cityscapes-512x1024 --launcher pytorch --gpus 4
  python tools/finetune.py CKPT configs/benchmarks/mmdet/mask-rcnn_r50_fpn_pretrained_24k_cityscapes.py \
      --network target --launcher slurm --partition gpu --gpus 8
  python tools/finetune.py CKPT fcn_r50_pretrained_90k_cityscapes-769x769 --use-mim --launcher pytorch --gpus 8
  python tools/finetune.py CKPT CONFIG --cfg-options train_cfg.max_iters=1000 --dry-run   # print, do not train

Steps: (1) the backbone of ``--network`` is written to ``WORK_DIR/backbone_<network>.pth`` (mmpretrain layout);
(2) the config gets ``backbone_checkpoint`` = that file, ``StrictBackboneLoadHook`` and ``custom_imports`` of
multisiam_mm (added where missing), ``--cfg-options`` and the work dir; (3) with ``--launcher none`` the mmengine
Runner trains in this process, otherwise the final config is written to ``WORK_DIR/<config name>.py`` and handed to
tools/dist_train.sh (pytorch), tools/slurm_train.sh (slurm) or ``mim train mmseg|mmdet`` (``--use-mim``); the command
is printed before it runs.
"""
import argparse
import os
import os.path as osp
import shlex
import subprocess
import sys
from typing import Dict, List, Tuple

from mmengine.config import Config, DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing
from multisiam_mm.engine.hooks.strict_backbone_load import CONFIG_KEY  # noqa: E402
from multisiam_mm.utils.backbone_export import NETWORKS, extract_backbone, save_backbone, summary  # noqa: E402
from multisiam_mm.utils.cli_errors import resolve_config, run_cli  # noqa: E402

BENCHMARK_ROOT = osp.join(ROOT, 'configs', 'benchmarks')  # CONFIG may be a file name of a config under it


def parse_args(argv: list = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Extract a pretrained backbone and fine-tune an mmseg/mmdet config.')
    parser.add_argument('checkpoint', help='pretraining checkpoint, or its work dir (uses last_checkpoint)')
    parser.add_argument('config', help='benchmark config path, or a name under configs/benchmarks/{mmseg,mmdet}')
    parser.add_argument('--network', choices=NETWORKS, default='online', help='which backbone to transfer')
    parser.add_argument('--work-dir', help='fine-tuning work dir (default: work_dirs/finetune/<config name>)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: train in this process; pytorch: tools/dist_train.sh; slurm: tools/slurm_train.sh')
    parser.add_argument('--gpus', type=int, default=8, help='GPUs (processes) for pytorch / slurm launchers')
    parser.add_argument('--partition', help='slurm partition (--launcher slurm)')
    parser.add_argument('--job-name', default='finetune', help='slurm job name')
    parser.add_argument('--use-mim', action='store_true', help='launch with `mim train mmseg|mmdet` instead')
    parser.add_argument('--dry-run', action='store_true', help='extract and print the command, do not train')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value (e.g. train_cfg.max_iters=1000)')
    args = parser.parse_args(argv)
    if args.launcher == 'slurm' and not args.partition:
        parser.error('--launcher slurm needs --partition')
    return args


def prepare_config(cfg: Config, backbone_path: str, work_dir: str, launcher: str, options: Dict = None) -> Config:
    """The fine-tuning config: options merged, the backbone checkpoint set, strict loading and the plugin ensured."""
    if options:
        cfg.merge_from_dict(options)
    cfg[CONFIG_KEY] = backbone_path
    hooks = list(cfg.get('custom_hooks', []))
    if not any(h.get('type') == 'StrictBackboneLoadHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='StrictBackboneLoadHook')]
    imports = cfg.get('custom_imports', dict(imports=[], allow_failed_imports=False))
    if 'multisiam_mm' not in imports['imports']:
        cfg.custom_imports = dict(imports, imports=list(imports['imports']) + ['multisiam_mm'])
    cfg.work_dir = work_dir
    cfg.launcher = launcher
    return cfg


def launch_command(args: argparse.Namespace, cfg_path: str, work_dir: str, scope: str) -> Tuple[List[str], Dict]:
    """The command (and extra environment) that trains ``cfg_path`` with an external launcher."""
    if args.use_mim:
        cmd = ['mim', 'train', scope, cfg_path, '--work-dir', work_dir, '--launcher', args.launcher]
        if args.launcher != 'none':  # mim trains on one device without a launcher
            cmd += ['--gpus', str(args.gpus)]
        if args.launcher == 'slurm':  # mim 0.3.9 under click 8.5 crashes on an unset --srun-args
            cmd += ['--partition', args.partition, '--gpus-per-node', str(min(args.gpus, 8)), '--srun-args=']
        return cmd, {}
    if args.launcher == 'pytorch':
        return ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), cfg_path, str(args.gpus), '--work-dir', work_dir], {}
    return (['bash', osp.join(ROOT, 'tools', 'slurm_train.sh'), args.partition, args.job_name, cfg_path, work_dir],
            {'GPUS': str(args.gpus), 'GPUS_PER_NODE': str(min(args.gpus, 8))})


def main(argv: list = None) -> None:
    args = parse_args(argv)
    config = resolve_config(args.config, BENCHMARK_ROOT, ROOT)
    name = osp.splitext(osp.basename(config))[0]
    work_dir = osp.abspath(args.work_dir or osp.join('work_dirs', 'finetune', name))

    backbone_path = osp.join(work_dir, f'backbone_{args.network}.pth')
    exported = extract_backbone(args.checkpoint, args.network)
    save_backbone(exported, backbone_path)
    print(summary(exported, backbone_path))

    cfg = prepare_config(Config.fromfile(config), backbone_path, work_dir, args.launcher, args.cfg_options)
    if args.launcher == 'none' and not args.use_mim:
        print(f'training in-process: mmengine Runner, config {config}, work dir {work_dir}')
        if not args.dry_run:
            from mmengine.runner import Runner

            Runner.from_cfg(cfg).train()
        return
    cfg_path = osp.join(work_dir, f'{name}.py')
    cfg.dump(cfg_path)
    cmd, env = launch_command(args, cfg_path, work_dir, cfg.get('default_scope', 'mmengine'))
    print(' '.join([*(f'{k}={v}' for k, v in env.items()), shlex.join(cmd)]))
    if not args.dry_run:
        subprocess.run(cmd, check=True, env={**os.environ, **env})


if __name__ == '__main__':
    run_cli(main)

"""The arguments that tests/test_documented_commands.py appends to a documented command to make it cheap.

Imported by the sandbox's stand-in ``python`` and ``mim`` on every call, so it imports nothing heavy at the top.
argparse and mmengine's ``--cfg-options`` keep the last value given, so an appended argument overrides the
documented one and the command otherwise runs as written. A torchrun launch (tools/dist_train.sh) keeps its path but
starts at most 2 processes (the cores here) instead of the documented number.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LOADER_SHORT = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False']


def train_options(config: Optional[str]) -> List[str]:
    """``--cfg-options`` that make a pretraining config train two iterations, or one epoch of four images (two
    iterations of batch 2, or one on each of 2 torchrun processes, which ``drop_last`` would otherwise leave
    empty), and validate on one batch if it has a validation loop, all without worker processes."""
    if not config or not osp.isfile(config):
        return []
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    by_epoch = 'Iter' not in str(cfg.get('train_cfg', {}).get('type', ''))
    options = ['train_cfg.max_epochs=1' if by_epoch else 'train_cfg.max_iters=2', *LOADER_SHORT]
    if by_epoch and _plain_dataset(cfg.get('train_dataloader')):
        options.append('train_dataloader.dataset.indices=4')
    val = cfg.get('val_dataloader')
    if _plain_dataset(val):
        options += [f'val_dataloader.dataset.indices={val.get("batch_size", 1)}', 'val_dataloader.num_workers=0',
                    'val_dataloader.persistent_workers=False']
    return ['--cfg-options', *options]


def _plain_dataset(loader: Optional[dict]) -> bool:
    """A dataloader config whose dataset is one mmengine BaseDataset (not a wrapper of others): it takes ``indices``."""
    dataset = (loader or {}).get('dataset') or {}
    return bool(dataset) and 'dataset' not in dataset and 'datasets' not in dataset


def torchrun_processes(args: List[str], cap: int = 2) -> List[str]:
    """torchrun arguments with ``--nproc_per_node`` / ``--nproc-per-node`` (``=N`` or ``N``) capped at ``cap`` (the
    CPU cores here): the same launch path with fewer processes. Non-numeric values (gpu, auto) are left as they are."""
    out = list(args)
    for i, arg in enumerate(out):
        name, eq, value = arg.partition('=')
        if name not in ('--nproc_per_node', '--nproc-per-node'):
            continue
        if not eq and i + 1 < len(out):
            value = out[i + 1]
        if value.isdigit() and int(value) > cap:
            if eq:
                out[i] = f'{name}={cap}'
            else:
                out[i + 1] = str(cap)
    return out


FINETUNE_SHORT = ['--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2', *LOADER_SHORT,
                  *(f'{split}_dataloader.{key}' for split in ('val', 'test')
                    for key in ('num_workers=0', 'persistent_workers=False'))]

# script file name -> (its arguments, the index of the script among them) -> arguments to append
SHORTENERS: Dict[str, Callable[[List[str], int], List[str]]] = {
    'train.py': lambda args, i: train_options(args[i + 1] if i + 1 < len(args) else None),
    'demo.py': lambda args, i: ['--max-iters', '2'],
    'probe_segmentation.py': lambda args, i: ['--iters', '2', '--batch-size', '2', '--workers', '0'],
    'eval_object_discovery.py': lambda args, i: ['--size', '64', '--ks', '2', '--max-images', '2'],
    'finetune.py': lambda args, i: FINETUNE_SHORT,
    'list_memory.py': lambda args, i: ['--lines', '2000'],
    'decode_bench.py': lambda args, i: ['--frames', '2', '--repeats', '1', '--width', '640', '--height', '426'],
    'loader_bench.py': lambda args, i: ['--quick'],
    'device_decode_bench.py': lambda args, i: ['--quick'],
    'extract_bench.py': lambda args, i: ['--frames', '2', '--repeats', '1'],
    'step_time.py': lambda args, i: ['--depth', '18', '--batch', '2', '--size', '64', '--span-size', '128', '--steps',
                                     '1', '--warmup', '0'],
    'kmeans_bench.py': lambda args, i: ['--batch', '8', '--dim', '16', '--repeats', '1'],
    'pair_crop_bench.py': lambda args, i: ['--seconds', '0.2', '--batch', '256'],
    'resume_bench.py': lambda args, i: ['--positions', '2', '4', '--repeats', '1', '--batch', '2', '--workers', '0'],
    # one arm through all four stages (pretrain 2 iterations, linear 3, fine-tune 2, ABO on 2 images), one seed
    'run.py': lambda args, i: (['--arms', 'multisiam', '--seeds', '0', '--budget', '0.01', '--workers', '0']
                               if args[i].endswith(osp.join('quality', 'run.py')) else []),
}


def shortened(kind: str, args: List[str]) -> List[str]:
    """``args`` of ``python`` (kind 'python') or ``mim`` with the shortening arguments of what they run appended."""
    if kind == 'mim':
        if len(args) >= 3 and args[0] == 'train':
            config = args[2] if osp.isfile(args[2]) else osp.join(ROOT, args[2])
            return [*args, *train_options(config)]
        return args
    if args[:2] == ['-m', 'torch.distributed.run']:
        args = torchrun_processes(args)
    for i, arg in enumerate(args):
        if arg == '-c' or (arg == '-m' and args[i + 1:i + 2] != ['torch.distributed.run']):
            return args
        if arg.endswith('.py'):
            extra = SHORTENERS.get(osp.basename(arg))
            return [*args, *(extra(args, i) if extra else [])]
    return args

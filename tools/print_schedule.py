"""Print the optimisation schedule of training configs, one markdown table row per config.

For each CONFIG: the total batch (GPUs x batch per GPU x gradient accumulation), the epochs, the iterations per
epoch and in total on the paper's dataset size (DATASET_SIZES below, with the section each size comes from), the
learning rate with the total batch it is scaled for (and base lr = lr x 256 / that batch), the weight decay, the
EMA τ at the start and the end of training, and the warm-up.

  python tools/print_schedule.py configs/multisiam_waymo.py configs/densesiam/*.py configs/odin/*.py

The GPU count is not in a config; it is taken from, in this order: --gpus; auto_scale_lr.base_batch_size / batch per
GPU (the batch the config's lr is scaled for, as mmengine's auto_scale_lr reads it); else 1. A file name with
mmpretrain's "NxbM" (N GPUs x M per GPU) that disagrees with the config is flagged in the notes column.
Iterations use the dataset size of the config's data_root (--dataset-size overrides it): per process
ceil(N / GPUs) samples (mmengine's samplers pad), then per-GPU batches, floored with drop_last; an optimiser step
is accumulative_counts iterations.
"""
import argparse
import math
import os.path as osp
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
from multisiam_mm.utils.cli_errors import UserError, resolve_config, run_cli  # noqa: E402

CONFIG_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')

# The training-set sizes the papers give, keyed by the data_root prefix of the configs.
DATASET_SIZES: Dict[str, Tuple[str, int, str]] = {
    'data/waymo': ('Waymo Open', 790_000, 'MultiSiam Sec. 4.1: "around 790 thousand training images"'),
    'data/soda10m': ('SODA5M', 5_000_000, 'MultiSiam Sec. 4.2: "a 5-million subset of SODA10M (split 0, 2, 4, 6, 8)"'),
    'data/imagenet': ('ImageNet-1k', 1_280_000, 'DenseSiam Sec. 5.1: "1.28 million images"; MultiSiam Sec. 4.2: '
                                                 '"0.79M vs 1.28M"; Odin Sec. 3.1 pretrains on it'),
    'data/coco_curated': ('COCO curated', 49_629, 'DenseSiam Sec. 5.1: "49,629 images" (unsupervised segmentation)'),
    'data/coco': ('COCO train2017', 118_000, 'DenseSiam Sec. 5.1: "118K" images (its ablations)'),
}

COLUMNS = ('config', 'total batch', 'GPUs x batch (x accum)', 'epochs', 'dataset (images)', 'iters / epoch',
           'total iters', 'lr (scaled for batch)', 'base lr', 'wd', 'EMA τ start -> end', 'warm-up', 'notes')


@dataclass
class Schedule:
    """The schedule of one config; ``None`` where the config has no such thing (no epochs, no EMA, ...)."""
    config: str
    gpus: int
    batch_per_gpu: int
    accumulation: int
    epochs: Optional[int]
    max_iters: Optional[int]
    dataset: Optional[str]
    dataset_size: Optional[int]
    iters_per_epoch: Optional[int]
    total_iters: Optional[int]
    optimizer: str
    lr: float
    lr_batch: Optional[int]
    weight_decay: float
    ema_start: Optional[float]
    ema_end: Optional[float]
    ema: str
    warmup: str
    notes: List[str] = field(default_factory=list)

    @property
    def total_batch(self) -> int:
        """Images per optimiser step: GPUs x batch per GPU x accumulation."""
        return self.gpus * self.batch_per_gpu * self.accumulation

    @property
    def base_lr(self) -> Optional[float]:
        """lr x 256 / the batch lr is scaled for (the papers' lr_base)."""
        return self.lr * 256 / self.lr_batch if self.lr_batch else None


def dataset_of(data_root: str) -> Tuple[Optional[str], Optional[int]]:
    """(name, paper size) of the dataset under ``data_root``: the longest matching DATASET_SIZES prefix."""
    matches = [k for k in DATASET_SIZES if data_root.rstrip('/') == k or data_root.startswith(k + '/')]
    if not matches:
        return None, None
    name, size, _ = DATASET_SIZES[max(matches, key=len)]
    return name, size


def ema_of(model: dict) -> Tuple[Optional[float], Optional[float], str]:
    """(τ at the start, τ at the end, description) of the model's target network, in the papers' τ convention
    (weight of the old target parameters; mmpretrain's CosineEMA momentum is 1 - τ)."""
    kind = model.get('type')
    if kind in ('MultiSiam', 'BYOL'):
        m = model.get('base_momentum', 0.004)  # both default to BYOL's τ = 0.996
        return 1 - m, 1.0, 'cosine'
    if kind == 'Odin':
        m = model.get('target_momentum', 0.004)
        if model.get('discovery_update', 'ema') == 'ema':
            discovery = f'discovery λτ {model.get("discovery_momentum", 1e-3):g}'
        else:
            discovery = f'discovery copied every {model.get("discovery_interval", 100)} epochs'
        return 1 - m, 1.0, f'cosine; {discovery}'
    if kind in ('MultiSiamMoCo', 'MoCo', 'DenseCL'):
        m = model.get('momentum', 0.001)
        return 1 - m, 1 - m, 'constant'
    return None, None, 'none'


def warmup_of(schedulers) -> str:
    """The LinearLR warm-up starting at 0 of ``param_scheduler``, or 'none'."""
    schedulers = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]
    for s in schedulers:
        if s.get('type') == 'LinearLR' and s.get('begin', 0) == 0:
            unit = 'epochs' if s.get('by_epoch', True) else 'iters'
            return f'{s.get("end")} {unit}, linear from {s.get("start_factor", 1 / 3):g} x lr'
    return 'none'


def read_schedule(path: str, gpus: Optional[int] = None, dataset_size: Optional[int] = None) -> Schedule:
    """The schedule of the config at ``path`` (see the module docstring for where each number comes from)."""
    cfg = Config.fromfile(path)
    loader = cfg.train_dataloader
    batch = int(loader.batch_size)
    optim = cfg.optim_wrapper
    accumulation = int(optim.get('accumulative_counts', 1))
    notes = []
    scale = cfg.get('auto_scale_lr') or {}
    base_batch = scale.get('base_batch_size')
    if gpus is None:
        if base_batch and base_batch % batch == 0:
            gpus = base_batch // batch
        else:
            gpus = 1
            notes.append('GPUs not given by auto_scale_lr: 1 assumed (--gpus N)')
    name_layout = re.search(r'_(\d+)xb(\d+)', osp.basename(path))
    if name_layout and (int(name_layout[1]), int(name_layout[2])) != (gpus, batch):
        notes.append(f'file name says {name_layout[1]} x {name_layout[2]}, config {gpus} x {batch}')
    if scale.get('enable'):
        notes.append('auto_scale_lr enabled')
    loop = cfg.train_cfg
    epochs = loop.get('max_epochs')
    max_iters = loop.get('max_iters')
    data_root = (loader.dataset.get('data_root') or '') if isinstance(loader.dataset, dict) else ''
    dataset, size = dataset_of(data_root)
    if dataset_size is not None:
        dataset, size = 'given', dataset_size
    iters_per_epoch = total_iters = None
    if epochs is not None and size is not None:
        per_process = math.ceil(size / gpus)
        rounding = math.floor if loader.get('drop_last', False) else math.ceil
        iters_per_epoch = rounding(per_process / batch)
        total_iters = iters_per_epoch * epochs
    elif max_iters is not None:
        total_iters = max_iters
    optimizer = optim.optimizer
    ema_start, ema_end, ema = ema_of(cfg.model)
    return Schedule(
        config=path, gpus=gpus, batch_per_gpu=batch, accumulation=accumulation, epochs=epochs, max_iters=max_iters,
        dataset=dataset, dataset_size=size, iters_per_epoch=iters_per_epoch, total_iters=total_iters,
        optimizer=optimizer.type, lr=float(optimizer.lr),
        lr_batch=base_batch * accumulation if base_batch else None,
        weight_decay=float(optimizer.get('weight_decay', 0.0)), ema_start=ema_start, ema_end=ema_end, ema=ema,
        warmup=warmup_of(cfg.get('param_scheduler') or []), notes=notes)


def fmt(x) -> str:
    """A number for the table: '—' for None, integers with thousands separators, floats in %g."""
    if x is None:
        return '—'
    if isinstance(x, int):
        return f'{x:,}'
    return f'{x:.6g}'


def table_row(s: Schedule, root: str) -> List[str]:
    """The cells of ``s`` in COLUMNS order."""
    layout = f'{s.gpus} x {s.batch_per_gpu}' + (f' x {s.accumulation}' if s.accumulation > 1 else '')
    epochs = fmt(s.epochs) if s.epochs is not None else f'— ({fmt(s.max_iters)} iters)'
    dataset = f'{s.dataset} ({fmt(s.dataset_size)})' if s.dataset else '— (not a paper dataset)'
    iters = fmt(s.iters_per_epoch)
    if s.iters_per_epoch is not None and s.accumulation > 1:
        iters += f' ({fmt(s.iters_per_epoch // s.accumulation)} steps)'
    lr = f'{s.optimizer} {fmt(s.lr)} ({fmt(s.lr_batch)})'
    ema = '—' if s.ema_start is None else f'{fmt(s.ema_start)} -> {fmt(s.ema_end)} ({s.ema})'
    config = osp.relpath(s.config, root) if osp.isabs(s.config) else s.config
    return [config, fmt(s.total_batch), layout, epochs, dataset, iters, fmt(s.total_iters), lr, fmt(s.base_lr),
            fmt(s.weight_decay), ema, s.warmup, '; '.join(s.notes) or '']


def markdown_table(schedules: Sequence[Schedule], root: str = '.') -> str:
    """One markdown table, a row per schedule."""
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(table_row(s, root)) + ' |' for s in schedules]
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Print total batch, GPUs x batch per GPU (x accumulation), epochs, iterations per epoch and in '
                    'total on the paper\'s dataset size, lr (and the batch it is scaled for), weight decay, EMA τ '
                    'and warm-up of training configs, as a markdown table (one row per config).',
        epilog='GPUs: --gpus, else auto_scale_lr.base_batch_size / batch per GPU, else 1. Dataset sizes: '
               + '; '.join(f'{k}: {n} {v:,} ({src})' for k, (n, v, src) in DATASET_SIZES.items()))
    parser.add_argument('configs', nargs='+', metavar='CONFIG', help='config file paths or names under configs/')
    parser.add_argument('--gpus', type=int, help='number of GPUs (processes) instead of the config\'s')
    parser.add_argument('--dataset-size', type=int, metavar='N',
                        help='number of training images instead of the paper\'s size for the config\'s data_root')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    if args.gpus is not None and args.gpus < 1:
        raise UserError(f'--gpus must be >= 1, got {args.gpus}')
    if args.dataset_size is not None and args.dataset_size < 1:
        raise UserError(f'--dataset-size must be >= 1, got {args.dataset_size}')
    paths = [resolve_config(c, CONFIG_ROOT) for c in args.configs]
    table = markdown_table([read_schedule(p, args.gpus, args.dataset_size) for p in paths],
                           root=osp.dirname(CONFIG_ROOT))
    print(table)
    return table


if __name__ == '__main__':
    run_cli(main)

"""Train-step time of MultiSiam, DenseSiam and Odin against mmpretrain's BYOL: same backbone, batch, resolution and
machine, one run.

    python benchmarks/step_time.py [--batch 8] [--size 224] [--depth 50] [--steps 5] [--warmup 2] [--device cpu]
                                   [--methods NAME ...] [--span-size 448] [--amp bf16]

Every model comes from a shipped config (configs/multisiam_waymo.py, configs/byol/..., configs/densesiam/...,
configs/odin/...), with SyncBN replaced by BN for a single process. A step is forward + backward + optimiser update
+ EMA update(s) (Odin: target and discovery networks, discovery K-means on the spanning view of --span-size; "cached"
is Odin's discovery_update='copy', whose masks come from the cache after the first step, as between two copies).
The steps of the models are interleaved (A, B, C, A, B, C, ...) so that drift in machine speed hits all alike; the
table gives medians of the wall time and of the process CPU time (less sensitive to other jobs on a shared CPU
machine). FLOPs per step are counted by torch.utils.flop_counter on one step: their ratio is the floor the time
ratio can reach. --amp runs each step under torch.autocast in that dtype (k-means and the losses stay float32). On
CUDA the table adds each model's peak allocated memory over its steps (torch.cuda.max_memory_allocated).
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from contextlib import nullcontext
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.flop_counter import FlopCounterMode

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
import multisiam_mm  # noqa: E402,F401

BASE = 'BYOL (mmpretrain)'
ODIN = 'configs/odin/odin_r50_8xb128-coslr-300e_waymo.py'
CONFIGS = {  # name: (config, --cfg-options style overrides)
    BASE: ('configs/byol/byol_r50_8xb128-coslr-325e_waymo.py', {}),
    'MultiSiam (offset + attention)': ('configs/multisiam_waymo.py', {}),
    'MultiSiam (RoI)': ('configs/multisiam_waymo.py',
                        {'model.alignment': 'roi', 'model.cluster_head.self_attention': False}),
    'DenseSiam (RegionSim on)': ('configs/densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py', {}),
    'Odin (continuous discovery)': (ODIN, {}),
    'Odin (cached masks)': (ODIN, {'model.discovery_update': 'copy'}),
}


def set_depth(model: Config, depth: int) -> None:
    """Switch a shipped ResNet-50 model config to ResNet-``depth`` (the input widths of what reads the backbone)."""
    model.backbone.update(depth=depth, norm_cfg=dict(type='BN'))
    width = 2048 if depth >= 50 else 512
    if model.type == 'Odin':
        model.neck.in_channels = [width // 8, width // 4, width // 2, width]
        return
    model.neck.in_channels = width
    for head in ('pix_head', 'region_head'):
        if model.get(head):
            model[head].in_channels = width


def build(config: str, overrides: dict, depth: int, device: str):
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(overrides)
    set_depth(cfg.model, depth)
    model = MODELS.build(cfg.model).to(device).train()
    if hasattr(model, 'use_region_sim'):
        model.use_region_sim = True  # DenseSiam after its RegionSim hook: the full cost
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def make_batch(batch: int, size: int, span_size: int, device: str) -> Dict:
    """Two views (and Odin's spanning view) with view geometry in a 960x720 original image."""
    g = torch.Generator().manual_seed(0)
    inputs = [(torch.rand(batch, 3, size, size, generator=g) * 255).to(device) for _ in range(2)]
    span = (torch.rand(batch, 3, span_size, span_size, generator=g) * 255).to(device)
    samples = []
    for b in range(batch):
        ds = DataSample()
        shift = float(b % 7) * 10
        ds.set_metainfo(dict(view_boxes=torch.tensor([[0. + shift, 0., 600. + shift, 500.], [150., 80., 800., 620.]]),
                             view_flips=torch.tensor([b % 2 == 0, b % 3 == 0]), ori_shape=(720, 960),
                             span_box=torch.tensor([0., 0., 800. + shift, 620.]), sample_idx=b))
        samples.append(ds)
    return dict(inputs=inputs, span=span, data_samples=samples)


def model_batch(model, batch: Dict) -> Dict:
    """The batch as ``model`` takes it: Odin gets the spanning view as its third input."""
    inputs = batch['inputs'] + ([batch['span']] if type(model).__name__ == 'Odin' else [])
    return dict(inputs=inputs, data_samples=batch['data_samples'])


AMP_DTYPES = {'bf16': torch.bfloat16}  # fp16 would need a GradScaler


def step(model, optim, batch: Dict, amp: Optional[str] = None) -> None:
    data = model.data_preprocessor(model_batch(model, batch), True)
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=AMP_DTYPES[amp]) if amp else nullcontext():
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim.update_params(loss)


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def flops_per_step(model, optim, batch: Dict, amp: Optional[str]) -> float:
    with FlopCounterMode(display=False) as counter:
        step(model, optim, batch, amp)
    return counter.get_total_flops()


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch', type=int, default=8, help='images per step')
    parser.add_argument('--size', type=int, default=224, help='view resolution')
    parser.add_argument('--depth', type=int, default=50, help='ResNet depth')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per model')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per model')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (CPU)')
    parser.add_argument('--methods', nargs='+', default=list(CONFIGS), choices=list(CONFIGS),
                        help='models to time (BYOL is always included as the reference)')
    parser.add_argument('--span-size', type=int, default=448, help="Odin's spanning view resolution")
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES), default=None,
                        help='mixed precision: forward under torch.autocast in this dtype (default: float32)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    MMLogger.get_instance('step_time', log_level='WARNING')  # the optimiser builder's per-parameter lines
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 0)
    hub.update_info('max_iters', 1000)
    batch = make_batch(args.batch, args.size, args.span_size, args.device)
    names = [BASE] + [n for n in args.methods if n != BASE]
    models = {name: build(*CONFIGS[name], args.depth, args.device) for name in names}
    flops = {name: flops_per_step(m, o, batch, args.amp) for name, (m, o) in models.items()}
    cuda = args.device.startswith('cuda')
    wall: Dict[str, List[float]] = {name: [] for name in models}
    cpu: Dict[str, List[float]] = {name: [] for name in models}
    peak = {name: 0 for name in models}
    for i in range(args.warmup + args.steps):
        for name, (model, optim) in models.items():
            sync(args.device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
            step(model, optim, batch, args.amp)
            sync(args.device)
            if cuda:
                peak[name] = max(peak[name], torch.cuda.max_memory_allocated(args.device))
            if i >= args.warmup:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    print(f'\nResNet-{args.depth}, batch {args.batch}, {args.size}x{args.size}, device {args.device}, '
          f'{args.amp or "fp32"}, threads {torch.get_num_threads()}, {args.steps} timed steps (median), '
          f'torch {torch.__version__}\n')
    print('| method | wall ms / step | × BYOL wall | CPU ms / step | × BYOL CPU | GFLOPs / step | × BYOL FLOPs | '
          'peak GPU memory GiB |')
    print('|---|---|---|---|---|---|---|---|')
    w_base, c_base = statistics.median(wall[BASE]), statistics.median(cpu[BASE])
    for name in models:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        memory = f'{peak[name] / 2 ** 30:.2f}' if cuda else 'n/a (CPU)'
        print(f'| {name} | {1000 * w:.0f} | {w / w_base:.3f} | {1000 * c:.0f} | {c / c_base:.3f} | '
              f'{flops[name] / 1e9:.1f} | {flops[name] / flops[BASE]:.3f} | {memory} |')
    print('\nFLOPs are counted on the first step, which fills the cache of "Odin (cached masks)" (so it counts the '
          'discovery network); its timed steps read the cache.')


if __name__ == '__main__':
    main()

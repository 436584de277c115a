"""Cheap segmentation probes of a backbone's representation: a linear probe or a short FCN fine-tune (CPU minutes).

The backbone (a ResNet with mmpretrain's parameter names) comes from a backbone-only checkpoint (``{'state_dict':
{name: tensor}}``, e.g. from tools/extract_backbone.py), from a full pretraining checkpoint (its ``backbone.*``
tensors, or the EMA target's with ``--network target``) or is randomly initialised (``--random-init``). It is loaded
strictly: any missing, unexpected or mis-shaped key is an error that names the keys. The probe runs mmengine's
Runner in mmseg's scope on a segmentation folder (images and class-index label PNGs, see
configs/benchmarks/mmseg/_base_/seg_folder.py), then evaluates with mmseg's IoUMetric and prints mIoU and the
per-class IoU as a markdown table. See docs/probes.md.

    python tools/probe_segmentation.py --checkpoint work_dirs/demo/iter_200.pth --mode linear --iters 300 \\
        --data-root data/synthetic_streets --work-dir work_dirs/probe_linear
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmseg.evaluation import IoUMetric
from mmseg.registry import HOOKS, METRICS, MODELS
from mmseg.utils import register_all_modules

from multisiam_mm.datasets.image_listing import list_images
from multisiam_mm.datasets.transforms.robust_loading import Quarantine, load_images, record_bad_files
from multisiam_mm.evaluation.cluster_maps import backbone_tensors
from multisiam_mm.utils.backbone_export import load_backbone_strict
from multisiam_mm.utils.cli_errors import UserError, run_cli

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(linear=osp.join(ROOT, 'configs/benchmarks/mmseg/linear_r18_synthetic_streets.py'),
               finetune=osp.join(ROOT, 'configs/benchmarks/mmseg/fcn_r18_synthetic_streets.py'))


@METRICS.register_module(force=True)
class PerClassIoUMetric(IoUMetric):
    """mmseg's IoUMetric that also keeps the last per-class IoU (in %, NaN for a class absent from the set)."""

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """The IoUMetric summary; also sets ``self.per_class_iou`` ``{class name: IoU %}``."""
        intersect, union = sum(r[0] for r in results), sum(r[1] for r in results)
        iou = (intersect / union).numpy() * 100
        self.per_class_iou = dict(zip(self.dataset_meta['classes'], np.round(iou, 2).tolist()))
        return super().compute_metrics(results)


@HOOKS.register_module(force=True)
class ProbeProgressHook(Hook):
    """Print ``iter i/n, loss, s/iter`` to stdout every ``interval`` training iterations (whatever the log level)."""

    def __init__(self, interval: int = 10) -> None:
        self.interval = interval
        self._start = time.perf_counter()

    def before_train(self, runner) -> None:
        """Start the clock (the rate excludes building the Runner)."""
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Print the progress every ``interval`` iterations and at the last one."""
        it = runner.iter + 1
        if it % self.interval == 0 or it == runner.max_iters:
            loss = float(torch.as_tensor((outputs or {}).get('loss', float('nan'))).detach())
            rate = (time.perf_counter() - self._start) / it
            print(f'[probe] iter {it}/{runner.max_iters}  loss {loss:.4f}  {rate:.2f} s/iter', flush=True)


def read_classes(data_root: str, classes: Optional[Sequence[str]]) -> Optional[List[str]]:
    """Class names: ``classes`` when given, else those of ``<data_root>/classes.json`` when it exists, else None."""
    if classes:
        return list(classes)
    path = osp.join(data_root, 'classes.json')
    if osp.isfile(path):
        with open(path) as f:
            return list(json.load(f)['classes'])
    return None


def _set_pipeline(pipeline: List[dict], scale: Sequence[int], crop: Sequence[int]) -> None:
    """Set the resize scale ``(w, h)`` and the crop size ``(h, w)`` of a seg_folder pipeline, in place, and read the
    images with the robust loader (a bad training image is skipped and quarantined; see :func:`readable_val_list`
    for the val images)."""
    for t in pipeline:
        if t['type'] == 'LoadImageFromFile':
            t.update(type='mmpretrain.RobustLoadImage', min_size=0)
        if t['type'] in ('RandomResize', 'Resize'):
            t['scale'] = tuple(scale)
        if t['type'] == 'RandomCrop':
            t['crop_size'] = tuple(crop)


def probe_config(args: argparse.Namespace) -> Config:
    """The Runner config of the probe: the mode's config with the data, schedule and work dir of ``args``."""
    cfg = Config.fromfile(CONFIGS[args.mode])
    classes = read_classes(args.data_root, args.classes)
    crop = args.crop * 2 if len(args.crop) == 1 else args.crop
    for split, loader in (('train', cfg.train_dataloader), ('val', cfg.val_dataloader), ('val', cfg.test_dataloader)):
        ds = loader.dataset
        ds.update(data_root=args.data_root, img_suffix=args.img_suffix, seg_map_suffix=args.seg_suffix,
                  ignore_index=args.ignore_index,
                  data_prefix=dict(img_path=f'{args.img_dir}/{split}', seg_map_path=f'{args.ann_dir}/{split}'))
        if classes:
            ds.metainfo = dict(classes=tuple(classes))
        _set_pipeline(ds.pipeline, args.scale, crop)
        loader.num_workers = args.workers
        loader.persistent_workers = args.workers > 0
    cfg.train_dataloader.batch_size = args.batch_size
    if classes:
        cfg.model.decode_head.num_classes = len(classes)
    cfg.model.decode_head.ignore_index = args.ignore_index
    cfg.model.data_preprocessor.size = tuple(crop)
    cfg.model.data_preprocessor.seg_pad_val = args.ignore_index
    cfg.model.backbone.depth = args.depth
    if args.depth > 34:  # Bottleneck ResNets end in 2048 channels
        cfg.model.decode_head.in_channels = 2048
        if args.mode == 'linear':
            cfg.model.decode_head.channels = 2048
    cfg.val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'], ignore_index=args.ignore_index)
    cfg.test_evaluator = cfg.val_evaluator
    # evaluated once, by runner.val() after training: mmengine's loop also validates at its last iteration unless
    # val_begin lies beyond it (a val_interval beyond it is not enough)
    cfg.train_cfg.update(max_iters=args.iters, val_interval=args.iters + 1, val_begin=args.iters + 1)
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=args.iters, by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = args.iters
    cfg.default_hooks.logger.interval = args.log_interval
    cfg.custom_hooks = [dict(type='ProbeProgressHook', interval=args.log_interval)]
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = args.work_dir
    cfg.log_level = 'INFO' if args.verbose else 'WARNING'
    return cfg


def readable_val_list(cfg: Config, args: argparse.Namespace) -> Tuple[int, int]:
    """Read every val image once with the robust loader and make the val / test datasets read only the readable
    ones, through the list file ``<work_dir>/val_images.txt`` (their names without ``--img-suffix``): an unreadable
    image is left out of the score, instead of stopping the probe or being replaced by another image. Returns
    (readable, total)."""
    img_root = osp.join(args.data_root, args.img_dir, 'val')
    try:
        paths = [p for p in list_images(img_root, extensions=(args.img_suffix, )) if p.endswith(args.img_suffix)]
    except ValueError as err:  # no image with the suffix
        raise UserError(f'{err}; set --img-suffix to the ending of your image files') from None
    readable = [osp.relpath(p, img_root)[:-len(args.img_suffix)] for p, _ in load_images(paths, who='probe (val)')]
    os.makedirs(args.work_dir, exist_ok=True)
    list_file = osp.abspath(osp.join(args.work_dir, 'val_images.txt'))
    with open(list_file, 'w') as f:
        f.write(''.join(f'{name}\n' for name in readable))
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.ann_file = list_file
    return len(readable), len(paths)


def attach_backbone(cfg: Config, args: argparse.Namespace) -> None:
    """Check the checkpoint's backbone strictly and make the model load it (``init_cfg=Pretrained``) on a
    backbone-only copy in the work dir; nothing to do with ``--random-init``."""
    if args.random_init:
        return
    state = backbone_tensors(args.checkpoint, args.network)
    load_backbone_strict(MODELS.build(cfg.model.backbone), state)
    os.makedirs(args.work_dir, exist_ok=True)
    path = osp.join(args.work_dir, 'probe_backbone.pth')
    torch.save({'state_dict': state}, path)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path)


def markdown_table(metrics: Dict[str, float], per_class: Dict[str, float]) -> str:
    """mIoU, aAcc and the per-class IoU (%) as a markdown table (``n/a`` for classes absent from the val set)."""
    rows = ['| class | IoU (%) |', '|---|---:|']
    rows += [f'| {name} | {"n/a" if np.isnan(iou) else f"{iou:.2f}"} |' for name, iou in per_class.items()]
    rows += [f'| **mIoU** | **{metrics["mIoU"]:.2f}** |', f'| aAcc | {metrics["aAcc"]:.2f} |']
    return '\n'.join(rows)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments (``--help`` describes them)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='backbone-only checkpoint, full pretraining checkpoint (backbone.* keys) '
                                          'or the work dir of a pretraining run (its last_checkpoint)')
    src.add_argument('--random-init', action='store_true', help='randomly initialised backbone (the baseline)')
    p.add_argument('--network', choices=('online', 'target'), default='online',
                   help='backbone of a pretraining checkpoint: online (backbone.*) or EMA target (target_net.*)')
    p.add_argument('--mode', choices=sorted(CONFIGS), default='linear',
                   help='linear: frozen backbone + 1x1 conv; finetune: FCN, everything trains')
    p.add_argument('--data-root', default='data/synthetic_streets', help='segmentation folder')
    p.add_argument('--img-dir', default='images', help='image tree under data root, holding train/ and val/')
    p.add_argument('--ann-dir', default='semantic', help='label tree under data root, holding train/ and val/')
    p.add_argument('--img-suffix', default='.jpg', help='image file-name ending')
    p.add_argument('--seg-suffix', default='.png', help='label file-name ending (same stem as the image)')
    p.add_argument('--classes', nargs='+', help='class names in label order (default: data root classes.json, '
                                                'else the config classes)')
    p.add_argument('--ignore-index', type=int, default=255, help='label value ignored by loss and metric')
    p.add_argument('--depth', type=int, default=18, help='ResNet depth of the backbone')
    p.add_argument('--iters', type=int, default=300, help='training iterations')
    p.add_argument('--batch-size', type=int, default=4, help='training batch size')
    p.add_argument('--crop', type=int, nargs='+', default=[224, 224], help='training crop: H W, or one size')
    p.add_argument('--scale', type=int, nargs=2, default=[320, 224], help='resize scale W H (keep ratio)')
    p.add_argument('--workers', type=int, default=2, help='data loader workers')
    p.add_argument('--seed', type=int, default=0, help='random seed')
    p.add_argument('--log-interval', type=int, default=10, help='progress print interval (iterations)')
    p.add_argument('--work-dir', default='work_dirs/probe_segmentation', help='logs, checkpoint, copied backbone')
    p.add_argument('--verbose', action='store_true', help='mmengine logging at INFO (default WARNING)')
    p.add_argument('--out-json', help='also write {mIoU, aAcc, per_class, seconds} to this JSON file')
    args = p.parse_args(argv)
    if len(args.crop) not in (1, 2):
        p.error('--crop takes H W or one size')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Run the probe; print and return ``{'mIoU', 'aAcc', 'per_class'}``."""
    args = parse_args(argv)
    for folder in (osp.join(args.data_root, sub, split) for sub in (args.img_dir, args.ann_dir)
                   for split in ('train', 'val')):
        if not osp.isdir(folder):
            raise UserError(f'segmentation folder {folder} does not exist; the probe reads DATA_ROOT/{args.img_dir}/'
                            f'{{train,val}} and DATA_ROOT/{args.ann_dir}/{{train,val}} (a synthetic one: '
                            'tools/gen_synthetic_streets.py --out DIR)')
    register_all_modules(init_default_scope=False)
    cfg = probe_config(args)
    attach_backbone(cfg, args)
    source = 'random init' if args.random_init else args.checkpoint
    print(f'[probe] {args.mode} probe, ResNet-{args.depth} from {source}, {args.iters} iterations on '
          f'{args.data_root}', flush=True)
    start = time.perf_counter()
    with record_bad_files(args.work_dir) as bad_files, DefaultScope.overwrite_default_scope('mmseg'):
        readable, total = readable_val_list(cfg, args)
        if not readable:
            raise UserError(f'none of the {total} val images under {osp.join(args.data_root, args.img_dir, "val")} '
                            f'is readable (reasons in {bad_files})')
        if readable < total:
            print(f'[probe] {total - readable} of {total} val images unreadable, left out of the score (listed in '
                  f'{bad_files})', flush=True)
        runner = Runner.from_cfg(cfg)  # in mmseg's scope; the caller's default scope comes back afterwards
        runner.train()
        print(f'[probe] trained in {time.perf_counter() - start:.1f} s; evaluating', flush=True)
        metrics = runner.val()
        quarantined = len(Quarantine(bad_files))
    if quarantined:
        print(f'[probe] bad files: {quarantined} skipped, listed in {bad_files}', flush=True)
    per_class = runner.val_evaluator.metrics[0].per_class_iou
    print(f'[probe] done in {time.perf_counter() - start:.1f} s\n\n{markdown_table(metrics, per_class)}\n')
    print(f'mIoU: {metrics["mIoU"]:.2f}', flush=True)
    result = dict(mIoU=float(metrics['mIoU']), aAcc=float(metrics['aAcc']), per_class=per_class,
                  seconds=time.perf_counter() - start)
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    run_cli(main, sys.argv[1:])

"""Object discovery evaluation (Odin, Sec. 3.2 and appendix A.4) on any image folder with instance masks.

Each image is centre-cropped to a square and resized to --size; the model's dense features are L2-normalised and
clustered by K-means for every K in --ks (1, 2, ..., 128: 255 proposals), the proposals are resized to --size and
scored against the ground-truth segments: ABO^i and OR over instances, ABO^c over class-merged instances (when a
semantic folder is there). Prints a table (in %).

Folders (defaults follow tools/gen_synthetic_streets.py): images under DATA_ROOT/images/SPLIT, 16-bit instance id
PNGs of the same stem under DATA_ROOT/instances/SPLIT (0 = no instance), class-id PNGs under DATA_ROOT/semantic/SPLIT.

Examples:
    python tools/gen_synthetic_streets.py --out data/synthetic_streets --num-train 0 --num-val 100
    # random initialisation (a ResNet-50, final hidden layer as in Table 4)
    python tools/eval_object_discovery.py --data-root data/synthetic_streets --size 256
    # an Odin checkpoint: h of the online network, or its projections z with an FPN (A.4)
    python tools/eval_object_discovery.py --data-root data/synthetic_streets --size 256 \\
        --config configs/odin/odin_r50_8xb128-coslr-300e_waymo.py --checkpoint work_dirs/odin/epoch_300.pth
"""
import argparse
import os.path as osp
import re
import sys
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from torch import Tensor, nn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing
import multisiam_mm  # noqa: E402,F401  (registration)
from multisiam_mm.datasets.image_listing import list_images  # noqa: E402
from multisiam_mm.datasets.transforms.robust_loading import load_images  # noqa: E402
from multisiam_mm.evaluation import ObjectDiscoveryMetric  # noqa: E402
from multisiam_mm.evaluation.cluster_maps import backbone_tensors  # noqa: E402
from multisiam_mm.evaluation.object_discovery import DEFAULT_KS  # noqa: E402
from multisiam_mm.utils.backbone_export import load_backbone_strict, load_state_dict_file, resolve_checkpoint  # noqa: E402
from multisiam_mm.utils.cli_errors import run_cli  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data', 'synthetic_streets'),
                        help='dataset folder (default: %(default)s)')
    parser.add_argument('--split', default='val', help='split sub-folder (default: %(default)s)')
    parser.add_argument('--img-dir', help='image folder (default: DATA_ROOT/images/SPLIT)')
    parser.add_argument('--inst-dir', help='instance-id PNG folder (default: DATA_ROOT/instances/SPLIT)')
    parser.add_argument('--sem-dir', help='class-id PNG folder for ABO^c (default: DATA_ROOT/semantic/SPLIT; '
                                          'skipped if missing)')
    parser.add_argument('--config', help='model config (e.g. an Odin config); without it: a randomly initialised '
                                         'ResNet of --depth')
    parser.add_argument('--checkpoint', help='checkpoint to load strictly (mmengine; with no --config, keys under '
                                             '"backbone." or bare ResNet keys, of a ResNet of --depth)')
    parser.add_argument('--depth', type=int, default=50, help='ResNet depth without --config (default: %(default)s)')
    parser.add_argument('--size', type=int, default=1024,
                        help='side of the resized centre crop (A.4: 1024 for ResNets; default: %(default)s)')
    parser.add_argument('--ks', type=int, nargs='+', default=list(DEFAULT_KS),
                        help='K of the K-means runs (default: %(default)s)')
    parser.add_argument('--kmeans-iters', type=int, default=10, help='Lloyd iterations (default: %(default)s)')
    parser.add_argument('--kmeans-inits', type=int, default=2,
                        help='deterministic K-means runs per image and K (default: %(default)s)')
    parser.add_argument('--max-images', type=int, help='evaluate the first N images only')
    parser.add_argument('--batch-size', type=int, default=4, help='images per forward pass (default: %(default)s)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device (default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def centre_square(img: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """The central min(H, W)-square crop of an (H, W, ...) array, resized to (size, size)."""
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return mmcv.imresize(crop, (size, size), interpolation=interpolation)


def load_samples(img_dir: str, inst_dir: str, sem_dir: Optional[str], size: int,
                 max_images: Optional[int]) -> Iterator[Tuple[np.ndarray, dict]]:
    """(BGR image (size, size, 3) uint8, ground truth dict) per image of ``img_dir`` (recursive, sorted), its
    instance PNG at the same relative path under ``inst_dir``. Images are read by the robust loader: a bad one is
    skipped with a warning (and not scored)."""
    try:
        paths = list_images(img_dir)
    except ValueError as err:  # a folder without images
        raise FileNotFoundError(str(err)) from None
    for path, bgr in load_images(paths, max_images, who='eval_object_discovery'):
        stem = osp.splitext(osp.relpath(path, img_dir))[0]
        inst = cv2.imread(osp.join(inst_dir, stem + '.png'), cv2.IMREAD_UNCHANGED)
        if inst is None:
            raise FileNotFoundError(f'no instance mask {stem}.png in {inst_dir} for {path}')
        img = centre_square(bgr, size, 'bicubic')
        gt = dict(gt_instance_map=torch.from_numpy(centre_square(inst, size, 'nearest').astype(np.int64)))
        if sem_dir is not None:
            sem = cv2.imread(osp.join(sem_dir, stem + '.png'), cv2.IMREAD_UNCHANGED)
            sem = centre_square(sem, size, 'nearest').astype(np.int64)
            gt['gt_class_map'] = torch.from_numpy(np.where(gt['gt_instance_map'].numpy() > 0, sem + 1, 0))
        yield img, gt


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last one may be shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_feature_fn(args: argparse.Namespace) -> Tuple[Callable[[Tensor], Tensor], str]:
    """A function uint8 BGR images (B, 3, S, S) -> dense features (B, D, h, w), and the model's name."""
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    if args.config:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        model: nn.Module = MODELS.build(cfg.model)
        name = osp.basename(args.config)
        preprocess = model.data_preprocessor
        extract = getattr(model, 'object_features', None) or (lambda x: model.extract_feat(x)[-1])
    else:
        model = MODELS.build(dict(type='ResNet', depth=args.depth))
        name = f'ResNet-{args.depth}'
        preprocess = MODELS.build(dict(type='SelfSupDataPreprocessor', mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                       to_rgb=True))
        def extract(x: Tensor) -> Tensor:
            return model(x)[-1]
    if args.checkpoint:  # strict: a partly loaded model would print a number that means nothing
        if args.config:
            state = {re.sub(r'^module\.', '', k): v for k, v in
                     load_state_dict_file(resolve_checkpoint(args.checkpoint)).items()}
        else:  # a bare ResNet takes the online backbone of a pretraining checkpoint, or a backbone-only file
            state = backbone_tensors(args.checkpoint)
        load_backbone_strict(model, state)
        name += f' ({osp.basename(args.checkpoint)})'
    else:
        name += ' (random init)'
    model.to(args.device).eval()
    preprocess.to(args.device)

    @torch.no_grad()
    def features(images: Tensor) -> Tensor:
        return extract(preprocess(dict(inputs=images.to(args.device), data_samples=None), False)['inputs'])

    return features, name


def evaluate(args: argparse.Namespace) -> Tuple[str, int, dict]:
    """(model name, number of images, metrics) of one evaluation."""
    img_dir = args.img_dir or osp.join(args.data_root, 'images', args.split)
    inst_dir = args.inst_dir or osp.join(args.data_root, 'instances', args.split)
    sem_dir = args.sem_dir or osp.join(args.data_root, 'semantic', args.split)
    features, name = build_feature_fn(args)
    metric = ObjectDiscoveryMetric(ks=args.ks, kmeans_iters=args.kmeans_iters, kmeans_inits=args.kmeans_inits)
    samples = load_samples(img_dir, inst_dir, sem_dir if osp.isdir(sem_dir) else None, args.size, args.max_images)
    for batch in batched(samples, args.batch_size):
        images = torch.stack([torch.from_numpy(img).permute(2, 0, 1) for img, _ in batch])
        metric.process(None, [dict(gt, pred_features=f.cpu()) for (_, gt), f in zip(batch, features(images))])
    num_images = len(metric.results)
    return name, num_images, metric.evaluate(num_images)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    name, num_images, metrics = evaluate(args)
    prefix = ObjectDiscoveryMetric.default_prefix

    def get(key: str) -> str:
        return f'{metrics[key]:.1f}' if key in metrics else '-'

    print(f'object discovery: {num_images} images, {args.size}x{args.size} centre crops, '
          f'{sum(args.ks)} proposals (K in {args.ks})')
    print('| model | images scored | ABO^i | ABO^c | OR |')
    print('|---|---|---|---|---|')
    print(f'| {name} | {int(metrics[f"{prefix}/num_images"])} | {get(f"{prefix}/ABO_i")} | '
          f'{get(f"{prefix}/ABO_c")} | {get(f"{prefix}/OR")} |')
    return metrics


if __name__ == '__main__':
    run_cli(main)

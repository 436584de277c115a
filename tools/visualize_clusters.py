"""Cluster maps of several backbones side by side (MultiSiam paper, Fig. 6), written as one PNG grid.

Each checkpoint (a pretraining checkpoint: its ``backbone.*`` or, with ``--network target``, its EMA target's
backbone; or a backbone-only checkpoint; ``random`` for a randomly initialised backbone) is loaded strictly into an
mmpretrain ResNet. Each image's final feature map is clustered with k-means (K clusters, cosine) and the clusters are
drawn over the image. Rows: images; columns: the input, then one column per checkpoint, captioned by ``--names``.

    python tools/visualize_clusters.py --checkpoints random work_dirs/demo --names random MultiSiam \\
        --images data/synthetic_streets/images/val --num-images 6 --out clusters.png   # after make demo
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Optional, Sequence

import cv2

from multisiam_mm.datasets.image_listing import list_images
from multisiam_mm.evaluation.cluster_maps import cluster_overlays, compose_grid, load_backbone, read_images
from multisiam_mm.utils.cli_errors import run_cli


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments (``--help`` describes them)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--checkpoints', nargs='+', required=True,
                   help='checkpoint files or work dirs, one column each; "random" for a random backbone')
    p.add_argument('--names', nargs='+', help='column captions, one per checkpoint (default: file names)')
    p.add_argument('--images', nargs='+', required=True,
                   help='image files, folders (their images, recursively, sorted) and/or list files; unreadable '
                        'files are skipped with a warning')
    p.add_argument('--num-images', type=int, default=4, help='at most this many images (rows)')
    p.add_argument('--num-clusters', '-k', type=int, default=3, help='K of the k-means')
    p.add_argument('--metric', choices=('cosine', 'euclidean'), default='cosine', help='k-means metric')
    p.add_argument('--depth', type=int, default=18, help='ResNet depth of the backbones')
    p.add_argument('--network', choices=('online', 'target'), default='online',
                   help='backbone of a pretraining checkpoint: online (backbone.*) or EMA target (target_net.*)')
    p.add_argument('--size', type=int, nargs=2, default=[320, 224], help='images are resized to W H')
    p.add_argument('--out', default='cluster_maps.png', help='output PNG')
    args = p.parse_args(argv)
    if args.names and len(args.names) != len(args.checkpoints):
        p.error(f'--names needs one name per checkpoint ({len(args.checkpoints)})')
    return args


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Write the grid; return its path."""
    args = parse_args(argv)
    try:
        candidates = list_images(args.images)
    except ValueError as err:  # a folder without images
        raise FileNotFoundError(f'--images: {err}') from None
    _, images = read_images(candidates, args.size, args.num_images, who='visualize_clusters')
    if not images:
        raise FileNotFoundError(f'--images: none of the {len(candidates)} files in {" ".join(args.images)} is a '
                                'readable image')
    names = args.names or [osp.splitext(osp.basename(c.rstrip('/')))[0] for c in args.checkpoints]
    columns = []
    for name, ckpt in zip(names, args.checkpoints):
        start = time.perf_counter()
        backbone = load_backbone(None if ckpt == 'random' else ckpt, args.depth, args.network)
        columns.append(cluster_overlays(backbone, images, args.num_clusters, args.metric))
        print(f'{name}: {ckpt} ({len(images)} images, {time.perf_counter() - start:.1f} s)', flush=True)
    rows = [[img, *(col[i] for col in columns)] for i, img in enumerate(images)]
    grid = compose_grid(rows, ['image', *names])
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f'wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}, {len(images)} images x {len(names)} checkpoints, '
          f'K={args.num_clusters})')
    return args.out


if __name__ == '__main__':
    run_cli(main, sys.argv[1:])

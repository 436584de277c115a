"""Extract the backbone of a pretraining checkpoint for transfer (mmseg / mmdet / torchvision / detectron2).

Examples:
  python tools/extract_backbone.py work_dirs/multisiam/iter_100000.pth work_dirs/backbone.pth
  python tools/extract_backbone.py work_dirs/multisiam work_dirs/backbone.pth     # the work dir's last checkpoint
  python tools/extract_backbone.py CKPT out.pth --network target                    # the EMA target backbone
  python tools/extract_backbone.py CKPT r50_d2.pth --format detectron2

The output is ``{'state_dict': {...}, 'meta': {...}}`` (tensors and plain values only: ``torch.load(path,
weights_only=True)`` reads it). Load it into mmseg / mmdet with StrictBackboneLoadHook (configs/benchmarks).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
from multisiam_mm.utils.backbone_export import (  # noqa: E402
    FORMATS,
    NETWORKS,
    BackboneKeyError,
    extract_backbone,
    save_backbone,
    summary,
)


def parse_args(argv: list = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Extract backbone weights from a pretraining checkpoint.')
    parser.add_argument('checkpoint', help='pretraining checkpoint, or a work dir (uses its last_checkpoint)')
    parser.add_argument('out', help='output file (.pth)')
    parser.add_argument('--network', choices=NETWORKS, default='online',
                        help='online backbone (backbone.*) or the EMA target backbone (target_net.module.*)')
    parser.add_argument('--format', choices=FORMATS, default='mmpretrain', dest='fmt',
                        help='key layout: mmpretrain (= mmseg/mmdet ResNet), torchvision or detectron2')
    return parser.parse_args(argv)


def main(argv: list = None) -> None:
    args = parse_args(argv)
    try:
        exported = extract_backbone(args.checkpoint, args.network, args.fmt)
    except (FileNotFoundError, BackboneKeyError) as e:
        sys.exit(f'error: {e}')
    save_backbone(exported, args.out)
    print(summary(exported, args.out))


if __name__ == '__main__':
    main()

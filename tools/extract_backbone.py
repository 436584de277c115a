"""Extract the backbone of a pretraining checkpoint for transfer (mmseg / mmdet / torchvision / detectron2).

Examples:
  python tools/extract_backbone.py work_dirs/demo/iter_200.pth work_dirs/backbone.pth   # a checkpoint of make demo
  python tools/extract_backbone.py work_dirs/demo work_dirs/backbone.pth     # the work dir's last checkpoint
  python tools/extract_backbone.py CKPT out.pth --network target              # the EMA target backbone
  python tools/extract_backbone.py CKPT r50_tv.pth --format torchvision      # plain state_dict for torchvision
  python tools/extract_backbone.py CKPT r50_d2.pkl --format detectron2       # detectron2 names, pickled

Outputs (docs/transfer.md has a three-line load snippet for each):
  mmpretrain   {'state_dict': {...}, 'meta': {...}} (torch.load(path, weights_only=True) reads it); load it into
               mmseg / mmdet with StrictBackboneLoadHook (configs/benchmarks)
  torchvision  the plain state_dict: torchvision.models.resnet50().load_state_dict(sd, strict=False), fc.* missing
  detectron2   a .pkl {'model': {...numpy}, '__author__', 'matching_heuristics'}: MODEL.WEIGHTS for detectron2
A missing, unreadable or backbone-less checkpoint stops with one line naming the problem (exit status 2).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
from multisiam_mm.utils.backbone_export import FORMATS, NETWORKS, extract_backbone, save_backbone, summary  # noqa: E402
from multisiam_mm.utils.cli_errors import run_cli  # noqa: E402


def parse_args(argv: list = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Extract backbone weights from a pretraining checkpoint.')
    parser.add_argument('checkpoint', help='pretraining checkpoint, or a work dir (uses its last_checkpoint)')
    parser.add_argument('out', help='output file (.pth; .pkl for --format detectron2)')
    parser.add_argument('--network', choices=NETWORKS, default='online',
                        help='online backbone (backbone.*) or the EMA target backbone (target_net.module.*)')
    parser.add_argument('--format', choices=FORMATS, default='mmpretrain', dest='fmt',
                        help='key layout: mmpretrain (= mmseg/mmdet ResNet), torchvision or detectron2')
    return parser.parse_args(argv)


def main(argv: list = None) -> None:
    """Extract, write and describe the backbone."""
    args = parse_args(argv)
    exported = extract_backbone(args.checkpoint, args.network, args.fmt)
    save_backbone(exported, args.out)
    print(summary(exported, args.out))


if __name__ == '__main__':
    run_cli(main)

"""Generate the procedural synthetic street-scene dataset (images, semantic and instance masks).

Example:
    python tools/gen_synthetic_streets.py --out data/synthetic_streets --num-train 2000 --num-val 200

Layout, class table and determinism: docs/synthetic_data.md. Rerunning with the same arguments does nothing.
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
from multisiam_mm.datasets.synthetic_streets import (  # noqa: E402
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    SPLITS,
    classes_info,
    write_synthetic_dataset,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/synthetic_streets', help='output folder (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=1000, help='training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=100, help='validation images (default: %(default)s)')
    parser.add_argument('--width', type=int, default=DEFAULT_WIDTH, help='image width (default: %(default)s)')
    parser.add_argument('--height', type=int, default=DEFAULT_HEIGHT, help='image height (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='base seed (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if the folder holds a complete dataset (with the same or other '
                             'parameters)')
    parser.add_argument('--quiet', action='store_true', help='do not print the progress')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Write the dataset and print a summary of what was written (or found complete)."""
    args = parse_args(argv)
    try:
        summary = write_synthetic_dataset(args.out, args.num_train, args.num_val, width=args.width,
                                          height=args.height, seed=args.seed, overwrite=args.overwrite,
                                          progress=not args.quiet)
    except FileExistsError as error:
        sys.exit(f'error: {error}')
    total = args.num_train + args.num_val
    if summary['generated']:
        print(f'wrote {total} scenes ({args.width}x{args.height}, seed {args.seed}) to {args.out} in '
              f'{summary["seconds"]:.1f} s ({total / max(summary["seconds"], 1e-9):.0f} images/s)')
    else:
        print(f'{args.out} already holds this dataset ({total} scenes, seed {args.seed}): nothing written')
    for split in SPLITS:
        print(f'  {split}: {summary[f"num_{split}"]} images, list file {summary["list_files"][split]}')
    print(f'  classes: {json.dumps(classes_info()["classes"])} (thing classes '
          f'{json.dumps(classes_info()["thing_classes"])}), table in {summary["classes_file"]}')
    print(f'  parameters: {summary["meta_file"]}')


if __name__ == '__main__':
    main()

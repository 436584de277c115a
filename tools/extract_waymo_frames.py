"""Extract camera frames from Waymo Open Dataset v1 TFRecord segments (no TensorFlow needed) into JPEG files.

Usage: extract_waymo_frames.py SEGMENTS [SEGMENTS ...] --out OUT_DIR (every positional argument is an input).

Example (all five cameras, every frame, the list file that configs/_base_/datasets/waymo_pairs.py reads):
    python tools/extract_waymo_frames.py /data/waymo_v1/training --out data/waymo
Front camera only: --cameras FRONT --list-name front_camera. Frames stored at the size a config's views allow
(smaller files, faster loading, no view becomes an upscale): --shrink-for configs/multisiam_waymo.py.

Writes <out>/<segment context name>/<timestamp_micros>_<CAMERA>.jpg (the stored JPEG bytes, not re-encoded) and
<out>/<list name>.txt (paths relative to <out>, one per line). Rerunning skips the segments a previous run finished
(markers in <out>/.done/); a corrupt or truncated record ends its file with a warning and the run goes on.
Details: docs/data_ingestion.md.
"""
import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
from multisiam_mm.datasets.waymo_tfrecord import (  # noqa: E402
    ALL_CAMERAS,
    CAMERA_IDS,
    CRC32C_IMPLEMENTATION,
    DEFAULT_LIST_NAME,
    extract_waymo,
    format_duration,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+', help='.tfrecord files and/or folders (searched recursively)')
    parser.add_argument('--out', default='data/waymo', help='output folder (default: %(default)s)')
    parser.add_argument('--cameras', nargs='+', default=list(ALL_CAMERAS), choices=list(CAMERA_IDS)[1:],
                        metavar='CAMERA', help='cameras to extract, among %(choices)s (default: the five cameras '
                        'of v1, as the MultiSiam paper, Sec. 4.1; front only: --cameras FRONT)')
    parser.add_argument('--every', type=int, default=1, help='keep every N-th frame of a segment (default: 1)')
    parser.add_argument('--list-name', default=DEFAULT_LIST_NAME,
                        help='list file name without .txt, written in --out (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=1, help='segments extracted at once (default: 1)')
    parser.add_argument('--no-verify-crc', action='store_true',
                        help='do not check the record CRCs (truncation is still detected)')
    parser.add_argument('--shrink-for', metavar='CONFIG',
                        help="store each frame at the size CONFIG's training views allow (re-encoded JPEG; "
                             'factor per frame size in OUT/frame_shrink.json; docs/data_ingestion.md)')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality of shrunk frames (default: 95)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the extraction and print the summary; exits 2 with one ``error:`` line on bad or ambiguous input."""
    args = parse_args(argv)
    start = time.perf_counter()
    if args.shrink_for:
        if not osp.isfile(args.shrink_for):
            print(f'error: --shrink-for config {args.shrink_for!r} does not exist', file=sys.stderr)
            sys.exit(2)
        from multisiam_mm.datasets.frame_shrink import ShrinkPolicy, describe_plans
        policy = ShrinkPolicy.from_config(args.shrink_for)
        for hw in ((1280, 1920), (968, 1920)):  # the two Waymo v1 sizes (paper Sec. 4.1); each frame gets its own
            print(describe_plans(args.shrink_for, {hw: policy.plan(hw)})[0], flush=True)
    print(f'CRC32C: {CRC32C_IMPLEMENTATION}' if not args.no_verify_crc else 'CRC32C: not checked', flush=True)
    try:
        summary = extract_waymo(args.inputs, args.out, cameras=args.cameras, every=args.every,
                                list_name=args.list_name, workers=args.workers, verify_crc=not args.no_verify_crc,
                                log=lambda line: print(line, flush=True), shrink_for=args.shrink_for,
                                quality=args.quality)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
    print(f'summary: {summary["segments"]} segments ({summary["extracted"]} extracted now, {summary["skipped"]} '
          f'done earlier), {summary["frames"]} frames, {summary["images"]} images written, '
          f'{summary["corrupt_records"]} corrupt/truncated records skipped, {summary["bad_frames"]} undecodable '
          f'frames, {format_duration(time.perf_counter() - start)}')
    for source in summary['corrupt_files']:
        print(f'  corrupt/truncated: {source}')
    print(f'list file {summary["list_file"]}: {summary["list_images"]} images from {summary["list_segments"]} '
          'segments')


if __name__ == '__main__':
    main()

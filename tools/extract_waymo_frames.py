"""Extract camera frames from Waymo Open Dataset v1 TFRecord segments (no TensorFlow needed) into JPEG files.

Example (front camera, every frame, the list file that configs/_base_/datasets/waymo_front_pairs.py reads):
    python tools/extract_waymo_frames.py /data/waymo_v1/training --out data/waymo --list-name front_camera

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
from multisiam_mm.datasets.waymo_tfrecord import CAMERA_IDS, extract_waymo, format_duration  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+', help='.tfrecord files and/or folders (searched recursively)')
    parser.add_argument('--out', default='data/waymo', help='output folder (default: %(default)s)')
    parser.add_argument('--cameras', nargs='+', default=['FRONT'], choices=list(CAMERA_IDS)[1:], metavar='CAMERA',
                        help='cameras to extract, among %(choices)s (default: FRONT, as in the MultiSiam paper)')
    parser.add_argument('--every', type=int, default=1, help='keep every N-th frame of a segment (default: 1)')
    parser.add_argument('--list-name', default='front_camera',
                        help='list file name without .txt, written in --out (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=1, help='segments extracted at once (default: 1)')
    parser.add_argument('--no-verify-crc', action='store_true',
                        help='do not check the record CRCs (faster; truncation is still detected)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the extraction and print the summary; exits with a message on bad input."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = extract_waymo(args.inputs, args.out, cameras=args.cameras, every=args.every,
                                list_name=args.list_name, workers=args.workers, verify_crc=not args.no_verify_crc,
                                log=lambda line: print(line, flush=True))
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
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

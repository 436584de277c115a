"""Waymo extraction throughput (MB/s of TFRecord read) with CRC32C checks in C (google-crc32c), with the numpy
fallback, and without checks, on one synthetic segment (5 cameras of 300 kB, a 500 kB lidar-like blob per frame,
written with the encoder of tests/test_waymo_extraction.py); runs interleaved, median shown.

    python benchmarks/extract_bench.py [--frames 20] [--repeats 5]
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [ROOT, osp.join(ROOT, 'tests')]
import test_waymo_extraction as encoder  # noqa: E402

from multisiam_mm.datasets import waymo_tfrecord  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    c_library = waymo_tfrecord.google_crc32c
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'segment-bench_with_camera_labels.tfrecord')
        with open(path, 'wb') as f:
            for i in range(args.frames):
                images = [(c, rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()) for c in range(1, 6)]
                lidar = encoder._len(5, rng.integers(0, 256, 500_000, dtype=np.uint8).tobytes())
                f.write(encoder._record(encoder._frame('bench', 1000 + i, images) + lidar))
        size = osp.getsize(path)
        rates = {'CRC32C in C (google-crc32c)': [], 'CRC32C in numpy (fallback)': [], 'no CRC checks': []}
        for _ in range(args.repeats):
            for name, (library, verify) in zip(rates, ((c_library, True), (None, True), (c_library, False))):
                waymo_tfrecord.google_crc32c = library
                out = osp.join(tmp, 'out')
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                waymo_tfrecord.extract_waymo([path], out, verify_crc=verify, log=lambda line: None)
                rates[name].append(size / (time.perf_counter() - start) / 1e6)
        waymo_tfrecord.google_crc32c = c_library
    load = os.getloadavg()
    print(f'{size / 1e6:.1f} MB segment, {args.frames} frames x 5 cameras, {args.repeats} interleaved runs; load '
          f'{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores\n')
    print('| extraction | MB/s (median) | runs |\n|---|---:|---|')
    for name, values in rates.items():
        print(f'| {name} | {np.median(values):.0f} | {", ".join(f"{v:.0f}" for v in values)} |')


if __name__ == '__main__':
    main()

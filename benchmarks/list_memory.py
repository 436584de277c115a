"""Memory of UnlabeledImageDataset built from a large list file, in the main process and in dataloader workers.

    python benchmarks/list_memory.py [--lines 1000000] [--workers 2] [--batch 1000]

A list file of ``--lines`` paths like ``segment-0042/1507000000123456_FRONT.jpg`` is written to a temporary folder.
Each variant then runs in a fresh Python process, which builds the dataset from that list and iterates over it once
with a ``torch.utils.data.DataLoader`` (``--workers`` forked worker processes, persistent, shuffled, a pipeline that
only returns the path: no image is read). Reported, in MiB:

- base RSS: the process after its imports, before the dataset is built;
- build peak: the peak RSS while the dataset is built (``VmHWM``, reset before), minus base RSS;
- kept USS: the private memory (USS) held by the built dataset (USS after the build minus USS before);
- worker USS: private memory of each worker after the epoch (mean over workers), and the same minus the worker USS
  of the tiny-list baseline row: the extra memory a worker pays for the list.

Variants: this project's dataset (paths serialized as the list file is read); the same built the stock mmengine
way (``BaseDataset.full_init``: the list of sample dicts first, then ``_serialize_data``); the same with
``serialize_data=False`` (a plain list of dicts, which workers copy page by page as they touch the reference
counts); and a 100-line list as the per-worker baseline.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIB = 1024 * 1024
VARIANTS = {
    'tiny list (100 lines, baseline)': dict(serialize_data=True, stock=False, tiny=True),
    'UnlabeledImageDataset (serialized)': dict(serialize_data=True, stock=False, tiny=False),
    'same, built by mmengine stock full_init': dict(serialize_data=True, stock=True, tiny=False),
    'same, serialize_data=False': dict(serialize_data=False, stock=False, tiny=False),
}


def write_list_file(path: str, lines: int) -> None:
    """``lines`` Waymo-like relative frame paths, 200 frames per segment folder."""
    with open(path, 'w', encoding='utf-8') as f:
        for i in range(lines):
            f.write(f'segment-{i // 200:04d}/{1507000000000000 + i * 100000}_FRONT.jpg\n')


def _uss(pid: int) -> int:
    """Private (unique) memory of a process in bytes: psutil when installed, else /proc smaps_rollup."""
    try:
        import psutil
    except ImportError:
        with open(f'/proc/{pid}/smaps_rollup', encoding='ascii') as f:
            fields = dict(line.split(':', 1) for line in f if ':' in line)
        return sum(int(fields[k].split()[0]) * 1024 for k in ('Private_Clean', 'Private_Dirty'))
    return psutil.Process(pid).memory_full_info().uss


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes."""
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss() -> None:
    """Reset the peak RSS (``VmHWM``) of this process to its current RSS (Linux >= 4.0)."""
    with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
        f.write('5')


def _worker_pids() -> List[int]:
    """Pids of this process' children (the dataloader workers while they are alive)."""
    path = f'/proc/self/task/{os.getpid()}/children'
    with open(path, encoding='ascii') as f:
        return [int(pid) for pid in f.read().split()]


def _paths_of(batch: List[dict]) -> List[str]:
    return [sample['img_path'] for sample in batch]


def measure(list_file: str, serialize_data: bool, stock: bool, workers: int, batch: int) -> Dict[str, float]:
    """Build the dataset from ``list_file`` and iterate once over it; memory figures in MiB (see the module doc)."""
    import torch
    from mmengine.dataset import BaseDataset
    from torch.utils.data import DataLoader

    sys.path.insert(0, ROOT)
    from multisiam_mm.datasets import UnlabeledImageDataset

    class StockSerialization(UnlabeledImageDataset):
        full_init = BaseDataset.full_init  # load_data_list (list of dicts), then BaseDataset._serialize_data

    torch.set_num_threads(1)
    _reset_peak_rss()
    base_rss, base_uss = _status_bytes('VmRSS'), _uss(os.getpid())
    start = time.perf_counter()
    cls = StockSerialization if stock else UnlabeledImageDataset
    dataset = cls(ann_file=list_file, pipeline=[], serialize_data=serialize_data)
    build_s = time.perf_counter() - start
    peak = _status_bytes('VmHWM')
    kept_uss = _uss(os.getpid()) - base_uss
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=True,
                        collate_fn=_paths_of)
    start = time.perf_counter()
    seen = sum(len(paths) for paths in loader)
    epoch_s = time.perf_counter() - start
    assert seen == len(dataset), (seen, len(dataset))
    worker_uss = [_uss(pid) for pid in _worker_pids()]
    assert len(worker_uss) == workers, worker_uss
    return dict(samples=seen, base_rss=base_rss / MIB, build_peak=(peak - base_rss) / MIB, kept_uss=kept_uss / MIB,
                worker_uss=sum(worker_uss) / len(worker_uss) / MIB, build_s=build_s, epoch_s=epoch_s)


def run_variant(name: str, list_file: str, tiny_file: str, workers: int, batch: int) -> Dict[str, float]:
    """``measure`` in a fresh interpreter (so that peaks and heaps of the variants do not mix)."""
    spec = VARIANTS[name]
    args = [sys.executable, osp.abspath(__file__), '--child', name, '--list-file',
            tiny_file if spec['tiny'] else list_file, '--workers', str(workers), '--batch', str(batch)]
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f'variant {name!r} failed:\n{res.stderr[-3000:]}')
    return json.loads(res.stdout.strip().splitlines()[-1])


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """Markdown table of the variants (MiB and seconds)."""
    baseline = rows['tiny list (100 lines, baseline)']['worker_uss']
    lines = ['| variant | samples | base RSS | build peak | kept USS | worker USS | extra per worker | build s | '
             'epoch s |', '|---|---|---|---|---|---|---|---|---|']
    for name, r in rows.items():
        lines.append(f'| {name} | {r["samples"]:,} | {r["base_rss"]:.0f} | {r["build_peak"]:.0f} | '
                     f'{r["kept_uss"]:.0f} | {r["worker_uss"]:.0f} | {r["worker_uss"] - baseline:+.0f} | '
                     f'{r["build_s"]:.1f} | {r["epoch_s"]:.1f} |')
    return '\n'.join(lines)


def main() -> None:
    """Write the list file, run every variant in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lines', type=int, default=1_000_000, help='list file lines (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=2, help='dataloader workers (default: %(default)s)')
    parser.add_argument('--batch', type=int, default=1000, help='dataloader batch size (default: %(default)s)')
    parser.add_argument('--child', choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument('--list-file', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers < 1 or args.lines < 1:
        parser.error('--workers and --lines must be at least 1')
    if args.child:
        spec = VARIANTS[args.child]
        print(json.dumps(measure(args.list_file, spec['serialize_data'], spec['stock'], args.workers, args.batch)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        list_file, tiny_file = osp.join(tmp, 'frames.txt'), osp.join(tmp, 'tiny.txt')
        write_list_file(list_file, args.lines)
        write_list_file(tiny_file, 100)
        print(f'list file: {args.lines:,} lines, {osp.getsize(list_file) / MIB:.1f} MiB; {args.workers} workers, '
              f'batch {args.batch}; memory in MiB', flush=True)
        rows = {name: run_variant(name, list_file, tiny_file, args.workers, args.batch) for name in VARIANTS}
    print(format_table(rows))


if __name__ == '__main__':
    main()

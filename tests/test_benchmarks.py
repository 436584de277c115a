"""The benchmark scripts run and print their tables (smoke tests at tiny sizes; the numbers are not checked)."""
import os.path as osp
import subprocess
import sys

import pytest
from conftest import ROOT


def run_benchmark(script: str, *args: str) -> str:
    res = subprocess.run([sys.executable, osp.join(ROOT, 'benchmarks', script), *args], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.mark.slow
def test_step_time_prints_a_row_for_every_method():
    out = run_benchmark('step_time.py', '--depth', '18', '--batch', '2', '--size', '64', '--span-size', '128',
                        '--steps', '1', '--warmup', '0')
    for row in ('| BYOL (mmpretrain) |', '| MultiSiam (offset + attention) |', '| MultiSiam (RoI) |',
                '| DenseSiam (RegionSim on) |', '| Odin (continuous discovery) |', '| Odin (cached masks) |'):
        assert row in out, out


@pytest.mark.slow
def test_kmeans_bench_prints_every_method():
    out = run_benchmark('kmeans_bench.py', '--batch', '8', '--dim', '16', '--repeats', '1')
    assert '| batched_kmeans (eager, defaults) |' in out and 'scikit-learn KMeans(n_init=10)' in out, out


@pytest.mark.slow
def test_pair_crop_bench_prints_acceptance():
    out = run_benchmark('pair_crop_bench.py', '--seconds', '0.2', '--core', '-1')
    assert '| geometry, batched' in out and 'acceptance' in out, out

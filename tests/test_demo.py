"""The README's main job, shortened: generate scenes, pretrain MultiSiam, report start/end loss and the checkpoint."""
import os.path as osp
import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--work-dir', str(work), '--data-root', str(data),
           '--num-images', '24', '--max-iters', '20']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert 'eta:' in out  # mmengine's progress line with ETA
    start = re.search(r'loss at start \(iter \d+\): (-?\d+\.\d+)', out)
    end = re.search(r'loss at end   \(iter 20\): (-?\d+\.\d+)', out)
    assert start and end, out[-2000:]
    ckpt = re.search(r'\[demo\] checkpoint: (\S+)', out).group(1)
    assert ckpt == str(work / 'iter_20.pth') and osp.isfile(ckpt)
    assert (data / 'meta.json').is_file() and len(list((data / 'images' / 'train').glob('*.jpg'))) == 24

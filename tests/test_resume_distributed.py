"""Resume under DDP: two CPU processes (gloo, tools/dist_train.sh) resumed from a checkpoint end on the weights of
the uninterrupted two-process run, so each rank continued its own shard of the sample stream (issue 16)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, tiny_runner_cfg
from mmengine.config import Config
from test_cpu_launch import free_port

MAX_ITERS, RESUME_AT = 8, 3


def dist_train(cfg: dict, tmp_path, name: str, *args: str) -> None:
    cfg_path = str(tmp_path / f'{name}.py')
    Config(cfg).dump(cfg_path)
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    res = subprocess.run([osp.join(ROOT, 'tools', 'dist_train.sh'), cfg_path, '2', *args], capture_output=True,
                         text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]


@pytest.mark.slow
def test_two_process_resume_ends_on_the_uninterrupted_weights(tiny_streets, tmp_path):
    def cfg(work: str) -> dict:
        c = tiny_runner_cfg(tiny_streets, work, max_iters=MAX_ITERS, ckpt_interval=RESUME_AT)
        c['train_dataloader'].update(batch_size=2, num_workers=1)  # 2 ranks x 2 = the global batch of 4
        c['randomness'] = dict(seed=0, diff_rank_seed=True)  # a sampler seed drawn on rank 0 and shared
        return c

    whole, resumed = tmp_path / 'whole', tmp_path / 'resumed'
    dist_train(cfg(str(whole)), tmp_path, 'whole')
    dist_train(cfg(str(resumed)), tmp_path, 'resumed', '--resume', str(whole / f'iter_{RESUME_AT}.pth'))
    a = torch.load(whole / f'iter_{MAX_ITERS}.pth', map_location='cpu', weights_only=True)
    b = torch.load(resumed / f'iter_{MAX_ITERS}.pth', map_location='cpu', weights_only=True)
    assert b['meta']['iter'] == MAX_ITERS
    state = b['message_hub']['runtime_info']['train_sampler_state']
    assert state['world_size'] == 2 and state['epoch'] * 16 + state['position'] == MAX_ITERS * 4
    diff = max((a['state_dict'][k].double() - v.double()).abs().max().item() for k, v in b['state_dict'].items()
               if v.numel())
    print(f'2 gloo processes: max |w_resumed - w_uninterrupted| = {diff:.3g}')
    assert diff <= 1e-6

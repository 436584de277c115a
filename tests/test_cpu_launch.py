"""Distributed launch on CPU (multisiam_mm/utils/dist_launch.py, tools/train.py, tools/dist_train.sh)."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as torch_dist
from conftest import ROOT, tiny_runner_cfg
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from multisiam_mm.models.utils import AnyDeviceSyncBatchNorm
from multisiam_mm.utils.dist_launch import (
    CPUDistributedDataParallel,
    cpu_wrapper_cfg,
    init_cpu_dist,
    replace_torch_sync_bn,
    slurm_dist_env,
)

SLURM_TASK = dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1', SLURM_NODELIST='node[07-08]')


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_slurm_env_derived_like_mmengine():
    calls = []
    env = slurm_dist_env(SLURM_TASK, first_host=lambda nodes: calls.append(nodes) or 'node07')
    assert env == dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1', MASTER_ADDR='node07', MASTER_PORT='29500')
    assert calls == ['node[07-08]']


def test_slurm_env_honours_master_addr_and_port():
    def no_lookup(nodes: str) -> str:
        raise AssertionError('scontrol must not be called when MASTER_ADDR is set')

    env = slurm_dist_env(dict(SLURM_TASK, MASTER_ADDR='10.0.0.5', MASTER_PORT='23456'), first_host=no_lookup)
    assert (env['MASTER_ADDR'], env['MASTER_PORT']) == ('10.0.0.5', '23456')


def test_slurm_env_names_the_missing_variables():
    with pytest.raises(KeyError, match='SLURM_LOCALID'):
        slurm_dist_env({k: v for k, v in SLURM_TASK.items() if k != 'SLURM_LOCALID'})


def test_cpu_wrapper_cfg():
    assert cpu_wrapper_cfg(None, find_unused_parameters=True) == dict(
        type='CPUDistributedDataParallel', broadcast_buffers=False, find_unused_parameters=True, device_ids=None,
        output_device=None)
    given = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
    assert cpu_wrapper_cfg(given) == dict(type='CPUDistributedDataParallel', find_unused_parameters=True,
                                          device_ids=None, output_device=None)
    assert given == dict(type='MMDistributedDataParallel', find_unused_parameters=True)  # not modified
    # other wrappers: device ids cleared only for DistributedDataParallel subclasses
    assert cpu_wrapper_cfg(dict(type='MMSeparateDistributedDataParallel')) == dict(
        type='MMSeparateDistributedDataParallel', device_ids=None, output_device=None)
    assert cpu_wrapper_cfg(dict(type='MMFullyShardedDataParallel')) == dict(type='MMFullyShardedDataParallel')
    assert issubclass(MODEL_WRAPPERS.get('CPUDistributedDataParallel'), MMDistributedDataParallel)


def test_only_torch_sync_bn_is_replaced_sharing_tensors():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4), nn.Sequential(nn.BatchNorm1d(4)))
    weight, running_mean = model[1].weight, model[1].running_mean
    model = replace_torch_sync_bn(model)
    assert type(model[1]) is AnyDeviceSyncBatchNorm and type(model[2][0]) is nn.BatchNorm1d
    assert model[1].weight is weight and model[1].running_mean is running_mean


def test_slurm_task_of_one_initialises_gloo_and_wraps_a_sync_bn_model():
    """One srun task (world size 1): environment derived, gloo group up, the CPU wrapper builds around SyncBN."""
    environ = dict(SLURM_TASK, SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0', MASTER_ADDR='127.0.0.1',
                   MASTER_PORT=str(free_port()))
    assert not torch_dist.is_initialized()
    init_cpu_dist('slurm', timeout=60, environ=environ)
    try:
        assert (torch_dist.get_backend(), torch_dist.get_rank(), torch_dist.get_world_size()) == ('gloo', 0, 1)
        assert (environ['RANK'], environ['WORLD_SIZE'], environ['LOCAL_RANK']) == ('0', '1', '0')
        wrapped = CPUDistributedDataParallel(nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4)),
                                             device_ids=None, output_device=None)
        assert isinstance(wrapped.module[1], AnyDeviceSyncBatchNorm)
        wrapped(torch.rand(2, 3, 4, 4)).sum().backward()
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_dist_train_sh_two_cpu_processes(tiny_streets, tmp_path):
    """tools/dist_train.sh CONFIG 2: torchrun, two CPU processes (gloo); both ranks train, rank 0 checkpoints."""
    work = tmp_path / 'work'
    cfg_path = str(tmp_path / 'tiny.py')
    Config(tiny_runner_cfg(tiny_streets, str(work), max_iters=2, ckpt_interval=2)).dump(cfg_path)
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    res = subprocess.run([osp.join(ROOT, 'tools', 'dist_train.sh'), cfg_path, '2', '--work-dir', str(work)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    for rank in (0, 1):
        assert f'multisiam_mm train: rank {rank} of 2 (cpu)' in out, out[-4000:]
    assert (work / 'iter_2.pth').exists()
    assert torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)['meta']['iter'] == 2

"""Slurm launch on a single-node local cluster: tools/slurm_train.sh and ``mim train --launcher slurm``, 2 CPU tasks.

The module fixture installs Debian's slurm-wlm when ``slurmctld`` is missing (apt-get, as root), writes a minimal
slurm.conf in a temporary state directory (auth/none, no cgroups, no accounting, one node with 4 CPUs and two fake
``gpu`` GRES on /dev/null and /dev/zero so that mim's ``--gres=gpu:N`` can be satisfied), starts slurmctld and slurmd
in the foreground as child processes and stops them by pid afterwards. Nothing outside the temporary directory is
configured or started; the client commands find the cluster through ``SLURM_CONF``.
"""
import glob
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Iterator, List

import pytest
import torch
from conftest import ROOT, tiny_runner_cfg
from mmengine.config import Config

pytestmark = pytest.mark.slow

PARTITION = 'mstest'
STARTUP_TIMEOUT_S = 60
TRAIN_TIMEOUT_S = 240


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def ensure_slurm_installed() -> None:
    """Install slurm-wlm with apt-get when slurmctld is missing; fail (never skip) when that is impossible."""
    if shutil.which('slurmctld') and shutil.which('slurmd') and shutil.which('srun'):
        return
    if os.geteuid() != 0 or shutil.which('apt-get') is None:
        pytest.fail('Slurm is not installed and cannot be installed here (needs root and apt-get): '
                    'run `apt-get install slurm-wlm` first')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    install = ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'slurm-wlm']
    for cmd in (['apt-get', 'update', '-q'], install):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if res.returncode != 0:
            pytest.fail(f'installing Slurm failed: {" ".join(cmd)} -> {res.returncode}\n{res.stdout[-2000:]}\n'
                        f'{res.stderr[-2000:]}')
    if not shutil.which('slurmctld'):
        pytest.fail('apt-get installed slurm-wlm but slurmctld is still not on PATH')


def check_auth_none() -> None:
    """auth/none (removed in newer Slurm releases) must be among the installed plugins."""
    if not glob.glob('/usr/lib/*/slurm-wlm/auth_none.so') + glob.glob('/usr/lib*/slurm/auth_none.so'):
        pytest.fail('the installed Slurm has no auth/none plugin (auth_none.so); this test configures auth/none only')


def write_slurm_conf(state: str, node: str) -> str:
    """slurm.conf, gres.conf and an empty plugstack.conf in ``state``; returns the slurm.conf path."""
    for sub in ('ctld', 'spool', 'log'):
        os.makedirs(osp.join(state, sub), exist_ok=True)
    open(osp.join(state, 'plugstack.conf'), 'w').close()
    with open(osp.join(state, 'gres.conf'), 'w') as f:  # two fake GPUs: mim always asks for --gres=gpu:N
        f.write(f'NodeName={node} Name=gpu File=/dev/null\nNodeName={node} Name=gpu File=/dev/zero\n')
    conf = osp.join(state, 'slurm.conf')
    lines = [
        'ClusterName=multisiamtest',
        f'SlurmctldHost={node}(127.0.0.1)',
        f'SlurmctldPort={free_port()}',
        f'SlurmdPort={free_port()}',
        'SlurmUser=root', 'SlurmdUser=root',
        'AuthType=auth/none', 'CredType=cred/none',
        f'StateSaveLocation={state}/ctld', f'SlurmdSpoolDir={state}/spool',
        f'SlurmctldPidFile={state}/slurmctld.pid', f'SlurmdPidFile={state}/slurmd.pid',
        f'SlurmctldLogFile={state}/log/slurmctld.log', f'SlurmdLogFile={state}/log/slurmd.log',
        'SlurmctldDebug=info', 'SlurmdDebug=info',
        f'PlugStackConfig={state}/plugstack.conf',
        'MailProg=/bin/true',
        'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
        'SelectType=select/cons_tres', 'SelectTypeParameters=CR_CPU',
        'MpiDefault=none', 'SwitchType=switch/none',
        'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'SlurmdParameters=config_overrides',  # the node's CPUs below, whatever the machine has
        'ReturnToService=2',
        'GresTypes=gpu',
        f'NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 CPUs=4 RealMemory=1000 Gres=gpu:2 State=UNKNOWN',
        f'PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP',
    ]
    with open(conf, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return conf


def daemon_logs(state: str) -> str:
    """The last lines of the daemons' logs and outputs, for failure messages."""
    parts = []
    for name in ('slurmctld.log', 'slurmd.log', 'slurmctld.out', 'slurmd.out'):
        path = osp.join(state, 'log', name)
        if osp.exists(path):
            with open(path, errors='replace') as f:
                parts.append(f'--- {name}\n' + ''.join(f.readlines()[-25:]))
    return '\n'.join(parts)


def stop(procs: List[subprocess.Popen]) -> None:
    """SIGTERM each daemon by pid, then SIGKILL what is still running after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope='module')
def slurm_env(tmp_path_factory) -> Iterator[Dict[str, str]]:
    """A running one-node cluster; yields the environment for its clients (srun, sinfo, mim)."""
    ensure_slurm_installed()
    check_auth_none()
    node = subprocess.run(['hostname', '-s'], capture_output=True, text=True, check=True).stdout.strip()
    state = str(tmp_path_factory.mktemp('slurm'))
    conf = write_slurm_conf(state, node)
    env = {k: v for k, v in os.environ.items() if not k.startswith('SLURM_')}  # not an outer job's allocation
    env['SLURM_CONF'] = conf
    procs = []
    try:
        for daemon, extra in (('slurmctld', []), ('slurmd', ['-N', node])):
            with open(osp.join(state, 'log', f'{daemon}.out'), 'w') as out:
                procs.append(subprocess.Popen([daemon, '-D', '-f', conf, *extra], stdout=out,
                                              stderr=subprocess.STDOUT, env=env, cwd=state))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        states = ''
        while not states.startswith('idle'):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail(f'the local Slurm node is not idle after {STARTUP_TIMEOUT_S} s (sinfo: {states!r}, '
                            f'daemon exit codes {[p.poll() for p in procs]})\n{daemon_logs(state)}')
            time.sleep(1)
            res = subprocess.run(['sinfo', '-h', '-N', '-o', '%T'], capture_output=True, text=True, env=env,
                                 timeout=30)
            states = res.stdout.strip()
        yield env
    finally:
        stop(procs)


def check_two_ranks_and_checkpoint(res: subprocess.CompletedProcess, work: str) -> None:
    """Exit code 0, both ranks ran (each prints its rank), rank 0 wrote the checkpoint of the last iteration."""
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    for rank in (0, 1):
        assert f'multisiam_mm train: rank {rank} of 2 (cpu)' in out, out[-5000:]
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.exists(ckpt), os.listdir(work)
    assert torch.load(ckpt, map_location='cpu', weights_only=False)['meta']['iter'] == 2


def tiny_config(data_root: str, tmp_path) -> str:
    """A 2-iteration tiny MultiSiam config (checkpoint at iteration 2); returns its path."""
    cfg_path = str(tmp_path / 'tiny.py')
    Config(tiny_runner_cfg(data_root, str(tmp_path / 'work'), max_iters=2, ckpt_interval=2)).dump(cfg_path)
    return cfg_path


def test_slurm_train_sh_two_tasks(slurm_env, tiny_streets, tmp_path):
    """tools/slurm_train.sh on a CPU cluster (NO_GRES=1): srun starts 2 tasks, gloo process group."""
    cfg_path, work = tiny_config(tiny_streets, tmp_path), str(tmp_path / 'work')
    env = dict(slurm_env, GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', NO_GRES='1', PYTHON=sys.executable,
               MASTER_PORT=str(free_port()), OMP_NUM_THREADS='1')
    res = subprocess.run([osp.join(ROOT, 'tools', 'slurm_train.sh'), PARTITION, 'slurm_train_test', cfg_path, work],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=TRAIN_TIMEOUT_S)
    check_two_ranks_and_checkpoint(res, work)


def test_mim_train_launcher_slurm_two_tasks(slurm_env, tiny_streets, tmp_path):
    """``mim train multisiam_mm CFG --launcher slurm --gpus 2 --gpus-per-node 2``: mim's srun (with --gres=gpu:2,
    the fake GRES) starts 2 tasks. ``--srun-args`` is given because openmim 0.3.9 with click 8.2 fails on its
    default."""
    cfg_path, work = tiny_config(tiny_streets, tmp_path), str(tmp_path / 'work')
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(slurm_env, PYTHONPATH='', OMP_NUM_THREADS='1')
    res = subprocess.run([mim, 'train', 'multisiam_mm', cfg_path, '--launcher', 'slurm', '--gpus', '2',
                          '--gpus-per-node', '2', '--cpus-per-task', '1', '--partition', PARTITION,
                          '--port', str(free_port()), '--srun-args=--export=ALL', '--work-dir', work],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=TRAIN_TIMEOUT_S)
    assert '--gres=gpu:2' in res.stdout, res.stdout[-3000:]
    check_two_ranks_and_checkpoint(res, work)

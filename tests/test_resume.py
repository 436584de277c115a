"""Resume and load_from under torch >= 2.6 (weights_only=True by default), without disabling the safety."""
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, tiny_runner_cfg
from mmengine.config import Config
from mmengine.runner import Runner


def test_checkpoint_loads_weights_only_and_resume_continues(tiny_streets, tmp_path):
    work = str(tmp_path / 'work')
    Runner.from_cfg(Config(tiny_runner_cfg(tiny_streets, work, max_iters=4, ckpt_interval=2))).train()
    ckpt = osp.join(work, 'iter_4.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=True)  # the allow-list makes this work
    assert state['meta']['iter'] == 4 and 'message_hub' in state

    runner = Runner.from_cfg(Config(dict(tiny_runner_cfg(tiny_streets, work, max_iters=6, ckpt_interval=2),
                                         resume=True)))
    runner.train()
    assert runner.iter == 6
    assert osp.exists(osp.join(work, 'iter_6.pth'))
    resumed = torch.load(osp.join(work, 'iter_6.pth'), map_location='cpu', weights_only=True)
    assert resumed['meta']['iter'] == 6
    # the EMA target network and the optimizer state came back too
    assert any(k.startswith('target_net.') for k in resumed['state_dict'])
    assert resumed['optimizer']['state']


def test_load_from_initialises_the_weights(tiny_streets, tmp_path):
    work = str(tmp_path / 'a')
    Runner.from_cfg(Config(tiny_runner_cfg(tiny_streets, work, max_iters=2, ckpt_interval=2))).train()
    cfg = dict(tiny_runner_cfg(tiny_streets, str(tmp_path / 'b'), max_iters=2), load_from=osp.join(work, 'iter_2.pth'))
    runner = Runner.from_cfg(Config(cfg))
    runner.load_or_resume()
    saved = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu', weights_only=True)['state_dict']
    for name, value in runner.model.state_dict().items():
        assert torch.equal(value, saved[name]), name


class NotAllowed:  # an arbitrary class: pickling it into a checkpoint must still be refused
    pass


def test_safety_is_not_turned_off_globally(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': NotAllowed()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # the default stays weights_only=True


def test_plain_torch_without_the_plugin_cannot_load_mmengine_checkpoints(tiny_streets, tmp_path):
    """Proves the allow-list is what makes resume work (the failure the plugin fixes is real)."""
    work = str(tmp_path / 'work')
    Runner.from_cfg(Config(tiny_runner_cfg(tiny_streets, work, max_iters=1, ckpt_interval=1))).train()
    code = f'import torch; torch.load({osp.join(work, "iter_1.pth")!r}, map_location="cpu")'
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode != 0 and 'weights_only' in res.stderr


@pytest.mark.slow
def test_kill_9_then_resume_continues_at_the_saved_iteration(tiny_streets, tmp_path):
    work = tmp_path / 'work'
    cfg_path = str(tmp_path / 'cfg.py')
    cfg = dict(tiny_runner_cfg(tiny_streets, str(work), max_iters=40, ckpt_interval=5), log_level='INFO')
    Config(cfg).dump(cfg_path)
    train = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg_path, '--work-dir', str(work)]
    proc = subprocess.Popen(train, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (work / 'iter_10.pth').exists():
        assert proc.poll() is None, 'training ended before the kill'
        assert time.time() < deadline, 'no checkpoint after 300 s'
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    last = (work / 'last_checkpoint').read_text().strip()
    saved_iter = torch.load(last, map_location='cpu', weights_only=True)['meta']['iter']
    assert 10 <= saved_iter < 40

    res = subprocess.run(train + ['--resume'], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    logs = list(work.glob('*/*.log'))
    resumed_log = max(logs, key=lambda p: p.stat().st_mtime).read_text()
    assert f'resumed epoch: 0, iter: {saved_iter}' in resumed_log
    assert f'Iter(train) [{saved_iter + 1}/40]' in resumed_log
    assert torch.load(work / 'iter_40.pth', map_location='cpu', weights_only=True)['meta']['iter'] == 40

"""A new user's `pip install`: the wheel, alone, in an empty virtual environment, then import, train, probe.

The wheel is built from a copy of the checkout (building in place would replace multisiam_mm/.mim's links with
copies) and installed into a new venv with nothing but its declared requirements (requirements/runtime.txt). What
pip takes from where:

- every declared requirement, resolved by pip from the package indexes, at the versions of the tested stack
  (requirements/stack.env, passed as a constraints file, so a new upstream release cannot change the test);
- mmcv from the wheel that scripts/setup_env.sh compiled and cached (mmcv 2.1.0 has no wheel for torch 2.14), by
  ``--find-links``;
- torch / torchvision: the full packages, from the local package files where the machine has them (no shortcut: the
  CUDA build of torch 2.14.1 with its nvidia-* libraries, about 5.5 GB in the venv; torch + torchvision alone took
  1 min 35 s to install on the 2-core machine while it compiled mmcv).

pip runs with ``--no-compile``: it does not byte-compile the ~5.9 GB it installs (Python compiles what is imported
on first import). Measured 2026-12-04 on the 2-core machine (the quality benchmark running beside it at nice 19):
wheel 1 s, pip install 66 s, import 10 s, five demo iterations 22 s, linear probe 33 s, total 132 s. The run of
2026-12-03, with pip byte-compiling and the machine loaded by other jobs, took 1177 s (pip install 810 s); the two
causes were not measured apart.

Then, from a scratch directory (so the checkout is not on the path): ``import multisiam_mm``, five iterations of the
demo (tools/demo.py as installed under multisiam_mm/.mim/tools, which also writes TensorBoard events) and the linear
probe on the checkpoint. Each step's time is printed (``pytest -s``).
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_stack_pins import read_stack

STACK_KEYS = {'torch': 'TORCH_VERSION', 'torchvision': 'TORCHVISION_VERSION', 'mmcv': 'MMCV_VERSION',
              'mmengine': 'MMENGINE_VERSION', 'mmpretrain': 'MMPRETRAIN_VERSION', 'mmsegmentation': 'MMSEG_VERSION'}




def mmcv_wheel_dir(pins: dict) -> str:
    """The folder where scripts/setup_env.sh caches the compiled mmcv wheel (same naming)."""
    cache = os.environ.get('MULTISIAM_CACHE', osp.expanduser('~/.cache/multisiam_mm'))
    ops = 'cuda' if os.environ.get('FORCE_CUDA', '0') == '1' else 'cpu'
    tag = 'cp' + pins['PYTHON_VERSION'].replace('.', '')
    return osp.join(cache, 'wheels', f'mmcv-{pins["MMCV_VERSION"]}_torch-{pins["TORCH_VERSION"]}_{tag}_{ops}')


def copy_checkout(dst: str) -> None:
    """The files a fresh clone has (tracked and untracked-but-not-ignored), copied to ``dst``."""
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split('\0')
    for rel in filter(None, listed):
        src = osp.join(ROOT, rel)
        if osp.isfile(src) and not osp.islink(src):
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, rel))


def run(cmd, cwd, timeout, env=None) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with the output's tail when it exits non-zero."""
    res = subprocess.run([str(c) for c in cmd], cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                         env=env)
    if res.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}')
    return res


@pytest.mark.slow
def test_wheel_alone_installs_imports_trains_and_probes(tmp_path, request):
    pins = read_stack()
    wheels = mmcv_wheel_dir(pins)
    cached = [f for f in os.listdir(wheels) if f.endswith('.whl')] if osp.isdir(wheels) else []
    assert cached, f'no cached mmcv wheel in {wheels}: run scripts/setup_env.sh (make setup) first'
    times = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        times[name] = time.perf_counter() - start - sum(times.values())
        print(f'[fresh install] {name}: {times[name]:.0f} s', flush=True)

    src, dist = tmp_path / 'src', tmp_path / 'dist'
    copy_checkout(str(src))
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', dist, src],
        tmp_path, 600)
    wheel = next(dist.glob('multisiam_mm-*.whl'))
    lap('build the wheel')

    venv = tmp_path / 'venv'
    request.addfinalizer(lambda: shutil.rmtree(venv, ignore_errors=True))  # 5.9 GB; pytest keeps its last 3 tmp dirs
    base_python = getattr(sys, '_base_executable', None) or sys.executable
    run([base_python, '-m', 'venv', venv], tmp_path, 300)
    python = venv / 'bin' / 'python'
    constraints = tmp_path / 'constraints.txt'
    constraints.write_text(''.join(f'{dist_name}=={pins[key]}\n' for dist_name, key in STACK_KEYS.items())
                           + pins['NUMPY_SPEC'] + '\n')
    run([python, '-m', 'pip', 'install', '--disable-pip-version-check', '-q', '--no-compile', '--log',
         tmp_path / 'pip.log', '-c', constraints, '--find-links', wheels, wheel], tmp_path, 1500)
    lap('pip install the wheel and its requirements')

    work = tmp_path / 'scratch'
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env['PATH'] = f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}'
    probe = run([python, '-c', 'import multisiam_mm, os; print(os.path.dirname(multisiam_mm.__file__))'],
                work, 300, env)
    package = probe.stdout.strip().splitlines()[-1]
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], work, 60, env)
    assert package.startswith(site.stdout.strip()), package  # the installed copy, not the checkout
    assert osp.realpath(package) != osp.join(ROOT, 'multisiam_mm')
    lap('import multisiam_mm')

    tools = osp.join(package, '.mim', 'tools')
    demo = run([python, osp.join(tools, 'demo.py'), '--max-iters', '5', '--num-images', '8', '--work-dir', 'demo',
                '--data-root', 'streets'], work, 900, env)
    assert (work / 'demo' / 'iter_5.pth').is_file(), demo.stdout[-2000:]
    events = list((work / 'demo').rglob('events.out.tfevents.*'))
    assert events, 'no TensorBoard event file: the default runtime logs to tensorboard'
    lap('five demo iterations')

    out = run([python, osp.join(tools, 'probe_segmentation.py'), '--checkpoint', 'demo/iter_5.pth', '--mode',
               'linear', '--iters', '2', '--batch-size', '2', '--workers', '0', '--data-root', 'streets',
               '--work-dir', 'probe'], work, 900, env).stdout
    assert 'mIoU:' in out.splitlines()[-1], out[-2000:]
    lap('linear probe')
    print(f'[fresh install] total: {sum(times.values()):.0f} s', flush=True)

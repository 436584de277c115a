"""Registry integration, the training tools and openmim."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_runner_cfg
from mmengine.config import Config
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS

import multisiam_mm


@pytest.mark.parametrize('registry,name', [
    (MODELS, 'MultiSiam'), (MODELS, 'MultiSiamNeck'), (MODELS, 'ClusterHead'),
    (TRANSFORMS, 'IoUPairCrop'), (TRANSFORMS, 'PairPhotometric'), (TRANSFORMS, 'PackPairInputs'),
    (DATASETS, 'UnlabeledImageDataset')])
def test_components_registered_in_mmpretrain_registries(registry, name):
    assert registry.get(name) is not None, f'{name} missing from mmpretrain {registry.name}'


def test_custom_imports_in_a_fresh_interpreter():
    """A config with custom_imports builds our types in a process that never imported multisiam_mm itself."""
    code = ('from mmengine.config import Config\n'
            'from mmengine.registry import init_default_scope\n'
            'from mmpretrain.registry import MODELS\n'
            'cfg = Config(dict(custom_imports=dict(imports=["multisiam_mm"])))\n'
            'from mmengine.utils import import_modules_from_strings\n'
            'import_modules_from_strings(**cfg.custom_imports)\n'
            'init_default_scope("mmpretrain")\n'
            'print(MODELS.build(dict(type="MultiSiamNeck", in_channels=8, hid_channels=8, out_channels=4)).__class__)')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd='/')
    assert res.returncode == 0, res.stderr
    assert 'MultiSiamNeck' in res.stdout


def test_mim_extension_exposes_tools_and_configs():
    mim_dir = osp.join(osp.dirname(multisiam_mm.__file__), '.mim')
    assert osp.isfile(osp.join(mim_dir, 'tools', 'train.py'))
    assert osp.isfile(osp.join(mim_dir, 'configs', 'multisiam_waymo.py'))


def test_train_tool_help_lists_the_mmengine_options():
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), '--help'],
                         capture_output=True, text=True)
    assert res.returncode == 0
    for opt in ('--work-dir', '--resume', '--amp', '--cfg-options', '--launcher'):
        assert opt in res.stdout
    assert 'slurm' in res.stdout and 'pytorch' in res.stdout


@pytest.mark.slow
def test_mim_train_runs_a_few_iterations(tiny_streets, tmp_path):
    cfg_path = str(tmp_path / 'tiny.py')
    Config(tiny_runner_cfg(tiny_streets, str(tmp_path / 'work'), max_iters=2, ckpt_interval=2)).dump(cfg_path)
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(os.environ, PYTHONPATH='')
    res = subprocess.run([mim, 'train', 'multisiam_mm', cfg_path, '--work-dir', str(tmp_path / 'work')],
                         capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    assert (tmp_path / 'work' / 'iter_2.pth').exists()

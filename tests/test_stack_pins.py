"""The pinned stack: one source of truth, and the two traps of the stack settled on purpose."""
import importlib.metadata as md
import os.path as osp
import re

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def read_stack() -> dict:
    pins = {}
    with open(osp.join(ROOT, 'requirements', 'stack.env')) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                key, value = line.split('=', 1)
                pins[key] = value.strip('"')
    return pins


def test_stack_file_has_every_pin():
    pins = read_stack()
    for key in ('PYTHON_VERSION', 'TORCH_VERSION', 'TORCHVISION_VERSION', 'MMCV_VERSION', 'MMENGINE_VERSION',
                'MMPRETRAIN_VERSION', 'MMSEG_VERSION', 'MMDET_VERSION', 'OPENMIM_VERSION', 'NUMPY_SPEC',
                'SETUPTOOLS_SPEC'):
        assert pins.get(key), key


def test_setup_makefile_and_dockerfile_share_the_stack_file():
    setup = open(osp.join(ROOT, 'scripts', 'setup_env.sh')).read()
    makefile = open(osp.join(ROOT, 'Makefile')).read()
    docker = open(osp.join(ROOT, 'docker', 'Dockerfile')).read()
    assert 'requirements/stack.env' in setup and 'include requirements/stack.env' in makefile
    assert 'scripts/setup_env.sh' in docker and 'COPY requirements/' in docker
    # No version in the setup script or the Dockerfile may contradict stack.env.
    pins = read_stack()
    for text in (setup, docker):
        for key, value in re.findall(r'\b([A-Z_]+_VERSION)=([0-9][0-9.]*)', text):
            assert pins[key] == value, f'{key}={value} disagrees with stack.env ({pins[key]})'
        assert not re.search(r'(torch|mmcv|mmengine|mmpretrain|mmsegmentation|mmdet|openmim)==[0-9]', text)
    assert re.search(r'ARG PYTHON_VERSION=' + re.escape(pins['PYTHON_VERSION']) + r'\b', docker)


@pytest.mark.parametrize('dist,key', [('torch', 'TORCH_VERSION'), ('torchvision', 'TORCHVISION_VERSION'),
                                      ('mmcv', 'MMCV_VERSION'), ('mmengine', 'MMENGINE_VERSION'),
                                      ('mmpretrain', 'MMPRETRAIN_VERSION'), ('mmsegmentation', 'MMSEG_VERSION'),
                                      ('mmdet', 'MMDET_VERSION'), ('openmim', 'OPENMIM_VERSION')])
def test_installed_versions_match_the_pins(dist, key):
    assert md.version(dist).split('+')[0] == read_stack()[key]


def test_full_mmcv_and_downstream_packages_import():
    import mmcv.ops  # noqa: F401
    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import mmseg.models  # noqa: F401
    import torch
    from mmcv.ops import roi_align
    out = roi_align(torch.ones(1, 1, 4, 4), torch.tensor([[0., 0., 0., 3., 3.]]), (2, 2), 1.0, 2, 'avg', True)
    assert out.shape == (1, 1, 2, 2) and torch.allclose(out, torch.ones_like(out))


def test_setuptools_not_downgraded_by_openmim():
    major, minor = (int(p) for p in md.version('setuptools').split('.')[:2])
    assert (major, minor) >= (77, 0) and major < 82
    assert not any(d.metadata['Name'].lower() in ('opendatalab', 'openxlab') for d in md.distributions())


def test_numpy_below_2_keeps_mmcv_adjust_hue_working():
    """numpy 2 makes mmcv's adjust_hue raise OverflowError for a negative hue (BYOL's ColorJitter)."""
    import mmcv
    assert int(np.__version__.split('.')[0]) < 2
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = mmcv.adjust_hue(img, -0.1, backend='pillow')
    assert out.shape == img.shape and not np.array_equal(out, img)


def test_byol_color_jitter_pipeline_runs_with_negative_hue():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS
    init_default_scope('mmpretrain')
    jitter = TRANSFORMS.build(dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1))
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for seed in range(20):  # some draws have a negative hue factor
        np.random.seed(seed)
        assert jitter(dict(img=img.copy()))['img'].shape == img.shape

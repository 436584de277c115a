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


# ---- docker/Dockerfile and .dockerignore (no Docker engine here: the recipe is checked as text) ----

# Oldest compute capability each CUDA major version still compiles for (CUDA 12 dropped Kepler 3.5/3.7; CUDA 13 dropped
# Maxwell, Pascal and Volta, i.e. everything below Turing 7.5), and the newest one it knows.
CUDA_ARCH_RANGE = {11: (3.5, 9.0), 12: (5.0, 12.1), 13: (7.5, 12.1)}


def dockerfile_args() -> dict:
    """The default values of the Dockerfile's ARG lines, quotes stripped."""
    docker = open(osp.join(ROOT, 'docker', 'Dockerfile')).read()
    return {k: v.strip('"') for k, v in re.findall(r'^ARG (\w+)=(\S+)', docker, re.M)}


def check_arch_list(cuda_image: str, arch_list: str) -> None:
    """Raise AssertionError when ``arch_list`` (TORCH_CUDA_ARCH_LIST) holds a capability the CUDA release of the image
    ``nvidia/cuda:<major>.<minor>...`` cannot compile for."""
    major = int(re.match(r'nvidia/cuda:(\d+)\.', cuda_image).group(1))
    low, high = CUDA_ARCH_RANGE[major]
    archs = [float(a.replace('+PTX', '')) for a in re.split(r'[;\s]+', arch_list.strip()) if a]
    assert archs, 'empty TORCH_CUDA_ARCH_LIST'
    bad = [a for a in archs if not low <= a <= high]
    assert not bad, f'CUDA {major} compiles compute capabilities {low}-{high} only, not {bad}'


def test_dockerfile_arch_list_fits_its_cuda_base():
    args = dockerfile_args()
    check_arch_list(args['CUDA_IMAGE'], args['TORCH_CUDA_ARCH_LIST'])
    with pytest.raises(AssertionError, match=r'CUDA 13 compiles .* not \[7\.0\]'):  # the list this recipe had
        check_arch_list('nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04', '7.0;7.5;8.0;8.6;8.9;9.0')
    check_arch_list('nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04', '7.0;7.5;8.0')


def test_dockerignore_keeps_the_environment_and_outputs_out_of_the_context():
    path = osp.join(ROOT, '.dockerignore')
    assert osp.isfile(path), '.dockerignore missing: COPY . . would send .venv (GBs) into the build'
    patterns = {line.strip() for line in open(path) if line.strip() and not line.startswith('#')}
    assert {'.venv', 'work_dirs', 'data', '.git'} <= patterns
    assert 'COPY . .' in open(osp.join(ROOT, 'docker', 'Dockerfile')).read()

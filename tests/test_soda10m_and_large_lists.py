"""SODA10M folder layout through configs/_base_/datasets/soda10m_pairs.py, and large list files kept serialized."""
import os.path as osp
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS

from multisiam_mm.datasets import UnlabeledImageDataset

BENCHMARK = osp.join(ROOT, 'benchmarks', 'list_memory.py')


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def soda_tree(tmp_path) -> Path:
    """data/soda10m as unpacked: SSLAD-2D/labeled (COCO-style splits and annotations) and SSLAD-2D/unlabeled."""
    root = tmp_path / 'soda10m'
    sslad = root / 'SSLAD-2D'
    for i, split in enumerate(('train', 'val', 'test')):
        _image(sslad / 'labeled' / split / f'HT_{split.upper()}_00000{i}_SH_000.jpg', i)
    (sslad / 'labeled' / 'annotations').mkdir()
    (sslad / 'labeled' / 'annotations' / 'instance_train.json').write_text('{"images": []}')
    for part in range(2):
        for j in range(3):
            _image(sslad / 'unlabeled' / f'part_{part}' / f'HT_{part}{j:05d}.JPG', 10 * part + j)
    (sslad / 'unlabeled' / 'part_0' / '.DS_Store').write_bytes(b'x')
    (sslad / 'unlabeled' / 'part_1' / 'readme.txt').write_text('x')
    return root


def test_soda10m_config_reads_the_unlabeled_images_only(soda_tree):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets', 'soda10m_pairs.py'))
    dataset_cfg = cfg.train_dataloader.dataset
    assert (dataset_cfg.data_root, dataset_cfg.data_prefix) == ('data/soda10m', 'SSLAD-2D/unlabeled')
    dataset_cfg.data_root = str(soda_tree)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dataset_cfg)
        sample = dataset[4]
    unlabeled = soda_tree / 'SSLAD-2D' / 'unlabeled'
    assert [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))] == [
        str(unlabeled / f'part_{p}' / f'HT_{p}{j:05d}.JPG') for p in range(2) for j in range(3)]
    assert len(sample['inputs']) == 2 and sample['inputs'][0].shape == (3, 224, 224)  # the MultiSiam view pair


def test_soda10m_list_file_override(soda_tree):
    paths = sorted(str(p.relative_to(soda_tree)) for p in soda_tree.rglob('unlabeled/*/*.JPG'))
    (soda_tree / 'unlabeled.txt').write_text('\n'.join(paths) + '\n')
    dataset = UnlabeledImageDataset(data_root=str(soda_tree), data_prefix='', ann_file='unlabeled.txt')
    assert [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))] == [
        osp.join(str(soda_tree), p) for p in paths]


class _StockBuild(UnlabeledImageDataset):
    full_init = BaseDataset.full_init  # mmengine's way: the list of dicts, then BaseDataset._serialize_data


def test_200k_line_list_is_read_straight_into_serialized_storage(tmp_path):
    list_file = tmp_path / 'frames.txt'
    lines = [f'segment-{i // 200:04d}/{1507000000000000 + i * 100000}_FRONT.jpg' for i in range(200_000)]
    list_file.write_text('\n'.join(lines) + '\n')
    dataset = UnlabeledImageDataset(ann_file=str(list_file), data_prefix='waymo')
    assert dataset.serialize_data and dataset.data_list == [] and len(dataset) == 200_000
    assert dataset.data_bytes.dtype == np.uint8 and dataset.data_address.dtype == np.int64
    assert dataset.data_bytes.nbytes < 200_000 * (len(lines[-1]) + 40)  # the path and ~35 bytes of pickle framing
    assert dataset.get_data_info(123_456) == dict(img_path=osp.join('waymo', lines[123_456]), sample_idx=123_456)
    subset = UnlabeledImageDataset(ann_file=str(list_file), indices=[5, 199_999])
    assert [subset.get_data_info(i)['img_path'] for i in range(2)] == [lines[5], lines[199_999]]


def test_serialized_layout_is_the_one_mmengine_builds(tmp_path):
    list_file = tmp_path / 'frames.txt'
    list_file.write_text(''.join(f'seg/{i}_FRONT.jpg\n' for i in range(2000)))
    ours, stock = (cls(ann_file=str(list_file), data_root='/data') for cls in (UnlabeledImageDataset, _StockBuild))
    np.testing.assert_array_equal(ours.data_bytes, stock.data_bytes)
    np.testing.assert_array_equal(ours.data_address, stock.data_address)


def test_memory_measure_of_the_benchmark_in_process(tmp_path):
    sys.path.insert(0, osp.dirname(BENCHMARK))
    try:
        import list_memory
    finally:
        sys.path.remove(osp.dirname(BENCHMARK))
    list_file = str(tmp_path / 'frames.txt')
    list_memory.write_list_file(list_file, 2000)
    row = list_memory.measure(list_file, serialize_data=True, stock=False, workers=1, batch=500)
    assert row['samples'] == 2000 and row['worker_uss'] > 0
    table = list_memory.format_table({name: row for name in list_memory.VARIANTS})
    assert table.count('\n') == 1 + len(list_memory.VARIANTS) and '| 2,000 |' in table


@pytest.mark.slow
def test_list_memory_benchmark_prints_its_table():
    res = subprocess.run([sys.executable, BENCHMARK, '--lines', '20000'], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for row in ('| UnlabeledImageDataset (serialized) | 20,000 |', '| same, serialize_data=False | 20,000 |'):
        assert row in res.stdout, res.stdout

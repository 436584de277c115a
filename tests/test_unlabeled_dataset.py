"""Tests of UnlabeledImageDataset: folder scan, list file, errors, serialization and building from a config."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS

from multisiam_mm.datasets import UnlabeledImageDataset


def _touch(path: Path, data: bytes = b'x') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path):
    """A folder with images in nested folders, non-images, hidden files and a hidden folder."""
    root = tmp_path / 'frames'
    for name in ('b.PNG', 'a.jpg', 'sub/c.jpeg', 'sub/deeper/d.webp', 'sub/e.Tif', 'f.bmp',
                 'notes.txt', 'sub/labels.json', 'noext', '.hidden.jpg', '.cache/g.jpg', 'sub/.thumbs/h.png'):
        _touch(root / name)
    return root


def _paths(dataset) -> list:
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def test_folder_scan_is_recursive_sorted_and_skips_non_images_and_hidden(tree):
    dataset = UnlabeledImageDataset(data_root=str(tree.parent), data_prefix='frames')
    expected = sorted(str(tree / n) for n in ('a.jpg', 'b.PNG', 'f.bmp', 'sub/c.jpeg', 'sub/deeper/d.webp',
                                                'sub/e.Tif'))
    assert _paths(dataset) == expected
    assert dataset.get_data_info(0) == dict(img_path=expected[0], sample_idx=0)


def test_folder_given_as_data_root_or_prefix_dict(tree):
    by_root = UnlabeledImageDataset(data_root=str(tree))
    by_dict = UnlabeledImageDataset(data_prefix=dict(img_path=str(tree)))
    assert _paths(by_root) == _paths(by_dict) and len(by_root) == 6


def test_extensions_can_be_restricted(tree):
    assert [Path(p).name for p in _paths(UnlabeledImageDataset(data_root=str(tree), extensions=('.png',)))] == [
        'b.PNG']


def test_list_file_skips_comments_and_blanks_and_resolves_paths(tmp_path):
    absolute = str(tmp_path / 'elsewhere' / 'x.jpg')
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'frames.txt').write_text(
        f'# Waymo front camera frames\n\nseg1/0001.jpg\n  seg1/0002.jpg  \n\n# another comment\n{absolute}\n')
    dataset = UnlabeledImageDataset(data_root=str(tmp_path / 'data'), data_prefix='images', ann_file='frames.txt')
    images = tmp_path / 'data' / 'images'
    assert _paths(dataset) == [str(images / 'seg1/0001.jpg'), str(images / 'seg1/0002.jpg'), absolute]


def test_list_file_entries_are_not_checked_at_start(tmp_path):
    list_file = _touch(tmp_path / 'list.txt', b'missing/frame.jpg\n')
    dataset = UnlabeledImageDataset(ann_file=str(list_file), data_root=str(tmp_path))
    assert len(dataset) == 1 and dataset.get_data_info(0)['img_path'] == str(tmp_path / 'missing/frame.jpg')


def test_sample_list_is_serialized(tree):
    dataset = UnlabeledImageDataset(data_root=str(tree))
    assert dataset.serialize_data and dataset.data_list == []
    assert isinstance(dataset.data_bytes, np.ndarray) and dataset.data_bytes.dtype == np.uint8
    assert len(dataset.data_address) == 6


def test_metainfo_has_no_classes_and_takes_extra_keys(tree):
    dataset = UnlabeledImageDataset(data_root=str(tree), metainfo=dict(dataset_name='waymo'), lazy_init=True)
    assert dataset.metainfo == dict(classes=(), dataset_name='waymo')
    assert UnlabeledImageDataset(data_root=str(tree), lazy_init=True).metainfo == dict(classes=())


def test_empty_folder_is_a_clear_error(tmp_path):
    _touch(tmp_path / 'empty' / 'readme.txt')
    with pytest.raises(ValueError, match=r'no image files .*empty'):
        UnlabeledImageDataset(data_root=str(tmp_path / 'empty'))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'image folder .*nowhere'):
        UnlabeledImageDataset(data_root=str(tmp_path), data_prefix='nowhere')


def test_missing_list_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'list file .*absent\.txt'):
        UnlabeledImageDataset(data_root=str(tmp_path), ann_file='absent.txt')


def test_list_file_without_entries_is_a_clear_error(tmp_path):
    _touch(tmp_path / 'only_comments.txt', b'# nothing here\n\n   \n')
    with pytest.raises(ValueError, match=r'only_comments\.txt.*lists no image'):
        UnlabeledImageDataset(data_root=str(tmp_path), ann_file='only_comments.txt')


def test_no_source_and_bad_prefix_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='image folder'):
        UnlabeledImageDataset()
    with pytest.raises(ValueError, match='data_prefix'):
        UnlabeledImageDataset(data_root=str(tmp_path), data_prefix=dict(img='x'))


def test_built_from_config_with_a_loading_pipeline(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    (tmp_path / 'imgs').mkdir()
    assert cv2.imwrite(str(tmp_path / 'imgs' / 'a.png'), image)
    (tmp_path / 'train.txt').write_text('imgs/a.png\n')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=str(tmp_path), ann_file='train.txt',
                                      pipeline=[dict(type='LoadImageFromFile')]))
        sample = dataset[0]
    assert isinstance(dataset, UnlabeledImageDataset)
    np.testing.assert_array_equal(sample['img'], image)  # BGR in, BGR out: PNG is lossless
    assert sample['img_path'] == str(tmp_path / 'imgs' / 'a.png')

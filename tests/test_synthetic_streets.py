"""Tests of the procedural street-scene generator and of the dataset it writes."""
import importlib.util
import json
import os
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest

from multisiam_mm.datasets import generate_scene, write_synthetic_dataset
from multisiam_mm.datasets.synthetic_streets import (
    CAR,
    CLASSES,
    PALETTE,
    PERSON,
    ROAD,
    SKY,
    THING_CLASSES,
    scene_seed,
)

THING_IDS = [CLASSES.index(c) for c in THING_CLASSES]
SMALL = dict(width=96, height=64)  # small scenes keep the dataset tests fast


@pytest.fixture(scope='module')
def scenes():
    """Eight default-size scenes (seeds 0..7)."""
    return [generate_scene(seed) for seed in range(8)]


def test_same_seed_gives_byte_identical_scene():
    first, second = generate_scene(123), generate_scene(123)
    for a, b in zip(first, second):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_different_seeds_give_different_scenes():
    img_a, sem_a, _ = generate_scene(1)
    img_b, sem_b, _ = generate_scene(2)
    assert np.abs(img_a.astype(int) - img_b).mean() > 10
    assert (sem_a != sem_b).mean() > 0.05


def test_shapes_and_dtypes_follow_the_requested_size():
    img, sem, inst = generate_scene(5, width=200, height=120)
    assert img.shape == (120, 200, 3) and img.dtype == np.uint8
    assert sem.shape == (120, 200) and sem.dtype == np.uint8
    assert inst.shape == (120, 200) and inst.dtype == np.uint16
    assert sem.max() < len(CLASSES)


def test_too_small_size_is_rejected():
    with pytest.raises(ValueError, match='32'):
        generate_scene(0, width=16, height=64)


def test_instances_are_things_and_things_are_instances(scenes):
    for _, sem, inst in scenes:
        is_thing = np.isin(sem, THING_IDS)
        np.testing.assert_array_equal(inst > 0, is_thing)
        ids = np.unique(inst[inst > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # consecutive ids 1..n
        for i in ids:
            assert len(np.unique(sem[inst == i])) == 1  # one class per instance


def test_scenes_hold_several_car_and_person_instances(scenes):
    counts = []
    for _, sem, inst in scenes:
        counts.append(len(np.unique(inst[np.isin(sem, [CAR, PERSON])])))
    assert sum(c >= 2 for c in counts) >= 7, counts
    assert sum(len(np.unique(inst)) - 1 for _, _, inst in scenes) >= 40


def test_every_class_appears_across_a_few_scenes(scenes):
    seen = set()
    for _, sem, _ in scenes:
        seen.update(np.unique(sem).tolist())
    assert seen == set(range(len(CLASSES)))


def test_sky_is_at_the_top_and_road_at_the_bottom(scenes):
    for _, sem, _ in scenes:
        rows = np.broadcast_to(np.arange(sem.shape[0])[:, None], sem.shape)
        assert rows[sem == SKY].mean() < 0.4 * sem.shape[0]
        assert rows[sem == ROAD].mean() > 0.6 * sem.shape[0]
        assert (sem[: sem.shape[0] // 10] == SKY).any()
        assert np.bincount(sem[-1], minlength=len(CLASSES)).argmax() == ROAD


def test_farther_people_are_smaller(scenes):
    """Perspective: the nearer a pedestrian's feet are to the horizon (higher up), the shorter they look."""
    feet, heights = [], []
    for _, sem, inst in scenes:
        for i in np.unique(inst[sem == PERSON]):
            rows = np.nonzero((inst == i).any(axis=1))[0]
            feet.append(rows.max())
            heights.append(rows.max() - rows.min() + 1)
    assert len(feet) >= 10
    assert np.corrcoef(feet, heights)[0, 1] > 0.6


def test_scene_seeds_differ_between_splits_and_indices():
    seeds = {scene_seed(0, split, i) for split in ('train', 'val') for i in range(1000)}
    assert len(seeds) == 2000
    assert scene_seed(3, 'train', 7) == 3 * 1_000_003 + 7


def _mtimes(root: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob('*') if p.is_file()}


def test_written_layout_and_content(tmp_path):
    root = tmp_path / 'synth'
    summary = write_synthetic_dataset(str(root), num_train=3, num_val=2, seed=4, **SMALL)
    assert summary['generated'] is True
    for split, n in (('train', 3), ('val', 2)):
        for i in range(n):
            img = cv2.imread(str(root / 'images' / split / f'{i:06d}.jpg'), cv2.IMREAD_COLOR)
            sem = cv2.imread(str(root / 'semantic' / split / f'{i:06d}.png'), cv2.IMREAD_UNCHANGED)
            inst = cv2.imread(str(root / 'instances' / split / f'{i:06d}.png'), cv2.IMREAD_UNCHANGED)
            ref_img, ref_sem, ref_inst = generate_scene(scene_seed(4, split, i), **SMALL)
            assert inst.dtype == np.uint16 and sem.dtype == np.uint8
            np.testing.assert_array_equal(sem, ref_sem)
            np.testing.assert_array_equal(inst, ref_inst)
            error = np.abs(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(int) - ref_img).mean()
            assert error < 8  # JPEG q95 of a noisy image
            assert np.abs(img.astype(int) - ref_img).mean() > 2 * error  # written as BGR, as cv2 expects
    assert (root / 'train.txt').read_text().splitlines() == [f'images/train/{i:06d}.jpg' for i in range(3)]
    assert (root / 'val.txt').read_text().splitlines() == [f'images/val/{i:06d}.jpg' for i in range(2)]
    classes = json.loads((root / 'classes.json').read_text())
    assert classes['classes'] == list(CLASSES) and classes['palette'] == [list(c) for c in PALETTE]
    assert classes['thing_classes'] == list(THING_CLASSES) and classes['ignore_index'] == 255
    meta = json.loads((root / 'meta.json').read_text())
    assert (meta['num_train'], meta['num_val'], meta['width'], meta['height'], meta['seed']) == (3, 2, 96, 64, 4)


def test_second_call_rewrites_nothing(tmp_path):
    root = tmp_path / 'synth'
    write_synthetic_dataset(str(root), num_train=2, num_val=1, seed=1, **SMALL)
    before = _mtimes(root)
    summary = write_synthetic_dataset(str(root), num_train=2, num_val=1, seed=1, **SMALL)
    assert summary['generated'] is False
    assert _mtimes(root) == before


def test_interrupted_generation_is_redone(tmp_path):
    root = tmp_path / 'synth'
    write_synthetic_dataset(str(root), num_train=3, num_val=1, seed=2, **SMALL)
    reference = (root / 'images' / 'train' / '000002.jpg').read_bytes()
    # An interrupted run: meta.json not yet written, the last image missing, another one truncated.
    (root / 'meta.json').unlink()
    (root / 'images' / 'train' / '000002.jpg').unlink()
    (root / 'semantic' / 'train' / '000001.png').write_bytes(b'')
    summary = write_synthetic_dataset(str(root), num_train=3, num_val=1, seed=2, **SMALL)
    assert summary['generated'] is True
    assert (root / 'images' / 'train' / '000002.jpg').read_bytes() == reference
    assert cv2.imread(str(root / 'semantic' / 'train' / '000001.png'), cv2.IMREAD_UNCHANGED) is not None
    assert (root / 'meta.json').is_file()


def test_missing_file_with_complete_meta_is_regenerated(tmp_path):
    root = tmp_path / 'synth'
    write_synthetic_dataset(str(root), num_train=2, num_val=1, seed=2, **SMALL)
    (root / 'instances' / 'val' / '000000.png').unlink()
    assert write_synthetic_dataset(str(root), num_train=2, num_val=1, seed=2, **SMALL)['generated'] is True
    assert (root / 'instances' / 'val' / '000000.png').is_file()


def test_other_parameters_need_overwrite_and_stale_files_go(tmp_path):
    root = tmp_path / 'synth'
    write_synthetic_dataset(str(root), num_train=3, num_val=1, seed=2, **SMALL)
    with pytest.raises(FileExistsError, match=r'num_train: 3 -> 2, seed: 2 -> 3\).*overwrite'):
        write_synthetic_dataset(str(root), num_train=2, num_val=1, seed=3, **SMALL)
    summary = write_synthetic_dataset(str(root), num_train=2, num_val=1, seed=3, overwrite=True, **SMALL)
    assert summary['generated'] is True
    assert sorted(os.listdir(root / 'images' / 'train')) == ['000000.jpg', '000001.jpg']
    assert json.loads((root / 'meta.json').read_text())['seed'] == 3


def _load_cli():
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools', 'gen_synthetic_streets.py')
    spec = importlib.util.spec_from_file_location('gen_synthetic_streets', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_and_reports(tmp_path, capsys):
    cli = _load_cli()
    args = ['--out', str(tmp_path / 'cli'), '--num-train', '2', '--num-val', '1', '--width', '64', '--height',
            '48', '--seed', '9', '--quiet']
    cli.main(args)
    assert 'wrote 3 scenes' in capsys.readouterr().out
    assert len(os.listdir(tmp_path / 'cli' / 'images' / 'train')) == 2
    cli.main(args)
    assert 'nothing written' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='seed: 9 -> 8.*--overwrite'):
        cli.main(args[:-3] + ['--seed', '8', '--quiet'])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['--help'])
    assert exit_info.value.code == 0 and '--num-train' in capsys.readouterr().out

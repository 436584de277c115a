"""Bad files never stop a run (issue 15, point 2): every reader goes through the robust loader, a file that fails once
is quarantined for the run (not opened again, by any data worker), listed once with its reason in
<work_dir>/bad_files.txt and counted in the log."""
import glob
import io
import os
import os.path as osp
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from conftest import load_tool, tiny_runner_cfg
from mmengine.config import Config
from PIL import Image

from multisiam_mm.datasets import UnlabeledImageDataset
from multisiam_mm.datasets.transforms import RobustLoadImage, robust_loading
from multisiam_mm.datasets.transforms.robust_loading import (
    BAD_FILES_ENV,
    Quarantine,
    load_images,
    record_bad_files,
)
from multisiam_mm.evaluation.cluster_maps import read_images


def _encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _scene(seed: int, w: int = 96, h: int = 64) -> np.ndarray:
    """A smooth RGB uint8 (h, w, 3) picture, different per seed."""
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png() -> bytes:
    """A 71 byte PNG whose header claims 100000 x 100000 RGB pixels (a decompression bomb)."""
    header = struct.pack('>IIBBBBB', 100_000, 100_000, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', header) + _png_chunk(b'IDAT', zlib.compress(b'\0' * 64))
            + _png_chunk(b'IEND', b''))


def write_bad_kinds(folder) -> dict:
    """Every kind of bad file (name -> the first words of the reason it is rejected with), written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = _encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)), 'JPEG')
    (folder / 'zero_byte.jpg').write_bytes(b'')
    (folder / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (folder / 'text_named.jpg').write_bytes(b'not a picture, a text file with an image name\n' * 10)
    (folder / 'folder_named.jpg').mkdir()
    os.symlink(str(folder / 'no_such_target.jpg'), str(folder / 'broken_link.jpg'))
    (folder / 'bomb.png').write_bytes(bomb_png())
    return {'zero_byte.jpg': 'empty file', 'truncated.jpg': 'cannot decode', 'text_named.jpg': 'cannot decode',
            'folder_named.jpg': 'cannot read', 'broken_link.jpg': 'cannot read',
            'bomb.png': 'cannot decode (DecompressionBombError'}


def write_accepted_kinds(folder) -> list:
    """Unusual files the loader accepts: CMYK JPEG, 16-bit grey PNG, 8-bit grey PNG, and two plain JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'cmyk.jpg').write_bytes(_encoded(Image.fromarray(_scene(1)).convert('CMYK'), 'JPEG', quality=95))
    cv2.imwrite(str(folder / 'gray16.png'), (_scene(2)[..., 0].astype(np.uint16) * 257))
    cv2.imwrite(str(folder / 'gray8.png'), _scene(3)[..., 0])
    for i in (4, 5):
        cv2.imwrite(str(folder / f'plain{i}.jpg'), _scene(i))
    return ['cmyk.jpg', 'gray16.png', 'gray8.png', 'plain4.jpg', 'plain5.jpg']


def read_bad_files(path) -> dict:
    lines = open(path).read().splitlines()
    entries = dict(line.split('\t', 1) for line in lines)
    assert len(entries) == len(lines), 'duplicate lines'
    return entries


# ---------------------------------------------------------------- the quarantine file

def test_quarantine_is_shared_through_its_file_without_duplicates(tmp_path):
    path = str(tmp_path / 'work' / 'bad_files.txt')
    first, second = Quarantine(path), Quarantine(path)
    odd = str(tmp_path / 'tab\there' / 'new\nline.jpg')
    assert first.add(str(tmp_path / 'a.jpg'), 'cannot read (FileNotFoundError)')
    assert first.add(odd, 'reason with\ttab')
    assert str(tmp_path / 'a.jpg') in second and odd in second  # the other process's view, through the file
    assert not second.add(str(tmp_path / 'a.jpg'), 'again') and not first.add(odd, 'again')
    assert len(open(path).read().splitlines()) == 2 and len(second) == 2
    assert second.reasons[odd] == 'reason with\ttab'
    with open(path, 'a') as f:  # a line being written by another process is not read half
        f.write(str(tmp_path / 'half'))
    assert str(tmp_path / 'half') not in Quarantine(path)


def test_record_bad_files_sets_and_restores_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(BAD_FILES_ENV, raising=False)
    with record_bad_files(str(tmp_path)) as path:
        assert os.environ[BAD_FILES_ENV] == path == str(tmp_path / 'bad_files.txt')
    assert BAD_FILES_ENV not in os.environ


# ---------------------------------------------------------------- the pipeline loader

def test_a_rejected_file_is_not_opened_or_warned_again(tmp_path, monkeypatch):
    bad = tmp_path / 'truncated.jpg'
    write_bad_kinds(tmp_path / 'kinds')
    bad.write_bytes((tmp_path / 'kinds' / 'truncated.jpg').read_bytes())
    opened, logged = [], []
    real_get = robust_loading.get
    monkeypatch.setattr(robust_loading, 'get', lambda p, **kw: opened.append(p) or real_get(p, **kw))
    monkeypatch.setattr(robust_loading, 'print_log', lambda msg, **kw: logged.append(msg))
    with record_bad_files(str(tmp_path / 'work')) as listing:
        transform = RobustLoadImage()
        for _ in range(3):
            assert transform(dict(img_path=str(bad))) is None
    assert opened == [str(bad)] and len(logged) == 1 and 'quarantined' in logged[0]
    assert transform.skipped == 2 and sum(transform.rejected.values()) == 1
    assert list(read_bad_files(listing)) == [str(bad)]


def _count_opens(tmp_path, monkeypatch) -> str:
    """Record every file the loader opens, from any process, in a file; return its path."""
    log = str(tmp_path / 'opened.txt')
    real_get = robust_loading.get

    def counting_get(path, **kwargs):
        with open(log, 'a') as f:
            f.write(f'{path}\n')
        return real_get(path, **kwargs)

    monkeypatch.setattr(robust_loading, 'get', counting_get)  # inherited by the forked data workers
    return log


def test_data_workers_of_later_epochs_skip_a_quarantined_file_unopened(tmp_path, monkeypatch):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f'{i}.png'), _scene(i))
    (folder / '0.png').write_bytes(b'')  # index 0: bad
    opened = _count_opens(tmp_path, monkeypatch)
    with record_bad_files(str(tmp_path / 'work')) as listing:
        dataset = UnlabeledImageDataset(data_root=str(folder), pipeline=[RobustLoadImage(min_size=8)])
        loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=2, persistent_workers=False,
                                             collate_fn=lambda batch: batch)
        for _ in range(3):  # three epochs, each with two fresh worker processes
            assert len([s for batch in loader for s in batch]) == 6
    reads = open(opened).read().splitlines()
    assert reads.count(str(folder / '0.png')) == 1  # opened by one worker in epoch 1, never again
    assert read_bad_files(listing) == {str(folder / '0.png'): 'empty file (0 bytes)'}


# ---------------------------------------------------------------- readers outside the pipeline

def test_load_images_skips_every_bad_kind_and_accepts_unusual_modes(tmp_path):
    reasons = write_bad_kinds(tmp_path / 'imgs')
    accepted = write_accepted_kinds(tmp_path / 'imgs')
    paths = [str(tmp_path / 'imgs' / n) for n in [*reasons, *accepted]]
    with record_bad_files(str(tmp_path / 'work')) as listing:
        kept = [osp.basename(p) for p, img in load_images(paths) if img.shape == (64, 96, 3)]
        assert kept == accepted
        listed = read_bad_files(listing)
        assert {osp.basename(p) for p in listed} == set(reasons)
        for path, reason in listed.items():
            assert reason.startswith(reasons[osp.basename(path)]), (path, reason)
        kept_again, images = read_images(paths, (48, 32), limit=2)  # quarantined ones are not tried again
    assert [osp.basename(p) for p in kept_again] == accepted[:2] and images[0].shape == (32, 48, 3)
    assert len(read_bad_files(listing)) == len(reasons)


def test_visualize_clusters_skips_bad_files(tmp_path, capsys):
    write_bad_kinds(tmp_path / 'imgs')
    write_accepted_kinds(tmp_path / 'imgs')
    out = str(tmp_path / 'grid.png')
    load_tool('visualize_clusters').main(['--checkpoints', 'random', '--images', str(tmp_path / 'imgs'),
                                           '--num-images', '3', '--size', '64', '48', '--out', out])
    assert cv2.imread(out).shape[0] == 18 + 3 * (48 + 2)  # caption strip + three rows


# ---------------------------------------------------------------- a whole run

def test_run_with_every_bad_kind_among_the_hooks_images(tmp_path):
    """The first images of the training list are bad: ClusterMapHook takes the next good ones, training goes on,
    every bad file is listed once with its reason and counted in the log."""
    reasons = write_bad_kinds(tmp_path / 'frames')
    accepted = write_accepted_kinds(tmp_path / 'frames')
    list_file = tmp_path / 'frames' / 'list.txt'
    list_file.write_text(''.join(f'{n}\n' for n in [*reasons, *accepted]))
    work = tmp_path / 'work'
    cfg = tiny_runner_cfg('', str(work), max_iters=2, ckpt_interval=2)
    cfg['train_dataloader'].update(num_workers=2, persistent_workers=True)
    cfg['train_dataloader']['dataset']['pipeline'][0] = dict(type='RobustLoadImage')
    cfg['custom_hooks'] = [dict(type='ClusterMapHook', interval=1, num_images=4, size=(64, 48))]
    cfg['log_level'] = 'INFO'
    cfg_path = str(tmp_path / 'tiny.py')
    Config(cfg).dump(cfg_path)
    load_tool('train').main([cfg_path, '--images', str(list_file), '--work-dir', str(work)])

    maps = sorted(glob.glob(str(work / 'vis_data' / 'cluster_maps' / '*.png')))
    assert [osp.basename(p) for p in maps] == ['iter_000001.png', 'iter_000002.png']
    assert cv2.imread(maps[0]).shape == (48, 4 * 64 + 3 * 2, 3)  # four good images, the bad ones replaced
    listed = read_bad_files(work / 'bad_files.txt')
    assert sorted(osp.basename(p) for p in listed) == sorted(reasons)
    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert f'bad files: {len(reasons)} quarantined, listed in {work / "bad_files.txt"}' in log
    assert (work / 'iter_2.pth').is_file()
    assert BAD_FILES_ENV not in os.environ


def test_bad_files_hook_reports_files_left_by_an_earlier_run(tmp_path, tiny_streets):
    from mmengine.runner import Runner
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'bad_files.txt').write_text(f'{tmp_path / "gone.jpg"}\tcannot read (FileNotFoundError)\n')
    cfg = tiny_runner_cfg(tiny_streets, str(work), max_iters=1, ckpt_interval=1)
    cfg['custom_hooks'] = [dict(type='BadFilesHook')]
    cfg['log_level'] = 'INFO'
    Runner.from_cfg(Config(cfg)).train()
    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert f'bad files: 1 listed in {work / "bad_files.txt"} by an earlier run are skipped' in log
    assert BAD_FILES_ENV not in os.environ  # the hook set it for the run only


@pytest.mark.parametrize('loop, workers, warned', [('ResumableIterBasedTrainLoop', 2, False),
                                                   ('IterBasedTrainLoop', 0, False),
                                                   ('IterBasedTrainLoop', 2, True)])
def test_bad_files_hook_says_when_iteration_workers_cannot_share(tmp_path, tiny_streets, loop, workers, warned):
    """The project's loops start their workers after before_run, mmengine's IterBasedTrainLoop before it."""
    from mmengine.runner import Runner
    cfg = tiny_runner_cfg(tiny_streets, str(tmp_path), max_iters=1, ckpt_interval=1)
    cfg['train_dataloader']['num_workers'] = workers
    if loop == 'IterBasedTrainLoop':
        cfg['train_dataloader']['sampler'] = dict(type='InfiniteSampler', shuffle=True)
    cfg['train_cfg'] = dict(type=loop, max_iters=1)
    cfg['custom_hooks'] = [dict(type='BadFilesHook')]
    cfg['log_level'] = 'INFO'
    Runner.from_cfg(Config(cfg)).train()
    log = open(glob.glob(str(tmp_path / '*' / '*.log'))[0]).read()
    assert ('data workers started before this hook' in log) == warned
    assert 'bad files: none' in log


# ---------------------------------------------------------------- probes and evaluation tools

@pytest.fixture
def streets_with_bad_files(tiny_streets, tmp_path):
    """A copy of the tiny synthetic scenes with a truncated val image and an empty training image."""
    import shutil
    root = tmp_path / 'streets'
    shutil.copytree(tiny_streets, root)
    val = root / 'images' / 'val' / '000001.jpg'
    val.write_bytes(val.read_bytes()[:200])
    (root / 'images' / 'train' / '000003.jpg').write_bytes(b'')
    return root


def test_probe_leaves_unreadable_val_images_out_of_the_score(streets_with_bad_files, tmp_path, capsys):
    probe = load_tool('probe_segmentation')
    work = tmp_path / 'probe'
    result = probe.main(['--random-init', '--data-root', str(streets_with_bad_files), '--work-dir', str(work),
                         '--iters', '2', '--batch-size', '2', '--crop', '64', '--scale', '96', '64', '--workers', '0',
                         '--log-interval', '1'])
    out = capsys.readouterr().out
    assert (f'[probe] 1 of 4 val images unreadable, left out of the score (listed in {work / "bad_files.txt"})'
            in out)
    assert np.isfinite(result['mIoU'])
    assert open(work / 'val_images.txt').read().split() == ['000000', '000002', '000003']
    assert str(streets_with_bad_files / 'images' / 'val' / '000001.jpg') in read_bad_files(work / 'bad_files.txt')


def test_object_discovery_skips_an_unreadable_image(streets_with_bad_files, capsys):
    tool = load_tool('eval_object_discovery')
    metrics = tool.main(['--data-root', str(streets_with_bad_files), '--depth', '18', '--size', '64', '--ks', '1', '2',
                         '--device', 'cpu'])
    assert metrics['object_discovery/num_images'] == 3
    assert '| ResNet-18 (random init) | 3 |' in capsys.readouterr().out

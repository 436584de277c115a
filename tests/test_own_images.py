"""Own images are a first-class path (issue 15, point 1): one image-listing rule, tools/train.py --images and
tools/demo.py --images on any folder tree or list file, and nothing ever written into the user's data folder."""
import hashlib
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT, apply_cfg_options, load_tool, tiny_runner_cfg
from mmengine.config import Config

from multisiam_mm.datasets import UnlabeledImageDataset
from multisiam_mm.datasets.image_listing import (
    IMAGE_EXTENSIONS,
    dataset_overrides,
    is_image_name,
    list_images,
    scan_image_folder,
)


def _image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), (96, 64), interpolation=cv2.INTER_CUBIC)


@pytest.fixture
def frames(tmp_path):
    """A user's folder: nested folders, mixed-case extensions, a symlinked file and folder, a link loop, non-image
    files, hidden files, a folder named like an image. Returns (root, the image paths expected, sorted)."""
    root = tmp_path / 'my_frames'
    (root / 'day1' / 'cam_front').mkdir(parents=True)
    (root / 'day2').mkdir()
    (root / '.thumbs').mkdir()
    names = ['a.JPG', 'b.jpeg', 'day1/c.Png', 'day1/cam_front/d.jpg', 'day2/e.TIFF', 'day2/f.webp', 'g.bmp']
    for i, name in enumerate(names):
        ext = osp.splitext(name)[1].lower()
        ok, data = cv2.imencode('.tif' if ext == '.tiff' else ext, _image(i))
        (root / name).write_bytes(data.tobytes())
    for junk in ('notes.txt', 'day1/meta.json', 'day2/video.mp4', 'README', '.hidden.jpg', '.thumbs/t.jpg'):
        (root / junk).write_bytes(b'x')
    (root / 'day2' / 'not_a_file.jpg').mkdir()  # a folder named like an image: walked into, not listed
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    cv2.imwrite(str(outside / 'h.png'), _image(9))
    os.symlink(str(outside), str(root / 'linked_folder'))
    os.symlink(str(root / 'a.JPG'), str(root / 'day2' / 'link_to_a.jpg'))
    os.symlink(str(root), str(root / 'day1' / 'loop'))  # a link to an ancestor: scanned once
    expected = sorted([str(root / n) for n in names] + [str(root / 'linked_folder' / 'h.png'),
                                                        str(root / 'day2' / 'link_to_a.jpg')])
    return root, expected


def _snapshot(folder) -> dict:
    """Every path under ``folder`` (links not followed) with its type, size and content hash."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = osp.join(dirpath, name)
            if osp.islink(path):
                state[path] = ('link', os.readlink(path))
            elif osp.isfile(path):
                state[path] = ('file', hashlib.sha1(open(path, 'rb').read()).hexdigest(), os.stat(path).st_mtime_ns)
            else:
                state[path] = ('dir', )
    return state


# ---------------------------------------------------------------- one listing rule

def test_folder_tree_listing(frames):
    root, expected = frames
    assert scan_image_folder(str(root)) == expected
    assert list_images(str(root)) == expected and list_images([str(root)], limit=3) == expected[:3]


def test_one_extension_set_case_insensitive():
    assert IMAGE_EXTENSIONS == ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
    assert all(is_image_name(n) for n in ('x.JPG', 'x.Jpeg', 'a/b.PNG', 'y.TiF'))
    assert not any(is_image_name(n) for n in ('x.txt', 'x.jpg.txt', '.x.jpg', 'jpg'))


def test_list_file_and_single_files(tmp_path, frames):
    root, expected = frames
    (root / 'subset.txt').write_text('# my pick\n\na.JPG\n  day1/c.Png \n/abs/elsewhere.jpg\n')
    assert list_images(str(root / 'subset.txt')) == [str(root / 'a.JPG'), str(root / 'day1/c.Png'),
                                                     '/abs/elsewhere.jpg']
    assert list_images([str(root / 'g.bmp'), str(root / 'day2')]) == [str(root / 'g.bmp')] + [
        p for p in expected if p.startswith(str(root / 'day2'))]
    with pytest.raises(FileNotFoundError, match='neither a folder, an image file nor a list file'):
        list_images(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files'):
        list_images(str(tmp_path / 'empty'))


def test_the_project_has_no_other_image_listing():
    """No module lists images its own way: no extension set or case-folded suffix test outside image_listing."""
    offenders = []
    for folder in ('multisiam_mm', 'tools', 'benchmarks'):
        for dirpath, _, files in os.walk(osp.join(ROOT, folder)):
            for name in files:
                path = osp.join(dirpath, name)
                if not name.endswith('.py') or path.endswith(osp.join('datasets', 'image_listing.py')):
                    continue
                text = open(path).read()
                if any(k in text for k in ('IMG_EXTENSIONS', 'IMAGE_SUFFIXES', 'IMAGE_EXTENSIONS =',
                                           'lower().endswith(')):
                    offenders.append(osp.relpath(path, ROOT))
    assert offenders == []


# ---------------------------------------------------------------- tools/train.py --images

def test_dataset_overrides(frames, tmp_path):
    root, _ = frames
    assert dataset_overrides(str(root)) == dict(data_root=str(root), data_prefix='', ann_file='')
    (tmp_path / 'list.txt').write_text('my_frames/a.JPG\n')
    assert dataset_overrides(str(tmp_path / 'list.txt')) == dict(data_root=str(tmp_path), data_prefix='',
                                                                 ann_file=str(tmp_path / 'list.txt'))
    with pytest.raises(ValueError, match='one image file is not a training set'):
        dataset_overrides(str(root / 'a.JPG'))
    with pytest.raises(FileNotFoundError, match='no such folder or list file'):
        dataset_overrides(str(tmp_path / 'nothing'))


def _tiny_config(tmp_path) -> str:
    """The tiny MultiSiam config, its data pointing at the synthetic default (a list file that does not exist)."""
    cfg = tiny_runner_cfg('data/synthetic_streets', str(tmp_path / 'unused'), max_iters=2, ckpt_interval=2)
    cfg['train_dataloader']['dataset']['pipeline'][0] = dict(type='RobustLoadImage')
    path = str(tmp_path / 'tiny.py')
    Config(cfg).dump(path)
    return path


@pytest.mark.parametrize('source', ['folder', 'list'])
def test_train_tool_trains_on_a_folder_tree_or_a_list_and_writes_nothing_there(frames, tmp_path, source):
    root, expected = frames
    if source == 'list':
        (root / 'pick.txt').write_text('a.JPG\nday1/c.Png\nday2/f.webp\n')
        expected = [str(root / n) for n in ('a.JPG', 'day1/c.Png', 'day2/f.webp')]
    before = _snapshot(root)
    train = load_tool('train')
    work = tmp_path / 'work'
    images = str(root / 'pick.txt') if source == 'list' else str(root)
    args = train.parse_args([_tiny_config(tmp_path), '--images', images, '--work-dir', str(work)])
    cfg = train.merge_args(Config.fromfile(args.config), args)
    dataset = UnlabeledImageDataset(**{k: v for k, v in cfg.train_dataloader.dataset.items()
                                       if k not in ('type', 'pipeline')})
    assert [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))] == expected
    train.main([args.config, '--images', images, '--work-dir', str(work)])
    assert (work / 'iter_2.pth').is_file() and not (work / 'bad_files.txt').exists()
    assert _snapshot(root) == before


def test_mim_users_point_a_config_at_a_folder_with_cfg_options(frames, tmp_path):
    """What docs/own_data.md gives `mim train` users: data_root=DIR and an empty ann_file."""
    root, expected = frames
    cfg = apply_cfg_options(Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'multisiam_synthetic_demo.py')),
                            [f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.ann_file='])
    fields = {k: v for k, v in cfg.train_dataloader.dataset.items() if k not in ('type', 'pipeline')}
    dataset = UnlabeledImageDataset(**fields)
    assert [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))] == expected


@pytest.mark.parametrize('what, message', [
    ('missing', "error: --images {p}: no such folder or list file; give a folder of images (searched recursively) "
                "or a text file with one image path per line"),
    ('one_image', "error: --images {p}: one image file is not a training set; give its folder or a list file with "
                  "one image path per line"),
])
def test_train_tool_bad_images_argument_is_one_line(frames, tmp_path, capsys, what, message):
    root, _ = frames
    path = str(tmp_path / 'nowhere') if what == 'missing' else str(root / 'a.JPG')
    train = load_tool('train')
    with pytest.raises(SystemExit) as exit_info:  # what `python tools/train.py ...` does (its __main__: run_cli)
        train.run_cli(train.main, [_tiny_config(tmp_path), '--images', path, '--work-dir', str(tmp_path / 'w')])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip() == message.format(p=path)
    assert not (tmp_path / 'w').exists()


# ---------------------------------------------------------------- tools/demo.py

def test_demo_refuses_to_write_synthetic_scenes_into_a_users_folder(frames, tmp_path, capsys):
    root, _ = frames
    before = _snapshot(root)
    demo = load_tool('demo')
    with pytest.raises(SystemExit) as exit_info:  # what `python tools/demo.py ...` does (its __main__: run_cli)
        demo.run_cli(demo.main, ['--data-root', str(root), '--work-dir', str(tmp_path / 'w'), '--num-images', '4',
                                 '--max-iters', '1'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f'error: --data-root: {root} holds files that are not a synthetic street-scene set (e.g. '
                   '.hidden.jpg, .thumbs, README); the generator writes only into an empty folder or one it made: '
                   f'choose another folder; to train on the images there: tools/demo.py --images {root}')
    assert _snapshot(root) == before and not (tmp_path / 'w').exists()


def test_generator_keeps_its_own_folders_and_refuses_others(tmp_path):
    from multisiam_mm.datasets import write_synthetic_dataset
    root = tmp_path / 'synthetic'
    write_synthetic_dataset(str(root), num_train=2, num_val=1, width=64, height=48)
    assert not write_synthetic_dataset(str(root), num_train=2, num_val=1, width=64, height=48)['generated']
    (root / 'images' / 'train' / 'my_photo.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError, match=r'not a synthetic street-scene set \(e.g. .*my_photo\.jpg\)'):
        write_synthetic_dataset(str(root), num_train=2, num_val=1, width=64, height=48, overwrite=True)
    assert (root / 'images' / 'train' / 'my_photo.jpg').read_bytes() == b'x'


@pytest.mark.slow
def test_demo_trains_on_own_images(frames, tmp_path):
    root, _ = frames
    before = _snapshot(root)
    work = tmp_path / 'work'
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--images', str(root), '--work-dir',
                          str(work), '--max-iters', '2'], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f'[demo] training on your images: {root}' in res.stdout
    assert f'[demo] checkpoint: {work / "iter_2.pth"}' in res.stdout
    assert _snapshot(root) == before
    assert (work / 'vis_data' / 'cluster_maps' / 'iter_000002.png').is_file()

"""Runs survive bad files, kills during a checkpoint save and NaN losses (issue 7, points 4-6)."""
import io
import os.path as osp
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_model, tiny_runner_cfg
from mmcv.transforms import LoadImageFromFile
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from PIL import Image

from multisiam_mm.datasets import UnlabeledImageDataset
from multisiam_mm.datasets.transforms import RobustLoadImage, robust_loading
from multisiam_mm.engine.hooks import NonFiniteLossError
from multisiam_mm.models.algorithms.multisiam import MultiSiam


def gradient_rgb(w: int = 48, h: int = 40) -> np.ndarray:
    """An RGB uint8 (h, w, 3) image with distinct channels: x ramp, y ramp, constant 200."""
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    return np.stack([x, y, np.full_like(x, 200)], axis=2).astype(np.uint8)


def noise_rgb(w: int = 48, h: int = 40) -> np.ndarray:
    """Incompressible RGB uint8 noise, so that a file cut in half is really missing data."""
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def load(tmp_path, name: str, data: bytes, **kwargs):
    path = tmp_path / name
    path.write_bytes(data)
    transform = RobustLoadImage(**kwargs)
    return transform, transform(dict(img_path=str(path)))


BAD_FILES = {
    'zero_byte.jpg': lambda: b'',
    'not_an_image.png': lambda: b'this is a text file, not a picture\n' * 20,
    'truncated.jpg': lambda: half(encoded(Image.fromarray(noise_rgb()), 'JPEG')),
    'truncated.png': lambda: half(encoded(Image.fromarray(noise_rgb()), 'PNG')),
    'tiny.png': lambda: encoded(Image.fromarray(gradient_rgb(20, 12)), 'PNG'),
}


@pytest.mark.parametrize('name', sorted(BAD_FILES))
def test_bad_file_is_rejected_counted_and_logged(tmp_path, monkeypatch, name):
    logged = []
    monkeypatch.setattr(robust_loading, 'print_log', lambda msg, **kw: logged.append(msg))
    transform, out = load(tmp_path, name, BAD_FILES[name]())
    assert out is None
    assert sum(transform.rejected.values()) == 1 and transform.loaded == 0
    assert len(logged) == 1 and str(tmp_path / name) in logged[0] and '1 rejected' in logged[0]


def test_missing_file_is_rejected(tmp_path):
    transform = RobustLoadImage()
    assert transform(dict(img_path=str(tmp_path / 'gone.jpg'))) is None
    assert list(transform.rejected) == ['cannot read']


def test_tiny_images_are_accepted_with_min_size_zero(tmp_path):
    _, out = load(tmp_path, 'tiny.png', BAD_FILES['tiny.png'](), min_size=0)
    assert out['img'].shape == (12, 20, 3)


def test_good_png_loads_exactly_as_load_image_from_file(tmp_path):
    path = str(tmp_path / 'good.png')
    cv2.imwrite(path, gradient_rgb()[..., ::-1])
    ours = RobustLoadImage()(dict(img_path=path))
    ref = LoadImageFromFile()(dict(img_path=path))
    assert ours['img'].dtype == np.uint8 and np.array_equal(ours['img'], ref['img'])
    assert ours['img_shape'] == ref['img_shape'] == ours['ori_shape'] == (40, 48)
    assert ours['img_path'] == path


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = gradient_rgb()[..., 0]
    _, out = load(tmp_path, 'gray.png', encoded(Image.fromarray(gray, 'L'), 'PNG'))
    assert out['img'].shape == (40, 48, 3)
    for c in range(3):
        assert np.array_equal(out['img'][..., c], gray)


def test_rgba_drops_alpha(tmp_path):
    rgb = gradient_rgb()
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    _, out = load(tmp_path, 'rgba.png', encoded(Image.fromarray(rgba, 'RGBA'), 'PNG'))
    assert np.array_equal(out['img'], rgb[..., ::-1])


def test_cmyk_jpeg_gives_the_right_colours(tmp_path):
    red = np.zeros((40, 48, 3), np.uint8)
    red[..., 0] = 220
    _, out = load(tmp_path, 'cmyk.jpg', encoded(Image.fromarray(red).convert('CMYK'), 'JPEG', quality=95))
    b, g, r = out['img'].reshape(-1, 3).mean(axis=0)
    assert out['img'].shape == (40, 48, 3) and abs(r - 220) < 10 and b < 10 and g < 10


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path):
    values = (np.arange(40 * 48, dtype=np.uint32).reshape(40, 48) * 34).astype(np.uint16)  # up to 65246
    gray_path, rgb_path = str(tmp_path / 'gray16.png'), str(tmp_path / 'rgb16.png')
    cv2.imwrite(gray_path, values)
    cv2.imwrite(rgb_path, np.stack([values, values[::-1], 65535 - values], axis=2))  # written as BGR
    expected = (values >> 8).astype(np.uint8)
    gray = RobustLoadImage()(dict(img_path=gray_path))['img']
    rgb = RobustLoadImage()(dict(img_path=rgb_path))['img']
    assert gray.dtype == np.uint8 and np.array_equal(gray[..., 1], expected)
    assert np.abs(rgb.astype(int) - np.stack([expected, expected[::-1], 255 - expected], axis=2)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)  # landscape with a white block in the top-left corner
    img[:10, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    _, out = load(tmp_path, 'rotated.jpg', encoded(Image.fromarray(img), 'JPEG', exif=exif, quality=95))
    assert out['img'].shape == (60, 40, 3)  # portrait now
    assert out['img'][:10, -10:].mean() > 200 and out['img'][:10, :10].mean() < 50  # top-left went top-right


@pytest.mark.parametrize('orientation', [1, 3, 6])
@pytest.mark.parametrize('kind', ['colour-420', 'colour-444', 'grey'])
def test_complete_jpegs_are_decoded_by_opencv_to_pillows_pixels(kind, orientation):
    """The OpenCV path (complete grey / colour JPEGs) gives Pillow's pixels, bit for bit, at every DCT scale."""
    img = cv2.GaussianBlur(noise_rgb(203, 117), (0, 0), 2)  # odd sizes: partial DCT blocks at every scale
    pil = Image.fromarray(img[..., 0] if kind == 'grey' else img)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(pil, 'JPEG', quality=90, exif=exif, subsampling=2 if kind == 'colour-420' else 0)
    for factor in (1, 2, 4, 8):
        fast = robust_loading._opencv_jpeg(data, factor)
        assert fast is not None, factor
        assert np.array_equal(fast, robust_loading._pillow_bgr(data, factor)), factor
        assert np.array_equal(robust_loading.decode_image(data, factor=factor), fast)


def test_other_files_are_left_to_pillow(monkeypatch):
    """Truncated, CMYK, non-JPEG, trailing-data and oversized files skip the OpenCV path; Pillow still decides."""
    jpeg = encoded(Image.fromarray(noise_rgb()), 'JPEG', quality=90)
    cmyk = encoded(Image.fromarray(noise_rgb()).convert('CMYK'), 'JPEG', quality=90)
    png = encoded(Image.fromarray(noise_rgb()), 'PNG')
    assert robust_loading._jpeg_frame(jpeg) == (40, 48, 3) and robust_loading._jpeg_frame(cmyk) == (40, 48, 4)
    for data in (half(jpeg), cmyk, png, jpeg + b'camera trailer'):
        assert robust_loading._opencv_jpeg(data, 1) is None
    with pytest.raises(robust_loading.ImageRejected):
        robust_loading.decode_image(half(jpeg))
    assert np.array_equal(robust_loading.decode_image(jpeg + b'camera trailer'), robust_loading.decode_image(jpeg))
    assert robust_loading.decode_image(cmyk).shape == robust_loading.decode_image(png).shape == (40, 48, 3)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 40 * 48 // 4)  # Pillow's decompression-bomb limit applies
    assert robust_loading._opencv_jpeg(jpeg, 1) is None
    with pytest.raises(robust_loading.ImageRejected, match='DecompressionBomb'):
        robust_loading.decode_image(jpeg)


def write_mixed_folder(folder) -> int:
    """Three good PNGs and every kind of bad file; returns the number of good ones."""
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'good{i}.png'), gradient_rgb() + i)
    for name, make in BAD_FILES.items():
        (folder / name).write_bytes(make())
    return 3


def test_dataset_skips_bad_files_through_rand_another(tmp_path):
    good = write_mixed_folder(tmp_path / 'mixed')
    ds = UnlabeledImageDataset(data_root=str(tmp_path / 'mixed'), pipeline=[RobustLoadImage()])
    assert len(ds) == good + len(BAD_FILES)
    np.random.seed(0)
    paths = {ds[i]['img_path'] for i in range(len(ds))}  # a bad index is replaced by a random other one
    assert paths and all(osp.basename(p).startswith('good') for p in paths)
    transform = ds.pipeline.transforms[0]
    assert transform.loaded == len(ds) and sum(transform.rejected.values()) >= len(BAD_FILES)


def test_unreadable_dataset_fails_with_a_clear_message(tmp_path):
    folder = tmp_path / 'bad'
    folder.mkdir()
    for i in range(4):
        (folder / f'{i}.jpg').write_bytes(b'')
    ds = UnlabeledImageDataset(data_root=str(folder), pipeline=[RobustLoadImage(max_consecutive=20)])
    with pytest.raises(RuntimeError, match='20 images in a row could not be loaded.*data looks unreadable'):
        ds[0]


# ---------------------------------------------------------------- atomic checkpoints

def partial_then_fail(obj, f, *args, **kwargs) -> None:
    """A torch.save that dies half-way: writes some bytes, then raises (a full disk, a crash)."""
    f.write(b'PARTIAL CHECKPOINT')
    raise OSError('simulated crash during torch.save')


def test_failed_save_keeps_the_previous_checkpoint_and_last_checkpoint(tiny_streets, tmp_path, monkeypatch):
    work = tmp_path / 'work'
    Runner.from_cfg(Config(tiny_runner_cfg(tiny_streets, str(work), max_iters=2, ckpt_interval=2))).train()
    monkeypatch.setattr(torch, 'save', partial_then_fail)
    runner = Runner.from_cfg(Config(dict(tiny_runner_cfg(tiny_streets, str(work), max_iters=4, ckpt_interval=2),
                                         resume=True)))
    with pytest.raises(OSError, match='simulated crash'):
        runner.train()
    assert not (work / 'iter_4.pth').exists()
    assert sorted(p.name for p in work.iterdir() if p.name.endswith('.tmp')) == []
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=True)['meta']['iter'] == 2


KILL_DURING_SAVE = '''
import os, signal, sys, torch
sys.path.insert(0, {root!r})
import multisiam_mm  # noqa: F401  (makes the writes atomic)
import mmengine.hooks.checkpoint_hook as hook_module
from mmengine.runner.checkpoint import save_checkpoint
work = {work!r}
save_checkpoint({{'meta': {{'iter': 1}}}}, os.path.join(work, 'iter_1.pth'))
with hook_module.open(os.path.join(work, 'last_checkpoint'), 'w') as f:
    f.write(os.path.join(work, 'iter_1.pth'))

def killed_mid_write(obj, f, *args, **kwargs):
    f.write(b'PARTIAL')
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if {target!r} == 'checkpoint':
    torch.save = killed_mid_write
    save_checkpoint({{'meta': {{'iter': 2}}}}, os.path.join(work, 'iter_1.pth'))
else:
    with hook_module.open(os.path.join(work, 'last_checkpoint'), 'w') as f:
        f.write('PARTIAL')
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.mark.parametrize('target', ['checkpoint', 'last_checkpoint'])
def test_sigkill_during_save_leaves_the_previous_file_intact(tmp_path, target):
    code = KILL_DURING_SAVE.format(root=ROOT, work=str(tmp_path), target=target)
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_1.pth')
    assert torch.load(tmp_path / 'iter_1.pth', weights_only=True)['meta']['iter'] == 1
    assert len(list(tmp_path.glob('.*.tmp'))) == 1  # the killed write's temporary file, never the real name


# ---------------------------------------------------------------- NaN guard

@MODELS.register_module(force=True)
class NaNAtIterMultiSiam(MultiSiam):
    """MultiSiam whose 2-D loss is NaN at training iteration ``nan_at`` (1-based)."""

    def __init__(self, nan_at: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_at = nan_at
        self.calls = 0

    def loss(self, inputs, data_samples, **kwargs) -> dict:
        losses = super().loss(inputs, data_samples, **kwargs)
        self.calls += 1
        if self.calls == self.nan_at:
            losses['loss_2d'] = losses['loss_2d'] * float('nan')
        return losses


def test_nan_loss_stops_before_the_step_and_keeps_the_last_good_checkpoint(tiny_streets, tmp_path):
    work = tmp_path / 'work'
    model = dict(tiny_model(), type='NaNAtIterMultiSiam', nan_at=4)
    cfg = dict(tiny_runner_cfg(tiny_streets, str(work), max_iters=6, ckpt_interval=2, model=model),
               custom_hooks=[dict(type='NonFiniteLossHook')])
    runner = Runner.from_cfg(Config(cfg))
    with pytest.raises(NonFiniteLossError, match=r'iteration 4 .*loss=nan, loss_2d=nan'):
        runner.train()
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())  # the NaN never reached the weights
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    state = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=True)
    assert state['meta']['iter'] == 2 and all(torch.isfinite(v).all() for v in state['state_dict'].values())


def test_runtime_config_has_the_nan_guard_and_robust_loading():
    runtime = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'default_runtime.py'))
    pipeline = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets', 'pair_pipeline.py'))
    assert [h.type for h in runtime.custom_hooks] == ['NonFiniteLossHook', 'PairCropStatsHook', 'BadFilesHook']
    assert pipeline.pair_pipeline[0].type == 'RobustLoadImage'

"""GPU JPEG decode (issue 18, item 4), checked on the CPU against the CPU pipeline and the libraries it calls.

- each device photometric op against the function the CPU pipeline calls for the same parameters (Pillow's
  ImageEnhance / HSV / GaussianBlur through mmcv and mmpretrain, mmcv's grayscale and solarize);
- the whole path: the same sample seed gives the same boxes, flips and T / T' parameters, and views equal to the
  CPU pipeline's up to rounding (far below what a one-pixel shift of the box changes);
- files the device cannot take (EXIF-rotated, grey, PNG) are cut on the CPU and join the batch; a JPEG nothing can
  decode is quarantined and replaced; wrong set-ups fail with a message that says what to change.
"""
import copy
import random
import warnings

import cv2
import mmcv
import numpy as np
import pytest
import torch
from conftest import ROOT
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS, TRANSFORMS
from PIL import Image, ImageFilter

from multisiam_mm.datasets.transforms.photometric_draws import draw_pipeline
from multisiam_mm.datasets.transforms.robust_loading import Quarantine
from multisiam_mm.models.data_preprocessors.device_pair import decode_batch
from multisiam_mm.models.utils import photometric as P
from multisiam_mm.models.utils.device_views import cut_views

init_default_scope('mmpretrain')
PIPELINES = Config.fromfile(f'{ROOT}/configs/_base_/datasets/pair_pipeline.py')


def street_like(h: int = 150, w: int = 210, seed: int = 0) -> np.ndarray:
    """BGR uint8 image with gradients, texture and edges (JPEG-friendly, not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, ((xx + yy) % 48) * 5], 2).astype(np.uint8)
    return cv2.GaussianBlur(img + rng.integers(0, 40, img.shape, dtype=np.uint8), (5, 5), 1.2)


def tensor(imgs: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float."""
    return torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))).float()


def array(x: torch.Tensor) -> np.ndarray:
    return x.numpy().transpose(0, 2, 3, 1).astype(np.int64)


@pytest.fixture(scope='module')
def images() -> np.ndarray:
    noise = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return np.stack([street_like(40, 56), noise])


def per_image(fn, imgs):
    return np.stack([fn(i) for i in imgs]).astype(np.int64)


@pytest.mark.parametrize('factor', [0.6, 1.0, 1.4])
def test_colour_ops_equal_pillows_enhance_exactly(images, factor):
    f = torch.full((2,), factor)
    for ours, reference in ((P.brightness, mmcv.adjust_brightness), (P.contrast, mmcv.adjust_contrast),
                            (P.saturation, mmcv.adjust_color)):
        with _quiet():
            ref = np.stack([reference(i, factor, backend='pillow') for i in images]).astype(np.int64)
        assert np.array_equal(array(ours(tensor(images), f)), ref), reference.__name__


class _quiet(warnings.catch_warnings):
    """mmcv warns on every adjust_color call with the pillow backend ("Only use 'alpha'")."""

    def __enter__(self):
        super().__enter__()
        warnings.simplefilter('ignore')


@pytest.mark.parametrize('shift', [-0.1, 0.0, 0.07])
def test_hue_equals_pillows_hsv_up_to_rounding(images, shift):
    """Pillow's HSV round trip rounds differently on a few pixels (0.3 % of values here, by at most a few
    levels)."""
    ref = per_image(lambda i: mmcv.adjust_hue(i, shift, backend='pillow'), images)
    diff = np.abs(array(P.hue(tensor(images), torch.full((2,), shift))) - ref)
    assert (diff > 0).mean() < 0.006 and diff.max() <= 8, ((diff > 0).mean(), diff.max())


@pytest.mark.parametrize('radius', [0.3, 1.0, 1.9])
def test_blur_equals_pillows_gaussian_blur_up_to_rounding(images, radius):
    """Same extended-box construction (3 passes per axis, Pillow's radius formula and 24-bit weights); Pillow's
    passes still round differently: within 3 levels, about half a level on average where the blur is strongest."""
    ref = per_image(lambda i: np.array(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius=radius))), images)
    diff = np.abs(array(P.gaussian_blur(tensor(images), torch.full((2,), radius))) - ref)
    assert diff[0].mean() < 0.6 and diff.mean() < 0.8 and diff.max() <= 3, (diff[0].mean(), diff.mean(), diff.max())


def test_grayscale_and_solarize_equal_mmcv_exactly(images):
    transform = TRANSFORMS.build(PIPELINES.byol_color[1])
    w = np.asarray(transform.channel_weights) / np.sum(transform.channel_weights)
    ref = per_image(lambda i: np.repeat((w * i).sum(2).astype(np.uint8)[..., None], 3, 2), images)
    assert np.array_equal(array(P.gray(tensor(images), torch.tensor(np.stack([w, w])))), ref)
    ref = per_image(lambda i: mmcv.solarize(i, 128), images)
    assert np.array_equal(array(P.solarize(tensor(images), torch.full((2,), 128.))), ref)


def test_draws_consume_the_random_streams_as_the_transforms_do(images):
    """Drawing T' (colour jitter, grayscale, blur, solarize) leaves numpy's and python's generators where running
    it does, and its table applied on the device gives the CPU view."""
    pipeline = Compose(copy.deepcopy(PIPELINES.byol_photometric_t_prime))
    for seed in range(12):
        np.random.seed(seed)
        random.seed(seed)
        with _quiet():
            cpu = pipeline(dict(img=images[0].copy()))['img']
        after = np.random.get_state()[1].copy(), random.getstate()
        np.random.seed(seed)
        random.seed(seed)
        table = draw_pipeline(pipeline.transforms)
        assert np.array_equal(np.random.get_state()[1], after[0]) and random.getstate() == after[1]
        ours = array(P.apply_draws(tensor(images[:1]), torch.from_numpy(table)[None]))[0]
        diff = np.abs(ours - cpu)  # the few hue / blur rounding differences, carried through the later steps
        assert diff.mean() < 0.05 and (diff > 2).mean() < 0.005 and diff.max() <= 16, (seed, diff.mean(), diff.max())


def write_jpeg(path, img: np.ndarray, **pil) -> str:
    Image.fromarray(img[..., ::-1]).save(path, 'JPEG', quality=95, **pil)
    return str(path)


def pipelines(photometric: bool = True):
    cpu = copy.deepcopy(PIPELINES.pair_pipeline)
    cpu[1].update(size=64)
    if not photometric:
        cpu[2]['view_pipelines'] = [[], []]
    dev = copy.deepcopy(cpu)
    dev[0]['device_decode'] = True
    return Compose(cpu), Compose(dev)


def seeded(pipeline, path: str, seed: int) -> dict:
    np.random.seed(seed)
    random.seed(seed)
    with _quiet():
        return pipeline(dict(img_path=path))


def preprocessors():
    common = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
    return (MODELS.build(dict(type='SelfSupDataPreprocessor', **common)),
            MODELS.build(dict(type='DevicePairPreprocessor', decode_device='cuda', **common)))


def test_device_path_gives_the_cpu_pipelines_boxes_and_views(tmp_path):
    """Same seeds: identical boxes, flips and parameters; views (after T / T' and normalisation) differ on average
    by far less than moving the box by one pixel changes a view (measured on the un-augmented crops)."""
    path = write_jpeg(tmp_path / 'frame.jpg', street_like(300, 420))
    cpu_pre, dev_pre = preprocessors()
    for photometric in (False, True):
        cpu, dev = pipelines(photometric)
        a = [seeded(cpu, path, s) for s in range(8)]
        b = [seeded(dev, path, s) for s in range(8)]
        for x, y in zip(a, b):
            assert torch.equal(x['data_samples'].view_boxes, y['data_samples'].view_boxes)
            assert torch.equal(x['data_samples'].view_flips, y['data_samples'].view_flips)
            assert y['inputs'][0].dim() == 1  # the bytes travel, not pixels
        va = cpu_pre(default_collate(a))['inputs']
        vb = dev_pre(pseudo_collate(b))['inputs']
        diff = torch.cat([(p - q).abs() for p, q in zip(va, vb)]) * 58.  # back to pixel levels (std)
        if not photometric:
            frame = torch.from_numpy(cv2.imread(path).transpose(2, 0, 1).copy())
            shifted = [cut_views(frame, y['data_samples'].view_boxes + 1, y['data_samples'].view_flips, 64)
                       - cut_views(frame, y['data_samples'].view_boxes, y['data_samples'].view_flips, 64)
                       for y in b]
            one_pixel = torch.cat(shifted).abs().mean()
            assert diff.mean() < 0.1 * one_pixel, (diff.mean(), one_pixel)
        assert diff.mean() < 0.1 and diff.max() <= 10, (photometric, diff.mean(), diff.max())


def test_files_the_device_cannot_take_are_cut_on_the_cpu_and_join_the_batch(tmp_path):
    img = street_like(120, 160, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    paths = [write_jpeg(tmp_path / 'plain.jpg', img), write_jpeg(tmp_path / 'rotated.jpg', img, exif=exif.tobytes()),
             str(tmp_path / 'grey.jpg'), str(tmp_path / 'frame.png')]
    Image.fromarray(img[..., 0]).save(paths[2], 'JPEG', quality=95)
    cv2.imwrite(paths[3], img)
    cpu, dev = pipelines()
    cpu_pre, dev_pre = preprocessors()
    a = [seeded(cpu, p, 5) for p in paths]
    b = [seeded(dev, p, 5) for p in paths]
    assert [y['inputs'][0].dim() for y in b] == [1, 4, 4, 4]  # bytes for the plain JPEG, CPU-cut views otherwise
    va = cpu_pre(default_collate(a))['inputs']
    vb = dev_pre(pseudo_collate(b))['inputs']
    for p, q in zip(va, vb):
        assert p.shape == q.shape == (4, 3, 64, 64)
        assert torch.equal(p[1:], q[1:])  # the CPU-cut samples are the CPU pipeline's, bit for bit
        assert (p[0] - q[0]).abs().mean() * 58 < 0.1


def test_a_jpeg_nothing_decodes_is_quarantined_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv('MULTISIAM_BAD_FILES', str(tmp_path / 'bad_files.txt'))
    good = write_jpeg(tmp_path / 'good.jpg', street_like(100, 140))
    data = open(good, 'rb').read()
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(data[:400] + bytes(range(256)) * 8 + b'\xff\xd9')  # a header, garbage, an end marker
    _, dev = pipelines()
    b = [seeded(dev, good, 0), seeded(dev, str(bad), 1)]
    assert b[1]['inputs'][0].dim() == 1  # the header parses: only the decoder finds out
    batch, again = pseudo_collate(b), pseudo_collate(copy.deepcopy(b))
    payloads, samples = list(batch['inputs'][0]), list(batch['data_samples'])
    frames = decode_batch(payloads, samples, torch.device('cpu'))
    assert len(frames) == 2 and samples[1] is samples[0]  # replaced by the good sample
    assert str(bad) in Quarantine(str(tmp_path / 'bad_files.txt'))
    assert seeded(dev, str(bad), 1) is None  # quarantined: the loader does not read it again
    _, dev_pre = preprocessors()
    assert dev_pre(again)['inputs'][0].shape == (2, 3, 64, 64)  # the batch keeps its size


def test_wrong_set_ups_fail_with_a_message_that_says_what_to_change(tmp_path):
    path = write_jpeg(tmp_path / 'frame.jpg', street_like())
    _, dev = pipelines()
    sample = seeded(dev, path, 0)
    _, dev_pre = preprocessors()
    with pytest.raises(TypeError, match='pseudo_collate'):
        dev_pre(default_collate([sample, sample]))
    with pytest.raises(ValueError, match='lanczos.*no device counterpart'):
        TRANSFORMS.build(dict(type='IoUPairCrop', size=32, interpolation='lanczos'))(
            TRANSFORMS.build(dict(type='RobustLoadImage', device_decode=True))(dict(img_path=path)))
    photometric = TRANSFORMS.build(dict(type='PairPhotometric', view_pipelines=[
        [dict(type='RandomErasing', erase_prob=1.0)], []]))
    loaded = TRANSFORMS.build(dict(type='IoUPairCrop', size=32))(
        TRANSFORMS.build(dict(type='RobustLoadImage', device_decode=True))(dict(img_path=path)))
    with pytest.raises(ValueError, match='RandomErasing has no device counterpart'):
        photometric(loaded)
    odin = TRANSFORMS.build(dict(type='OdinSpanningView', size=64, pair_crop=dict(type='IoUPairCrop', size=32)))
    with pytest.raises(ValueError, match='device_decode covers the pair pipeline only'):
        odin(TRANSFORMS.build(dict(type='RobustLoadImage', device_decode=True))(dict(img_path=path)))
    with pytest.raises(ValueError, match='cannot be combined'):
        TRANSFORMS.build(dict(type='RobustLoadImage', device_decode=True, reduced_decode=True))


def test_device_decode_config_trains_two_iterations_on_the_cpu(tiny_streets, tmp_path):
    """The shipped switch (device_pair_pipeline + DevicePairPreprocessor + pseudo_collate) on the tiny model: it
    trains, with the fallback's one log line."""
    from conftest import tiny_model, tiny_runner_cfg
    from mmengine.runner import Runner
    cfg = tiny_runner_cfg(tiny_streets, str(tmp_path), max_iters=2, ckpt_interval=2)
    pipeline = copy.deepcopy(PIPELINES.device_pair_pipeline)
    pipeline[1].update(size=64)
    cfg['train_dataloader']['dataset']['pipeline'] = pipeline
    cfg['train_dataloader']['collate_fn'] = dict(type='pseudo_collate')
    cfg['model'] = tiny_model()
    cfg['model']['data_preprocessor']['type'] = 'DevicePairPreprocessor'
    cfg['log_level'] = 'INFO'
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    log = open(runner.logger.log_file).read() if hasattr(runner.logger, 'log_file') else ''
    assert (tmp_path / 'iter_2.pth').exists()
    assert log.count('DevicePairPreprocessor: decoding JPEG batches on cpu') == 1

"""Reduced-DCT JPEG decoding (issue 7, item 3): same geometry as the full-resolution path, close pixels, same
rejections; CropResize's factor rule; OdinSpanningView's spanning view; the benchmark's smoke test."""
import io
import logging
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from multisiam_mm.datasets.transforms import IoUPairCrop, OdinSpanningView, RobustLoadImage, robust_loading
from multisiam_mm.datasets.transforms.robust_loading import DeferredJpeg, read_jpeg_header
from multisiam_mm.datasets.transforms.scaled_pixels import CropResize, ScaledPixels

H, W = 611, 997  # not multiples of 8: the reduced images have partial last rows and columns
TOLERANCE = 2.0  # mean |difference| (grey levels) between reduced and full-resolution views of the test image


def coordinate_image(h: int = H, w: int = W) -> np.ndarray:
    """RGB uint8 (h, w, 3) whose channels encode x, y and x + y by smooth sines (periods 90, 70, 110 pixels): up to
    7 grey levels per pixel of shift, so a misplaced view shows, while JPEG and DCT scaling barely change it."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    waves = (np.sin(2 * np.pi * x / 90), np.sin(2 * np.pi * y / 70), np.sin(2 * np.pi * (x + y) / 110))
    return np.stack([128 + 100 * v for v in waves], axis=2).round().astype(np.uint8)


def write_jpeg(path, rgb: np.ndarray, orientation: int = 1) -> str:
    """High-quality JPEG (no chroma subsampling) with an EXIF orientation tag; the stored frame is ``rgb``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(str(path), quality=97, subsampling=0, exif=exif)
    return str(path)


def pairs(path: str, reduced: bool, seed: int = 0, num: int = 12, **crop_kwargs) -> list:
    """``num`` IoUPairCrop outputs of the file, drawn from ``seed``, with or without reduced decoding."""
    load, crop = RobustLoadImage(reduced_decode=reduced), IoUPairCrop(**{'size': 48, **crop_kwargs})
    np.random.seed(seed)
    return [crop(load(dict(img_path=path))) for _ in range(num)]


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


@pytest.mark.parametrize('orientation', range(1, 9))
def test_reduced_views_match_full_resolution(tmp_path, orientation):
    path = write_jpeg(tmp_path / 'coords.jpg', coordinate_image(), orientation)
    full, reduced = pairs(path, reduced=False), pairs(path, reduced=True)
    hw = (W, H) if orientation >= 5 else (H, W)
    for a, b in zip(full, reduced):
        np.testing.assert_array_equal(a['view_boxes'], b['view_boxes'])
        np.testing.assert_array_equal(a['view_flips'], b['view_flips'])
        assert a['ori_shape'] == b['ori_shape'] == hw and a['img_shape'] == b['img_shape'] == (48, 48)
        assert a['decode_factor'] == 1
        for va, vb in zip(a['img'], b['img']):
            assert vb.shape == va.shape and vb.dtype == np.uint8
            assert mean_abs_diff(va, vb) < TOLERANCE, (b['decode_factor'], b['view_boxes'])
    assert {b['decode_factor'] for b in reduced} >= {4, 8}


def test_tolerance_detects_a_one_pixel_shift():
    """The views of boxes moved by one full-resolution pixel differ far beyond TOLERANCE."""
    img = coordinate_image()[..., ::-1]  # BGR, as loaded
    resize = CropResize(48)
    pixels = ScaledPixels(img)
    box = np.array([101.0, 57.0, 501.0, 457.0])
    assert mean_abs_diff(pixels.crop(box, resize), pixels.crop(box + 1, resize)) > 2 * TOLERANCE


def test_factor_one_is_the_full_resolution_path_bit_for_bit(tmp_path):
    path = write_jpeg(tmp_path / 'coords.jpg', coordinate_image())
    for a, b in zip(pairs(path, reduced=False, size=400), pairs(path, reduced=True, size=400)):
        assert b['decode_factor'] == 1  # no box of a 611-pixel-high frame keeps 2 x 400 pixels
        for va, vb in zip(a['img'], b['img']):
            np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize('side, size, factor', [(447, 224, 1), (448, 224, 2), (895, 224, 2), (896, 224, 4),
                                                (1792, 224, 8), (5000, 224, 8), (100, 224, 1)])
def test_factor_is_the_coarsest_that_keeps_the_output_size(side, size, factor):
    boxes = np.array([[10, 20, 10 + side, 20 + side + 7], [0, 0, 3000, 3000]], dtype=np.float64)
    assert CropResize(size).max_factor(boxes) == factor
    assert CropResize(size).max_factor(boxes[:, [1, 0, 3, 2]]) == factor  # the shorter side decides, either axis


@pytest.mark.parametrize('interpolation, backend', [('area', 'cv2'), ('bicubic', 'pillow')])
def test_resizes_without_a_fractional_counterpart_decode_in_full(interpolation, backend):
    assert CropResize(224, interpolation, backend).max_factor(np.array([[0, 0, 4000, 4000]])) == 1


def test_header_gives_upright_size_and_other_formats_fall_back(tmp_path):
    for orientation, hw in ((1, (H, W)), (3, (H, W)), (6, (W, H)), (8, (W, H))):
        data = open(write_jpeg(tmp_path / f'o{orientation}.jpg', coordinate_image(), orientation), 'rb').read()
        assert read_jpeg_header(data) == (hw, orientation)
    mpo, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(coordinate_image()).save(mpo, format='MPO', save_all=True,
                                             append_images=[Image.fromarray(coordinate_image(30, 40))])
    assert read_jpeg_header(mpo.getvalue()) == ((H, W), 1)
    Image.fromarray(coordinate_image(40, 48)).save(png, format='PNG')
    assert read_jpeg_header(png.getvalue()) is None and read_jpeg_header(b'not an image') is None
    path = str(tmp_path / 'frame.png')
    Image.fromarray(coordinate_image(40, 48)).save(path)
    out = RobustLoadImage(reduced_decode=True)(dict(img_path=path))
    assert isinstance(out['img'], np.ndarray) and out['img'].shape == (40, 48, 3)


def test_corrupt_jpeg_is_rejected_by_the_deferred_decode(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(robust_loading, 'print_log', lambda msg, **kw: logged.append((msg, kw['level'])))
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    data = open(write_jpeg(tmp_path / 'noise.jpg', noise), 'rb').read()
    (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    load, crop = RobustLoadImage(reduced_decode=True), IoUPairCrop(size=48)
    results = load(dict(img_path=str(tmp_path / 'truncated.jpg')))
    assert isinstance(results['img'], DeferredJpeg) and load.loaded == 0 and not logged  # header only so far
    assert crop(results) is None
    assert load.loaded == 0 and list(load.rejected) == ['cannot decode'] and load.consecutive == 1
    assert len(logged) == 1 and 'truncated.jpg' in logged[0][0] and logged[0][1] == logging.WARNING
    assert crop(load(dict(img_path=str(tmp_path / 'noise.jpg')))) is not None
    assert load.loaded == 1 and load.consecutive == 0


def test_too_small_jpeg_is_rejected_from_its_header(tmp_path):
    path = write_jpeg(tmp_path / 'tiny.jpg', coordinate_image(20, 48))
    load = RobustLoadImage(reduced_decode=True)
    assert load(dict(img_path=path)) is None and list(load.rejected) == ['too small']


def test_reduced_decode_needs_uint8():
    with pytest.raises(ValueError, match='to_float32'):
        RobustLoadImage(reduced_decode=True, to_float32=True)


@pytest.mark.parametrize('span', ['views', 'image'])
def test_spanning_view_keeps_its_size_and_matches_full_resolution(tmp_path, span):
    path = write_jpeg(tmp_path / 'coords.jpg', coordinate_image())
    outs = {}
    for reduced in (False, True):
        load = RobustLoadImage(reduced_decode=reduced)
        odin = OdinSpanningView(pair_crop=dict(type='IoUPairCrop', size=32, iou_thr=0.), size=96, span=span)
        np.random.seed(1)
        outs[reduced] = [odin(load(dict(img_path=path))) for _ in range(12)]
    for a, b in zip(outs[False], outs[True]):
        np.testing.assert_array_equal(a['span_box'], b['span_box'])
        np.testing.assert_array_equal(a['view_boxes'], b['view_boxes'])
        span_side = min(b['span_box'][2] - b['span_box'][0], b['span_box'][3] - b['span_box'][1])
        assert span_side >= 96 * b['decode_factor']  # the spanning view is never upsampled more than in full
        assert b['span_img'].shape == (96, 96, 3) and mean_abs_diff(a['span_img'], b['span_img']) < TOLERANCE
    assert max(b['decode_factor'] for b in outs[True]) > 1


@pytest.mark.parametrize('config, num_inputs', [('waymo_pairs.py', 2), ('waymo_odin.py', 3)])
def test_one_switch_enables_it_in_the_config_pipelines(tmp_path, config, num_inputs):
    """``--cfg-options train_dataloader.dataset.pipeline.0.reduced_decode=True`` on the MultiSiam / Odin pipelines."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets', config))
    cfg.merge_from_dict({'train_dataloader.dataset.pipeline.0.reduced_decode': True})
    pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    assert pipeline.transforms[0].reduced_decode
    path = write_jpeg(tmp_path / 'coords.jpg', coordinate_image(1000, 1500))
    np.random.seed(0)
    packed = [pipeline(dict(img_path=path, sample_idx=0)) for _ in range(4)]
    for out in packed:
        assert [tuple(x.shape) for x in out['inputs']] == [(3, 224, 224)] * 2 + [(3, 448, 448)] * (num_inputs - 2)
        assert tuple(out['data_samples'].ori_shape) == (1000, 1500)


@pytest.mark.slow
def test_decode_bench_prints_its_table():
    res = subprocess.run([sys.executable, osp.join(ROOT, 'benchmarks', 'decode_bench.py'), '--frames', '2',
                          '--width', '480', '--height', '320', '--size', '32', '--repeats', '1'],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for row in ('| (a) mmpretrain', '| (b) RobustLoadImage + IoUPairCrop', '| (c) RobustLoadImage(reduced_decode'):
        assert row in res.stdout, res.stdout

"""Waymo v1 frame extraction without TensorFlow: CRC32C, TFRecord framing, Frame decoding, resume, corruption, CLI.

The test writes its own TFRecord segments: a minimal protobuf encoder builds Frame / Context / CameraImage messages
with the field numbers of waymo_open_dataset/dataset.proto, tiny JPEGs from cv2.imencode, and fields the reader
must step over (lasers with nested range images, pose, calibrations, velocity as fixed32/fixed64, an extension).
"""
import json
import os
import os.path as osp
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np
import pytest
from conftest import ROOT
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS

from multisiam_mm.datasets import frame_shrink, waymo_tfrecord
from multisiam_mm.datasets.waymo_tfrecord import (
    ProtobufError,
    TFRecordError,
    crc32c,
    crc32c_numpy,
    extract_waymo,
    iter_fields,
    iter_tfrecord,
    masked_crc32c,
    parse_frame,
)

FRONT, FRONT_LEFT, SIDE_RIGHT = 1, 2, 5


# ------------------------------------------------------------------------------------------------- test-side encoder
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def _double(number: int, value: float) -> bytes:
    return _key(number, 1) + struct.pack('<d', value)


def _float(number: int, value: float) -> bytes:
    return _key(number, 5) + struct.pack('<f', value)


def _transform() -> bytes:
    return b''.join(_double(1, float(i)) for i in range(16))  # Transform { repeated double transform = 1 }


def _camera_image(camera: int, jpeg: bytes) -> bytes:
    velocity = _float(1, 1.5) + _float(2, -0.5) + _float(3, 0.0) + _double(4, 0.01)
    return (_int(1, camera) + _len(3, _transform()) + _len(2, jpeg) + _len(4, velocity) + _double(5, 1.5e9)
            + _double(6, 0.002) + _double(7, 1.5e9) + _double(8, 1.5e9))


def _frame(context_name: str, timestamp: int, images: Sequence[Tuple[int, bytes]]) -> bytes:
    calibration = _int(1, FRONT) + _double(2, 2000.0) + _len(3, _transform()) + _int(4, 1920) + _int(5, 1280)
    context = _len(2, calibration) + _len(1, context_name.encode()) + _len(4, _len(2, b'Day') + _len(3, b'SF'))
    laser = _int(1, 1) + _len(2, _len(2, bytes(range(256))) + _len(4, b'\x78\x9c' * 50))
    parts = [_len(5, laser), _len(1, context), _int(2, timestamp), _len(3, _transform())]
    parts += [_len(4, _camera_image(camera, jpeg)) for camera, jpeg in images]
    parts += [_len(8, _int(1, FRONT)), _key(1000, 5) + b'\x01\x02\x03\x04']  # camera labels, an extension field
    return b''.join(parts)


def _record(data: bytes) -> bytes:
    length = struct.pack('<Q', len(data))
    return length + struct.pack('<I', masked_crc32c(length)) + data + struct.pack('<I', masked_crc32c(data))


def _jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (8, 12, 3), dtype=np.uint8)
    ok, buf = cv2.imencode('.jpg', image)
    assert ok
    return buf.tobytes()


def _segment(folder: Path, name: str, frames: int = 4, cameras: Sequence[int] = (FRONT, FRONT_LEFT, SIDE_RIGHT),
             seed: int = 0) -> Tuple[Path, Dict[str, bytes]]:
    """A TFRecord file of ``frames`` frames; returns its path and {relative output path: JPEG bytes} of every image."""
    folder.mkdir(parents=True, exist_ok=True)
    expected, records = {}, []
    names = {FRONT: 'FRONT', FRONT_LEFT: 'FRONT_LEFT', SIDE_RIGHT: 'SIDE_RIGHT'}
    for index in range(frames):
        timestamp = 1_550_000_000_000_000 + 100_000 * index
        images = [(camera, _jpeg(seed * 1000 + index * 10 + camera)) for camera in cameras]
        records.append(_record(_frame(name, timestamp, images)))
        expected.update({f'{name}/{timestamp}_{names[c]}.jpg': jpeg for c, jpeg in images})
    path = folder / f'segment-{name}_with_camera_labels.tfrecord'
    path.write_bytes(b''.join(records))
    return path, expected


# ------------------------------------------------------------------------------------------------------------ tests
def test_crc32c_known_values_and_mask_match_an_independent_implementation():
    assert crc32c(b'123456789') == 0xE3069283  # the CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA and crc32c(b'\xff' * 32) == 0x62A8AB43  # RFC 3720 B.4
    tensorboard = pytest.importorskip('tensorboard.compat.tensorflow_stub.pywrap_tensorflow')
    data = np.random.default_rng(1).integers(0, 256, 4096 * 40 + 123, dtype=np.uint8).tobytes()  # vectorised path
    for chunk in (b'', b'x', data[:5000], data):
        assert masked_crc32c(chunk) == tensorboard.masked_crc32c(chunk)


def test_c_crc32c_equals_the_numpy_fallback_and_both_catch_a_corrupt_record(tmp_path, monkeypatch):
    assert waymo_tfrecord.CRC32C_IMPLEMENTATION.startswith('google-crc32c')  # a runtime requirement
    rng = np.random.default_rng(2)
    for size in (0, 1, 7, 4095, 4096 * 33 + 5, 1 << 20):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == crc32c_numpy(data) == crc32c(memoryview(data))
    source, _ = _segment(tmp_path, 'seg_crc', frames=2, cameras=(FRONT,))
    data = bytearray(source.read_bytes())
    data[60] ^= 0x01  # one bit inside the first record's data
    source.write_bytes(bytes(data))
    for implementation in ('c', 'numpy'):
        if implementation == 'numpy':
            monkeypatch.setattr(waymo_tfrecord, 'google_crc32c', None)
        with pytest.raises(TFRecordError, match='data CRC mismatch'):
            list(iter_tfrecord(str(source)))
    assert len(list(iter_tfrecord(str(source), verify_crc=False))) == 2


def test_frame_decoding_steps_over_other_fields_and_rejects_malformed_data():
    frame = parse_frame(_frame('ctx', -5, [(FRONT, b'jpegA'), (SIDE_RIGHT, b'jpegB')]))
    assert (frame.context_name, frame.timestamp_micros) == ('ctx', -5)  # int64 two's complement
    assert [(i.camera, bytes(i.jpeg)) for i in frame.images] == [(FRONT, b'jpegA'), (SIDE_RIGHT, b'jpegB')]
    assert [i.camera for i in parse_frame(_frame('ctx', 1, [(FRONT, b'a'), (SIDE_RIGHT, b'b')]), {5}).images] == [5]
    assert [(n, w) for n, w, _ in iter_fields(_int(3, 300) + _double(4, 1.0) + _float(5, 1.0) + _len(6, b'xy'))] == [
        (3, 0), (4, 1), (5, 5), (6, 2)]
    for bad in (_key(1, 3), _len(4, b'abc')[:-1], b'\x80', _int(4, 7)):  # group, truncated, varint, wrong wire type
        with pytest.raises(ProtobufError):
            parse_frame(bad)


def test_extraction_writes_the_jpeg_bytes_of_the_chosen_cameras_of_every_nth_frame(tmp_path):
    source, expected = _segment(tmp_path / 'in', 'seg_a', frames=5)
    out, log = tmp_path / 'out', []
    summary = extract_waymo([str(source)], str(out), cameras=['FRONT', 'SIDE_RIGHT'], every=2, list_name='frames',
                            log=log.append)
    kept = [p for p in expected if p.endswith(('_FRONT.jpg', '_SIDE_RIGHT.jpg'))
            and int(p.split('/')[1].split('_')[0]) % 200_000 == 0]  # frames 0, 2, 4
    assert len(kept) == 6
    for path in kept:
        assert (out / path).read_bytes() == expected[path]  # as stored, no re-encoding
    assert sorted(str(p.relative_to(out)) for p in out.glob('seg_a/*')) == sorted(kept)
    assert (out / 'frames.txt').read_text().splitlines() == kept  # frame order, then camera order
    assert {k: summary[k] for k in ('segments', 'extracted', 'skipped', 'frames', 'images', 'corrupt_records')} == \
        dict(segments=1, extracted=1, skipped=0, frames=3, images=6, corrupt_records=0)
    assert '5 records, 3 frames, 6 images' in log[0] and 'ETA 0:00' in log[0]


def test_list_file_loads_in_unlabeled_image_dataset(tmp_path):
    source, expected = _segment(tmp_path / 'in', 'seg_b', frames=2, cameras=(FRONT,))
    extract_waymo([str(tmp_path / 'in')], str(tmp_path / 'waymo'), log=[].append)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=str(tmp_path / 'waymo'),
                                      ann_file='five_cameras.txt', pipeline=[dict(type='LoadImageFromFile')]))
        sample = dataset[1]
    assert len(dataset) == 2
    relative = sorted(expected)[1]
    assert sample['img_path'] == str(tmp_path / 'waymo' / relative)
    decoded = cv2.imdecode(np.frombuffer(expected[relative], np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(sample['img'], decoded)


def test_rerun_skips_done_segments_and_redoes_a_half_done_one(tmp_path):
    _, expected_a = _segment(tmp_path / 'in', 'seg_a', frames=2, cameras=(FRONT,), seed=1)
    source_b, expected_b = _segment(tmp_path / 'in', 'seg_b', frames=3, cameras=(FRONT,), seed=2)
    out = tmp_path / 'out'
    first = extract_waymo([str(tmp_path / 'in')], str(out), log=[].append)
    assert (first['extracted'], first['images']) == (2, 5)
    log = []
    second = extract_waymo([str(tmp_path / 'in')], str(out), log=log.append)
    assert (second['extracted'], second['skipped'], second['images']) == (0, 2, 0)
    assert all('done earlier' in line for line in log)
    # a run killed inside seg_b: no marker yet, one image missing, one left half-written
    os.remove(out / '.done' / (source_b.name + '.json'))
    b_paths = sorted(expected_b)
    os.remove(out / b_paths[0])
    (out / b_paths[1]).write_bytes(b'\xff\xd8 half')
    (out / 'five_cameras.txt').unlink()
    third = extract_waymo([str(tmp_path / 'in')], str(out), log=[].append)
    assert (third['extracted'], third['skipped'], third['images']) == (1, 1, 3)
    for path, jpeg in {**expected_a, **expected_b}.items():
        assert (out / path).read_bytes() == jpeg
    assert (out / 'five_cameras.txt').read_text().splitlines() == sorted(expected_a) + b_paths
    assert json.loads((out / '.done' / (source_b.name + '.json')).read_text())['frames'] == 3
    fourth = extract_waymo([str(tmp_path / 'in')], str(out), cameras=['FRONT', 'FRONT_LEFT'], log=[].append)
    assert fourth['extracted'] == 2  # other options: the markers do not match, both segments are redone


def test_corrupt_and_truncated_files_are_reported_and_skipped_without_stopping_the_run(tmp_path):
    folder = tmp_path / 'in'
    bad_crc, _ = _segment(folder, 'seg_1_badcrc', frames=4, cameras=(FRONT,), seed=3)
    good, expected_good = _segment(folder, 'seg_2_good', frames=2, cameras=(FRONT,), seed=4)
    cut, _ = _segment(folder, 'seg_3_cut', frames=3, cameras=(FRONT,), seed=5)
    sizes = [16 + len(record) for record in iter_tfrecord(str(bad_crc))]
    data = bytearray(bad_crc.read_bytes())
    data[sizes[0] + sizes[1] + 12 + 40] ^= 0xFF  # inside the data of the third record
    bad_crc.write_bytes(bytes(data))
    cut.write_bytes(cut.read_bytes()[:-30])  # the last record loses its end
    short_header = _record(_frame('seg_4', 9, [(FRONT, b'x')])) + b'\x05\x00'
    (folder / 'segment-seg_4_short_header.tfrecord').write_bytes(short_header)
    with pytest.raises(TFRecordError, match='data CRC mismatch'):
        list(iter_tfrecord(str(bad_crc)))
    log = []
    summary = extract_waymo([str(folder)], str(tmp_path / 'out'), log=log.append)
    assert summary['segments'] == 4 and summary['corrupt_records'] == 3
    assert [osp.basename(p) for p in summary['corrupt_files']] == [
        bad_crc.name, cut.name, 'segment-seg_4_short_header.tfrecord']
    assert summary['images'] == 2 + 2 + 2 + 1  # the frames before the bad records are kept
    warnings = [line for line in log if line.startswith('WARNING')]
    assert len(warnings) == 3 and 'data CRC mismatch' in warnings[0] and 'truncated:' in warnings[1]
    assert 'truncated header (2 of 12 bytes' in warnings[2]
    listed = (tmp_path / 'out' / 'five_cameras.txt').read_text().splitlines()
    assert set(expected_good) <= set(listed) and len(listed) == 7


def test_undecodable_record_with_valid_framing_is_skipped_alone(tmp_path):
    source, expected = _segment(tmp_path / 'in', 'seg', frames=2, cameras=(FRONT,))
    source.write_bytes(source.read_bytes() + _record(_key(2, 3)) + _record(_frame('seg', 7, [(FRONT, b'last')])))
    summary = extract_waymo([str(source)], str(tmp_path / 'out'), log=[].append)
    assert (summary['bad_frames'], summary['frames'], summary['images']) == (1, 3, 3)
    assert (tmp_path / 'out' / 'seg' / '7_FRONT.jpg').read_bytes() == b'last'


def test_workers_give_the_same_list(tmp_path):
    for i in range(3):
        _segment(tmp_path / 'in', f'seg_{i}', frames=2, cameras=(FRONT,), seed=i)
    one = extract_waymo([str(tmp_path / 'in')], str(tmp_path / 'one'), log=[].append)
    two = extract_waymo([str(tmp_path / 'in')], str(tmp_path / 'two'), workers=2, log=[].append)
    assert one['images'] == two['images'] == 6
    assert (tmp_path / 'one' / 'five_cameras.txt').read_text() == (tmp_path / 'two' / 'five_cameras.txt').read_text()


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        extract_waymo([str(tmp_path / 'nowhere')], str(tmp_path / 'out'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match=r'no \.tfrecord file'):
        extract_waymo([str(tmp_path / 'empty')], str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='unknown camera'):
        extract_waymo([str(tmp_path / 'empty')], str(tmp_path / 'out'), cameras=['BACK'])
    with pytest.raises(ValueError, match='every'):
        extract_waymo([str(tmp_path / 'empty')], str(tmp_path / 'out'), every=0)


def test_command_line_tool(tmp_path):
    source, expected = _segment(tmp_path / 'in', 'seg_cli', frames=3, cameras=(FRONT, FRONT_LEFT))
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'extract_waymo_frames.py'), str(tmp_path / 'in'),
                          '--out', str(tmp_path / 'out'), '--cameras', 'FRONT_LEFT', '--every', '3',
                          '--list-name', 'left'], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert '[1/1] segment-seg_cli_with_camera_labels.tfrecord: 3 records, 1 frames, 1 images' in res.stdout
    assert 'summary: 1 segments (1 extracted now, 0 done earlier), 1 frames, 1 images written, 0 corrupt' in res.stdout
    path = next(p for p in sorted(expected) if p.endswith('_FRONT_LEFT.jpg'))
    assert (tmp_path / 'out' / 'left.txt').read_text() == f'{path}\n'
    assert (tmp_path / 'out' / path).read_bytes() == expected[path]


def test_command_line_errors_exit_with_a_message(tmp_path, capsys):
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import extract_waymo_frames
    finally:
        sys.path.remove(osp.join(ROOT, 'tools'))
    with pytest.raises(SystemExit) as exit_info:
        extract_waymo_frames.main([str(tmp_path / 'missing'), '--out', str(tmp_path / 'out')])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: input '")


def test_five_cameras_by_default_front_only_one_flag_away(tmp_path):
    source, expected = _segment(tmp_path / 'in', 'seg_all', frames=2)
    summary = extract_waymo([str(source)], str(tmp_path / 'out'), log=[].append)
    assert summary['images'] == 6 and (tmp_path / 'out' / 'five_cameras.txt').read_text().count('\n') == 6
    front = extract_waymo([str(source)], str(tmp_path / 'front'), cameras=['FRONT'], list_name='front_camera',
                          log=[].append)
    assert front['images'] == 2 and all(p.endswith('_FRONT.jpg')
                                        for p in (tmp_path / 'front' / 'front_camera.txt').read_text().split())


def test_positional_output_folder_is_an_error_not_a_silent_input(tmp_path, capsys, monkeypatch):
    """README's old form ``SEGMENTS_DIR OUT_DIR`` with an existing OUT_DIR: exit 2, one line, nothing written."""
    _segment(tmp_path / 'segments', 'seg_amb', frames=1, cameras=(FRONT,))
    (tmp_path / 'out').mkdir()
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import extract_waymo_frames
    finally:
        sys.path.remove(osp.join(ROOT, 'tools'))
    with pytest.raises(SystemExit) as exit_info:
        extract_waymo_frames.main([str(tmp_path / 'segments'), str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count('\n') == 1
    assert f"holds no .tfrecord file: if it is meant as the output folder, give it as --out {tmp_path / 'out'}" in err
    assert not (tmp_path / 'data').exists() and not list((tmp_path / 'out').iterdir())


def _big_jpeg(h: int, w: int) -> bytes:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(x / 15.0), 128 + 100 * np.sin(y / 11.0), 128 + 0 * x], 2).astype(np.uint8)
    return cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def test_shrink_for_stores_each_frame_at_the_size_its_config_allows(tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    images = [(FRONT, _big_jpeg(1280, 1920)), (SIDE_RIGHT, _big_jpeg(968, 1920))]
    (folder / 'segment-s_with_camera_labels.tfrecord').write_bytes(_record(_frame('s', 5, images)))
    config = osp.join(ROOT, 'configs', 'multisiam_waymo.py')
    extract_waymo([str(folder)], str(tmp_path / 'out'), shrink_for=config, log=[].append)
    policy = frame_shrink.ShrinkPolicy.from_config(config)
    for name, hw in (('s/5_FRONT.jpg', (1280, 1920)), ('s/5_SIDE_RIGHT.jpg', (968, 1920))):
        stored = cv2.imread(str(tmp_path / 'out' / name)).shape[:2]
        assert stored == policy.plan(hw).stored and stored[0] < hw[0]  # each size its own factor
    record = frame_shrink.read_record(str(tmp_path / 'out'))
    assert record['config'] == config and set(record['sizes']) == {'1920x1280', '1920x968'}
    assert record['sizes']['1920x1280']['factor'] == pytest.approx(policy.plan((1280, 1920)).factor, rel=1e-5)
    log = []  # same options: done earlier; other options: redone, and without --shrink-for the record goes
    extract_waymo([str(folder)], str(tmp_path / 'out'), shrink_for=config, log=log.append)
    assert 'done earlier' in log[0]
    extract_waymo([str(folder)], str(tmp_path / 'out'), log=[].append)
    assert frame_shrink.read_record(str(tmp_path / 'out')) is None
    assert (tmp_path / 'out' / 's' / '5_FRONT.jpg').read_bytes() == images[0][1]

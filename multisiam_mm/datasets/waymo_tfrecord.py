"""Camera images out of Waymo Open Dataset v1 TFRecord segment files, without TensorFlow or the Waymo package.

Three layers, each usable alone:

- TFRecord framing (:func:`iter_tfrecord`): every record is ``uint64 length`` (little-endian), ``uint32 masked
  CRC32C of the length bytes``, ``length`` data bytes, ``uint32 masked CRC32C of the data``. CRC32C (Castagnoli) is
  computed in C by google-crc32c (a runtime requirement; hardware CRC instructions where the CPU has them), with a
  numpy implementation as the fallback where it is missing (:func:`crc32c_numpy`, equal results, tested); the mask
  is TFRecord's ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32. A bad CRC or a short read raises
  :class:`TFRecordError` with the byte offset of the record.
- Protocol buffer wire format (:func:`iter_fields`): varints, fixed64, length-delimited and fixed32 fields; the
  fields a caller does not want (lidar range images, labels, calibrations, ...) are stepped over without copying.
- The ``waymo.open_dataset.Frame`` message (:func:`parse_frame`): only what frame extraction needs.

Field numbers, checked against ``src/waymo_open_dataset/dataset.proto`` of github.com/waymo-research/waymo-open-dataset
(stored copy at commit 62b97ad80bbff8b285dda3a9fb679888d34e6b17, ``syntax = "proto2"``)::

    message Frame       { optional Context context = 1; optional int64 timestamp_micros = 2;
                          optional Transform pose = 3; repeated CameraImage images = 4; repeated Laser lasers = 5;
                          ... (6 to 11: labels, no-label zones, map features) }
    message Context     { optional string name = 1; ... (2: camera calibrations, 3: laser calibrations, 4: stats) }
    message CameraImage { optional CameraName.Name name = 1; optional bytes image = 2;  // JPEG image
                          ... (3: pose, 4: velocity, 5 to 8: timings, 10: segmentation label) }
    CameraName.Name     { UNKNOWN = 0; FRONT = 1; FRONT_LEFT = 2; FRONT_RIGHT = 3; SIDE_LEFT = 4; SIDE_RIGHT = 5;
                          REAR_LEFT = 6; REAR = 7; REAR_RIGHT = 8 }  // v1 perception segments hold 1 to 5

Extraction (:func:`extract_waymo`) writes the JPEG bytes as they are stored (no re-encoding) to
``<out>/<context name>/<timestamp_micros>_<CAMERA>.jpg``, records every finished segment in a marker file
``<out>/.done/<tfrecord file name>.json`` (written atomically after its images, so a killed run redoes only the
segment it was in) and rebuilds the list file ``<out>/<list name>.txt`` (paths relative to ``<out>``) from the markers.
A corrupt or truncated record ends its file: the frames before it are kept, the rest of the file is skipped and
reported, and the run goes on with the next file. Usage and layout: docs/data_ingestion.md.
"""
import functools
import glob
import json
import multiprocessing
import os
import os.path as osp
import re
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

try:
    import google_crc32c
except ImportError:  # the numpy fallback below (about 60-100 MB/s instead of GB/s)
    google_crc32c = None

CAMERA_NAMES = {0: 'UNKNOWN', 1: 'FRONT', 2: 'FRONT_LEFT', 3: 'FRONT_RIGHT', 4: 'SIDE_LEFT', 5: 'SIDE_RIGHT',
                6: 'REAR_LEFT', 7: 'REAR', 8: 'REAR_RIGHT'}
CAMERA_IDS = {name: number for number, name in CAMERA_NAMES.items()}

# Field numbers of waymo_open_dataset/dataset.proto (see the module docstring).
FRAME_CONTEXT, FRAME_TIMESTAMP_MICROS, FRAME_IMAGES = 1, 2, 4
CONTEXT_NAME = 1
CAMERA_IMAGE_NAME, CAMERA_IMAGE_IMAGE = 1, 2

WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5

DONE_FOLDER = '.done'
ALL_CAMERAS = ('FRONT', 'FRONT_LEFT', 'FRONT_RIGHT', 'SIDE_LEFT', 'SIDE_RIGHT')  # the five of v1 (paper Sec. 4.1)
DEFAULT_LIST_NAME = 'five_cameras'
_CRC32C_POLY = 0x82F63B78  # Castagnoli polynomial 0x1EDC6F41, bit-reflected
_MASK_DELTA = 0xA282EAD8
_ROW_BYTES = 4096  # crc32c: bytes per row of the vectorised pass
_MIN_ROWS = 32  # crc32c: below this many rows the plain byte loop is faster


class TFRecordError(ValueError):
    """A corrupt (CRC mismatch) or truncated record; ``offset`` is where the record starts in the file."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f'{path}: bad record at byte {offset:,}: {reason}')
        self.path, self.offset, self.reason = path, offset, reason


class ProtobufError(ValueError):
    """A record that is not a well-formed protocol buffer of the expected message."""


# ----------------------------------------------------------------------------------------------------------- CRC32C
def _byte_table() -> np.ndarray:
    """The 256-entry table of the reflected CRC32C: the CRC register after shifting one byte value through it."""
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(_CRC32C_POLY), crc >> 1).astype(np.uint32)
    return crc


def _slice_tables(table: np.ndarray) -> np.ndarray:
    """``(4, 256)`` slicing-by-4 tables: row k is the register after a byte value followed by k zero bytes."""
    tables = [table]
    for _ in range(3):
        tables.append(tables[-1] >> 8 ^ table[tables[-1] & 0xFF])
    return np.stack(tables)


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()
_T0, _T1, _T2, _T3 = _slice_tables(_TABLE)


def _update_bytewise(crc: int, data: Union[bytes, memoryview]) -> int:
    """The CRC register after feeding ``data`` one byte at a time (no pre/post inversion)."""
    table = _TABLE_LIST
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _update_rows(rows: np.ndarray) -> np.ndarray:
    """The CRC register (started at 0) of every row of a ``(n, length)`` uint8 array, all rows at once.

    Four bytes per step (slicing-by-4): each row is read as little-endian uint32 words.
    """
    crc = np.zeros(rows.shape[0], dtype=np.uint32)
    for word in np.ascontiguousarray(rows.view('<u4').T):
        crc ^= word
        crc = _T3[crc & 0xFF] ^ _T2[(crc >> 8) & 0xFF] ^ _T1[(crc >> 16) & 0xFF] ^ _T0[crc >> 24]
    return crc


@functools.lru_cache(maxsize=1)
def _zero_shift_tables() -> Tuple[List[int], ...]:
    """Four 256-entry tables giving the register after ``_ROW_BYTES`` zero bytes, one table per register byte.

    CRC is linear over GF(2): the register after a row equals (register before, shifted through the row's length of
    zero bytes) XOR (the row's CRC from a zero register), and the shift is the XOR of the four byte tables.
    """
    start = np.concatenate([np.arange(256, dtype=np.uint32) << np.uint32(8 * k) for k in range(4)])
    for _ in range(_ROW_BYTES):
        start = _TABLE[start & 0xFF] ^ (start >> 8)
    return tuple(start[256 * k:256 * (k + 1)].tolist() for k in range(4))


def crc32c_numpy(data: Union[bytes, bytearray, memoryview]) -> int:
    """CRC32C (Castagnoli, as in iSCSI and TFRecord) of ``data`` in numpy: ``crc32c(b'123456789') == 0xE3069283``.

    Long inputs are cut in rows of 4 KiB whose CRCs numpy computes side by side and which are then chained with
    precomputed zero-shift tables (about 100 MB/s here); short inputs go through the byte-at-a-time table loop.
    """
    view = np.frombuffer(data, dtype=np.uint8)
    rows = view.size // _ROW_BYTES
    crc = 0xFFFFFFFF
    if rows >= _MIN_ROWS:
        z0, z1, z2, z3 = _zero_shift_tables()
        for row_crc in _update_rows(view[:rows * _ROW_BYTES].reshape(rows, _ROW_BYTES)).tolist():
            crc = z0[crc & 0xFF] ^ z1[(crc >> 8) & 0xFF] ^ z2[(crc >> 16) & 0xFF] ^ z3[crc >> 24] ^ row_crc
        view = view[rows * _ROW_BYTES:]
    return _update_bytewise(crc, view.tobytes()) ^ 0xFFFFFFFF


def crc32c(data: Union[bytes, bytearray, memoryview]) -> int:
    """CRC32C of ``data``: by google-crc32c's C library when installed, else :func:`crc32c_numpy` (same value)."""
    if google_crc32c is None:
        return crc32c_numpy(data)
    return google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)


CRC32C_IMPLEMENTATION = 'numpy' if google_crc32c is None else f'google-crc32c ({google_crc32c.implementation})'


def masked_crc32c(data: Union[bytes, bytearray, memoryview]) -> int:
    """The CRC32C of ``data`` masked as TFRecord stores it: rotate right by 15 bits, add 0xa282ead8 (mod 2**32)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------------------------- TFRecord
def iter_tfrecord(path: str, verify_crc: bool = True) -> Iterator[bytes]:
    """The data of every record of the TFRecord file ``path``, in order.

    Raises:
        TFRecordError: at the first record with a CRC mismatch (when ``verify_crc``) or cut short by the end of the
            file; the records before it have been yielded.
    """
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise TFRecordError(path, offset, f'truncated header ({len(header)} of 12 bytes before end of file)')
            length, length_crc = struct.unpack('<QI', header)
            if verify_crc and masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(path, offset, 'length CRC mismatch')
            if offset + 16 + length > size:
                raise TFRecordError(path, offset, f'truncated: the record claims {length:,} data bytes, the file '
                                                  f'ends {size - offset - 12:,} bytes after its header')
            data = f.read(length)
            (data_crc,) = struct.unpack('<I', f.read(4))
            if verify_crc and masked_crc32c(data) != data_crc:
                raise TFRecordError(path, offset, 'data CRC mismatch')
            yield data
            offset += 16 + length


# --------------------------------------------------------------------------------------------------------- protobuf
def read_varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    """The unsigned varint starting at ``buf[pos]`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError('truncated varint')
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError('varint longer than 10 bytes')


def iter_fields(buf: Union[bytes, memoryview]) -> Iterator[Tuple[int, int, Union[int, memoryview]]]:
    """``(field number, wire type, value)`` of every field of a serialized message, in order.

    The value is an int for varint, fixed64 and fixed32 fields (unsigned, as on the wire) and a memoryview into
    ``buf`` for length-delimited ones (bytes, strings, sub-messages, packed repeated fields).

    Raises:
        ProtobufError: truncated data, field number 0 or a group wire type (3, 4; not used by the Waymo protos).
    """
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError(f'field number 0 at byte {pos}')
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire in (WIRE_FIXED64, WIRE_FIXED32):
            width = 8 if wire == WIRE_FIXED64 else 4
            if pos + width > end:
                raise ProtobufError(f'truncated fixed{8 * width} field {number}')
            value, pos = int.from_bytes(buf[pos:pos + width], 'little'), pos + width
        elif wire == WIRE_LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise ProtobufError(f'field {number} claims {length} bytes, {end - pos} are left')
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise ProtobufError(f'unsupported wire type {wire} (field {number})')
        yield number, wire, value


def _check_wire(number: int, wire: int, expected: int, message: str) -> None:
    if wire != expected:
        raise ProtobufError(f'{message} field {number} has wire type {wire}, expected {expected}')


@dataclass(frozen=True)
class CameraImage:
    """One camera image of a frame: the ``CameraName.Name`` number and the JPEG bytes as stored."""

    camera: int
    jpeg: memoryview


@dataclass(frozen=True)
class FrameImages:
    """What extraction reads from a ``Frame``: segment (context) name, timestamp and the kept camera images."""

    context_name: str
    timestamp_micros: int
    images: Tuple[CameraImage, ...]


def _context_name(context: memoryview) -> str:
    name = ''
    for number, wire, value in iter_fields(context):
        if number == CONTEXT_NAME:
            _check_wire(number, wire, WIRE_LEN, 'Context')
            name = bytes(value).decode('utf-8')
    return name


def _camera_image(message: memoryview) -> CameraImage:
    camera, jpeg = 0, memoryview(b'')
    for number, wire, value in iter_fields(message):
        if number == CAMERA_IMAGE_NAME:
            _check_wire(number, wire, WIRE_VARINT, 'CameraImage')
            camera = value
        elif number == CAMERA_IMAGE_IMAGE:
            _check_wire(number, wire, WIRE_LEN, 'CameraImage')
            jpeg = value
    return CameraImage(camera, jpeg)


def parse_frame(record: Union[bytes, memoryview], cameras: Optional[Collection[int]] = None) -> FrameImages:
    """The context name, timestamp and camera images (only those in ``cameras`` when given) of a serialized Frame.

    Every other field (pose, lasers, labels, map features, ...) is stepped over whatever its wire type. The JPEG
    bytes are views into ``record`` (no copy).

    Raises:
        ProtobufError: the record is not a well-formed Frame.
    """
    name, timestamp, images = '', 0, []
    for number, wire, value in iter_fields(record):
        if number == FRAME_CONTEXT:
            _check_wire(number, wire, WIRE_LEN, 'Frame')
            name = _context_name(value)
        elif number == FRAME_TIMESTAMP_MICROS:
            _check_wire(number, wire, WIRE_VARINT, 'Frame')
            timestamp = value - (1 << 64) if value >= 1 << 63 else value  # int64 on the wire as two's complement
        elif number == FRAME_IMAGES:
            _check_wire(number, wire, WIRE_LEN, 'Frame')
            image = _camera_image(value)
            if cameras is None or image.camera in cameras:
                images.append(image)
    return FrameImages(name, timestamp, tuple(images))


# ------------------------------------------------------------------------------------------------------- extraction
@dataclass
class SegmentResult:
    """What became of one TFRecord file.

    Attributes:
        source: the TFRecord file.
        context_name: the segment name read from the frames (the output folder name).
        records: records read with valid framing.
        frames: frames kept (every ``every``-th record) whose images were written.
        images: written image paths, relative to the output folder, in frame and camera order.
        corrupt: the corrupt/truncated record that ended the file (message), or None when the file read to its end.
        bad_frames: records with valid framing that are not a well-formed Frame (skipped one by one).
        seconds: time spent on the file.
        skipped: True when the file was found done by an earlier run (nothing was read).
    """

    source: str
    context_name: str = ''
    records: int = 0
    frames: int = 0
    images: List[str] = field(default_factory=list)
    corrupt: Optional[str] = None
    bad_frames: int = 0
    seconds: float = 0.0
    skipped: bool = False


def find_tfrecords(inputs: Sequence[str]) -> List[str]:
    """The ``.tfrecord`` files among ``inputs`` (files, or folders searched recursively), sorted, without repeats.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no ``.tfrecord`` file was found, or one of several input folders holds none (an output folder
            given as an input, as in ``SEGMENTS_DIR OUT_DIR`` without ``--out``).
    """
    found = set()
    for path in inputs:
        if osp.isdir(path):
            inside = glob.glob(osp.join(glob.escape(path), '**', '*.tfrecord'), recursive=True)
            if not inside and len(inputs) > 1:
                raise ValueError(f'input folder {path!r} holds no .tfrecord file: if it is meant as the output '
                                 f'folder, give it as --out {path}')
            found.update(inside)
        elif osp.isfile(path):
            found.add(path)
        else:
            raise FileNotFoundError(f'input {path!r} does not exist')
    files = sorted(osp.abspath(p) for p in found if p.endswith('.tfrecord') and osp.isfile(p))
    if not files:
        raise ValueError(f'no .tfrecord file found in {", ".join(map(repr, inputs))} (folders are searched '
                         'recursively for *.tfrecord)')
    return files


def safe_folder_name(name: str, fallback: str) -> str:
    """``name`` with characters other than letters, digits, '_', '-' and '.' replaced by '_' (``fallback`` if empty
    or only dots)."""
    cleaned = re.sub(r'[^A-Za-z0-9_.-]', '_', name)
    return cleaned if cleaned.strip('.') else fallback


def _write_atomic(path: str, data: Union[bytes, memoryview]) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so ``path`` is never seen half-written."""
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def marker_path(out_dir: str, source: str) -> str:
    """The done-marker file of the TFRecord file ``source``: ``<out>/.done/<file name>.json``."""
    return osp.join(out_dir, DONE_FOLDER, osp.basename(source) + '.json')


def read_marker(out_dir: str, source: str, cameras: Sequence[str], every: int,
                shrink_for: Optional[str] = None) -> Optional[dict]:
    """The marker of ``source`` when it is done with these options and its size has not changed since, else None."""
    path = marker_path(out_dir, source)
    try:
        with open(path, encoding='utf-8') as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    same = (marker.get('source_size') == osp.getsize(source) and marker.get('cameras') == list(cameras)
            and marker.get('every') == every and marker.get('shrink_for') == shrink_for)
    return marker if same else None


def _shrunk_jpeg(jpeg: memoryview, policy, quality: int) -> Union[bytes, memoryview]:
    """The JPEG re-encoded at the size ``policy`` (a frame_shrink.ShrinkPolicy) allows for it; as stored when no
    shrink is allowed or it does not decode (the loader will reject it then, as it would have)."""
    from .frame_shrink import shrink_image
    from .transforms.robust_loading import ImageRejected, decode_image
    try:
        img = decode_image(bytes(jpeg))
    except ImageRejected:
        return jpeg
    plan = policy.plan(img.shape[:2])
    if not plan.shrinks:
        return jpeg
    ok, data = cv2.imencode('.jpg', shrink_image(img, plan.stored), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else jpeg


def extract_segment(source: str, out_dir: str, cameras: Sequence[str] = ALL_CAMERAS, every: int = 1,
                    verify_crc: bool = True, shrink_for: Optional[str] = None, quality: int = 95) -> SegmentResult:
    """Write the images of ``cameras`` of every ``every``-th frame of ``source`` and then its done marker.

    With ``shrink_for`` (a config file), each image is stored at the size that config's pipeline allows for it
    (multisiam_mm.datasets.frame_shrink, re-encoded at JPEG ``quality``); the marker records the factor per size.

    A corrupt/truncated record stops the file (recorded in ``corrupt``); a record that is not a Frame is skipped
    (counted in ``bad_frames``). The marker is written either way, so a rerun does not reread the file unless the
    file's size, ``cameras`` or ``every`` changed.
    """
    start = time.perf_counter()
    wanted = {CAMERA_IDS[name] for name in cameras}
    stem = osp.splitext(osp.basename(source))[0]
    result = SegmentResult(source=source)
    made_folders = set()
    policy = None
    if shrink_for:
        from .frame_shrink import ShrinkPolicy
        policy = ShrinkPolicy.from_config(shrink_for)
    try:
        for index, record in enumerate(iter_tfrecord(source, verify_crc)):
            result.records += 1
            if index % every:
                continue
            try:
                frame = parse_frame(record, wanted)
            except (ProtobufError, UnicodeDecodeError):
                result.bad_frames += 1
                continue
            result.context_name = result.context_name or safe_folder_name(frame.context_name, stem)
            folder = osp.join(out_dir, result.context_name)
            if folder not in made_folders:
                os.makedirs(folder, exist_ok=True)
                made_folders.add(folder)
            for image in frame.images:
                relative = f'{result.context_name}/{frame.timestamp_micros}_{CAMERA_NAMES[image.camera]}.jpg'
                _write_atomic(osp.join(out_dir, relative),
                              image.jpeg if policy is None else _shrunk_jpeg(image.jpeg, policy, quality))
                result.images.append(relative)
            result.frames += 1
    except TFRecordError as error:
        result.corrupt = str(error)
    result.seconds = time.perf_counter() - start
    marker = dict(asdict(result), source_size=osp.getsize(source), cameras=list(cameras), every=every,
                  shrink_for=shrink_for, shrink=None if policy is None else policy.record(quality))
    del marker['skipped']
    os.makedirs(osp.join(out_dir, DONE_FOLDER), exist_ok=True)
    _write_atomic(marker_path(out_dir, source), json.dumps(marker, indent=1).encode('utf-8'))
    return result


def _extract_task(args: Tuple[str, str, Tuple[str, ...], int, bool, Optional[str], int]) -> SegmentResult:
    return extract_segment(*args)


def _run_tasks(tasks: List[tuple], workers: int) -> Iterator[SegmentResult]:
    """The results of ``tasks`` (in this process, or in completion order from a pool of ``workers`` processes)."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_extract_task, tasks)
        return
    with multiprocessing.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap_unordered(_extract_task, tasks)


def write_list_file(out_dir: str, list_name: str) -> Tuple[str, int, int]:
    """Rebuild ``<out>/<list_name>.txt`` from all done markers in ``out_dir``; (path, images, segments).

    The shrink records of the markers (``--shrink-for``) are merged into ``<out>/frame_shrink.json`` (per frame
    size the largest factor used); a stale record is removed when no marker has one.
    """
    from .frame_shrink import RECORD_NAME, write_record
    markers = sorted(glob.glob(osp.join(glob.escape(out_dir), DONE_FOLDER, '*.json')))
    lines, record = [], None
    for path in markers:
        with open(path, encoding='utf-8') as f:
            marker = json.load(f)
        lines.extend(marker['images'])
        shrink = marker.get('shrink')
        if shrink:
            record = record or dict(shrink, sizes={})
            for key, entry in shrink['sizes'].items():
                if key not in record['sizes'] or entry['factor'] > record['sizes'][key]['factor']:
                    record['sizes'][key] = entry
            if shrink['config'] != record['config']:
                record['config'] = 'several configs (see .done/ markers)'
    if record is not None:
        write_record(out_dir, record)
    elif osp.isfile(osp.join(out_dir, RECORD_NAME)):
        os.remove(osp.join(out_dir, RECORD_NAME))
    list_file = osp.join(out_dir, f'{list_name}.txt')
    _write_atomic(list_file, ''.join(f'{line}\n' for line in lines).encode('utf-8'))
    return list_file, len(lines), len(markers)


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def _progress_line(done: int, total: int, result: SegmentResult, rate: Optional[float], left_bytes: int) -> str:
    name = osp.basename(result.source)
    if result.skipped:
        return f'[{done}/{total}] {name}: done earlier ({len(result.images)} images), skipped'
    line = (f'[{done}/{total}] {name}: {result.records} records, {result.frames} frames, {len(result.images)} '
            f'images in {result.seconds:.1f} s')
    if result.bad_frames:
        line += f', {result.bad_frames} undecodable frames skipped'
    if rate:
        line += f'; ETA {format_duration(left_bytes / rate)} ({rate / 1e6:.0f} MB/s)'
    return line


def extract_waymo(inputs: Sequence[str], out_dir: str, cameras: Sequence[str] = ALL_CAMERAS, every: int = 1,
                  list_name: str = DEFAULT_LIST_NAME, workers: int = 1, verify_crc: bool = True,
                  log: Callable[[str], None] = print, shrink_for: Optional[str] = None,
                  quality: int = 95) -> Dict[str, Union[int, str, List[str]]]:
    """Extract the camera images of every TFRecord file in ``inputs`` into ``out_dir`` and write the list file.

    Files done by an earlier run with the same ``cameras`` and ``every`` are skipped; ``workers`` > 1 extracts that
    many files at once in worker processes. ``shrink_for``: store each image at the size that config's pipeline
    allows (see :func:`extract_segment`; recorded in ``<out>/frame_shrink.json``). One progress line per file
    (with the ETA from the bytes left) and warnings for corrupt files go to ``log``.

    Returns:
        A summary: ``segments``, ``extracted`` and ``skipped`` files, ``frames`` and ``images`` written now,
        ``corrupt_records`` and ``corrupt_files`` (this run), ``bad_frames``, the ``list_file`` with its
        ``list_images`` and ``list_segments``.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no ``.tfrecord`` file in ``inputs``, an unknown camera name or ``every`` < 1.
    """
    unknown = [name for name in cameras if name not in CAMERA_IDS or name == 'UNKNOWN']
    if unknown or not cameras:
        raise ValueError(f'unknown camera names {unknown} (known: {", ".join(list(CAMERA_IDS)[1:])})')
    if every < 1:
        raise ValueError(f'every must be at least 1, got {every}')
    sources = find_tfrecords(inputs)
    cameras = tuple(cameras)
    os.makedirs(out_dir, exist_ok=True)
    results, todo = [], []
    for source in sources:
        marker = read_marker(out_dir, source, cameras, every, shrink_for)
        if marker is None:
            todo.append(source)
        else:
            results.append(SegmentResult(source, marker['context_name'], images=marker['images'], skipped=True))
            log(_progress_line(len(results), len(sources), results[-1], None, 0))
    left_bytes = sum(osp.getsize(s) for s in todo)
    done_bytes, start = 0, time.perf_counter()
    tasks = [(source, out_dir, cameras, every, verify_crc, shrink_for, quality) for source in todo]
    for result in _run_tasks(tasks, workers):
        size = osp.getsize(result.source)
        done_bytes, left_bytes = done_bytes + size, left_bytes - size
        results.append(result)
        log(_progress_line(len(results), len(sources), result, done_bytes / (time.perf_counter() - start),
                           left_bytes))
        if result.corrupt:
            log(f'WARNING: {result.corrupt}; skipped the rest of that file ({result.frames} frames read before it '
                'were kept)')
    extracted = [r for r in results if not r.skipped]
    list_file, list_images, list_segments = write_list_file(out_dir, list_name)
    return dict(segments=len(sources), extracted=len(extracted), skipped=len(results) - len(extracted),
                frames=sum(r.frames for r in extracted), images=sum(len(r.images) for r in extracted),
                corrupt_records=sum(bool(r.corrupt) for r in extracted),
                corrupt_files=[r.source for r in extracted if r.corrupt],
                bad_frames=sum(r.bad_frames for r in extracted),
                list_file=list_file, list_images=list_images, list_segments=list_segments)

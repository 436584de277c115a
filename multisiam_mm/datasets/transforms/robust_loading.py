"""RobustLoadImage: LoadImageFromFile that never kills a run on a bad file.

Output is that of mmcv's ``LoadImageFromFile`` (default ``color_type='color'``): ``img`` BGR uint8 (H, W, 3),
``img_shape`` = ``ori_shape`` = (H, W), ``img_path`` kept. Decoding is done with Pillow, which, unlike
``cv2.imdecode``, refuses truncated JPEG / PNG data instead of returning a half-grey image; the common case, a
complete grey or colour JPEG (its data end with the EOI marker), is decoded by ``cv2.imdecode``, which gives the same
pixels faster (``_opencv_jpeg``). What arrives is normalised, not rejected:

- grayscale (L, 1, LA, P) -> 3 equal channels; palette images through their palette;
- CMYK / YCbCr (JPEG, TIFF) -> RGB by Pillow (Adobe inverted CMYK JPEGs are handled by its decoder) -> BGR;
- 16-bit (PNG ``I;16``, ``I``) -> 8-bit by ``value >> 8`` (0..65535 onto 0..255); 48-bit RGB PNGs are reduced the
  same way by Pillow;
- RGBA / LA -> the colour channels, alpha dropped (not composited on a background);
- EXIF orientation (tag 274) applied, so the frame is upright as a viewer shows it (``ImageOps.exif_transpose``).

Rejected (the transform returns ``None``): unreadable or missing file, zero bytes, not an image, truncated or corrupt
data, float images (mode ``F``, no defined range), and images whose shorter side is below ``min_size``. Tiny images
are rejected, not upscaled: an upscaled thumbnail would be fed to RandomResizedCrop as if it were a full frame and
the views would be mostly interpolation. mmengine's ``BaseDataset.__getitem__`` treats ``None`` from the pipeline
as "draw another index" (``_rand_another``, up to ``max_refetch`` times), so a bad file costs one retry.

Each rejection is counted per reason in :attr:`RobustLoadImage.rejected` (per process: every data worker holds its
own copy of the pipeline) and logged through the current MMLogger with the path, the worker id and the counts: the
first ``warn_first`` rejections each, then only when the total reaches a power of two. When ``max_consecutive``
images in a row are rejected the data cannot be read at all (wrong root, unmounted volume, wrong format), so the
transform raises instead of letting mmengine retry ``max_refetch`` times per sample.

Quarantine. A rejected file is added to a :class:`Quarantine`: it is not opened again in this run, by any process.
The quarantine is the append-only text file named by the environment variable ``MULTISIAM_BAD_FILES``
(``<work_dir>/bad_files.txt``: tools/train.py, tools/demo.py and BadFilesHook set it, :func:`record_bad_files`), one
line ``path<TAB>reason`` per file, without duplicates (appends are serialised by ``flock``). Data workers are
separate processes, each with its copy of the pipeline: they share the quarantine through that file, which each of
them re-reads when it has grown (one ``stat`` per sample), so a file rejected by one worker is skipped by the others
and by the workers of later epochs without being opened. Without the variable each process keeps its own in-memory
quarantine. The readers outside the data pipeline (ClusterMapHook, tools/visualize_clusters.py, the probes and
evaluation tools) read through :func:`load_images`, which skips, warns and quarantines in the same way.

Cost: a good 1920x1280 JPEG decodes in the time ``cv2.imdecode`` takes (5.5 ms on the 2-core dev machine), to the
same pixels as LoadImageFromFile; the Pillow path takes 1.3x that (docs/decode_benchmark.md).

Reduced decoding (``reduced_decode=True``). A JPEG is then only read and its header parsed (upright size, EXIF
orientation): ``img`` becomes a :class:`DeferredJpeg`, which the next transform (``IoUPairCrop``, also inside
``OdinSpanningView``) decodes once its crop boxes are drawn, at the coarsest DCT scale (1/2, 1/4, 1/8) at which
every crop keeps its output size (multisiam_mm.datasets.transforms.scaled_pixels). Files that are not JPEGs or whose
header cannot be parsed are decoded in full here, as without the option. A JPEG found corrupt only by the deferred
decode is rejected there, through this loader's counters and warnings, and the crop transform returns ``None``.

Device decoding (``device_decode=True``, docs/data_ingestion.md). A complete 3-component JPEG without EXIF rotation
(:func:`device_decodable`) is only read and its header parsed: ``img`` becomes a :class:`DeferredJpeg` with
``device=True``, for which IoUPairCrop draws the boxes and flips, PairPhotometric the parameters of T / T', and
PackPairInputs sends the bytes; the data preprocessor (multisiam_mm.models.data_preprocessors.DevicePairPreprocessor)
decodes the batch on the GPU and makes the views. Every other file is decoded here, as without the option.
"""
import contextlib
import fcntl
import io
import logging
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageOps

from .scaled_pixels import CropResize, ScaledPixels, exif_offset

_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')
_JPEG_SOI, _JPEG_EOI = b'\xff\xd8', b'\xff\xd9'
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 (not DHT, JPG, DAC)
# cv2.imdecode flags decoding at 1/factor (libjpeg DCT scaling); they apply the EXIF orientation, as exif_transpose
OPENCV_DECODE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                       8: cv2.IMREAD_REDUCED_COLOR_8}


BAD_FILES_ENV = 'MULTISIAM_BAD_FILES'
BAD_FILES_NAME = 'bad_files.txt'


class ImageRejected(ValueError):
    """A file that cannot be turned into a usable 8-bit colour image; the message is the reason."""


def _key(path: str) -> str:
    """The quarantine key of a path: absolute for a local path (so ``a.jpg`` and ``./a.jpg`` are one file), as given
    for a URL (``s3://...``)."""
    return path if '://' in path else osp.abspath(path)


def _escape(text: str) -> str:
    """``text`` without tabs and line breaks (backslash escapes), so that a line of the quarantine file is one entry."""
    return text.replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n').replace('\r', '\\r')


def _unescape(text: str) -> str:
    """The inverse of :func:`_escape`."""
    out, i = [], 0
    while i < len(text):
        if text[i] == '\\' and i + 1 < len(text):
            out.append({'t': '\t', 'n': '\n', 'r': '\r'}.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


class Quarantine:
    """The files that failed to load in this run, shared by every process through one append-only text file.

    Each line of the file is ``path<TAB>reason`` (tabs and line breaks in either escaped with backslashes); a path
    appears once. Membership tests re-read the file only when it has grown (one ``os.stat``), so every process sees
    the files the others added. ``path=None``: an in-memory quarantine of this process only.

    Args:
        path: the quarantine file (created on the first :meth:`add`); None for none.
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path
        self.reasons: Dict[str, str] = {}  # key (see _key) -> reason
        self._offset = 0  # bytes of the file already read

    def _refresh(self) -> None:
        """Read the complete lines appended to the file since the last read."""
        if self.path is None:
            return
        try:
            if os.stat(self.path).st_size <= self._offset:
                return
            with open(self.path, 'rb') as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:  # not written yet
            return
        end = chunk.rfind(b'\n') + 1  # a line being written by another process is read next time
        for line in chunk[:end].decode('utf-8', 'replace').splitlines():
            path, _, reason = line.partition('\t')
            if path:
                self.reasons.setdefault(_unescape(path), _unescape(reason))
        self._offset += end

    def __contains__(self, path: str) -> bool:
        key = _key(path)
        if key not in self.reasons:
            self._refresh()
        return key in self.reasons

    def __len__(self) -> int:
        self._refresh()
        return len(self.reasons)

    def add(self, path: str, reason: str) -> bool:
        """Quarantine ``path``; False when it already was (by this or another process)."""
        if path in self:
            return False
        key = _key(path)
        if self.path is not None:
            folder = osp.dirname(osp.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            with open(self.path, 'ab') as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # released by close; another process may have added it meanwhile
                self._refresh()
                if key in self.reasons:
                    return False
                f.write(f'{_escape(key)}\t{_escape(reason)}\n'.encode())
        self.reasons[key] = reason
        return True


def current_quarantine_file() -> Optional[str]:
    """The quarantine file of this run: ``$MULTISIAM_BAD_FILES``, or None when unset."""
    return os.environ.get(BAD_FILES_ENV) or None


@contextlib.contextmanager
def record_bad_files(work_dir: str) -> Iterator[str]:
    """Within the block, quarantine bad files in ``<work_dir>/bad_files.txt`` (in this process and in the data
    workers started inside it); the previous setting comes back afterwards. Yields the file's path."""
    path = osp.join(osp.abspath(work_dir), BAD_FILES_NAME)
    previous = os.environ.get(BAD_FILES_ENV)
    os.environ[BAD_FILES_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(BAD_FILES_ENV, None)
        else:
            os.environ[BAD_FILES_ENV] = previous


def read_file_bytes(path: str, backend_args: Optional[dict] = None) -> bytes:
    """The bytes of a file through mmengine's file backends; ImageRejected (``cannot read``) when that fails."""
    try:
        return get(path, backend_args=backend_args)
    except Exception as err:  # missing file, broken link, a folder, permission, I/O or network error
        raise ImageRejected(f'cannot read ({type(err).__name__}: {err})') from err


def load_images(paths: Iterable[str], limit: Optional[int] = None, min_size: int = 0,
                quarantine: Optional[Quarantine] = None, who: str = 'load_images') -> Iterator[Tuple[str, np.ndarray]]:
    """``(path, BGR uint8 (H, W, 3))`` of each readable image of ``paths``, in order, until ``limit`` of them.

    A file that cannot be used (unreadable, empty, not an image, truncated, too small, ...) is skipped with a
    warning naming it and the reason, and quarantined; a file already quarantined is skipped without being opened.
    ``quarantine`` defaults to the run's (:func:`current_quarantine_file`).
    """
    quarantine = quarantine if quarantine is not None else Quarantine(current_quarantine_file())
    found = 0
    for path in paths:
        if limit is not None and found >= limit:
            return
        if path in quarantine:
            continue
        try:
            img = decode_image(read_file_bytes(path), min_size)
        except ImageRejected as err:
            quarantine.add(path, str(err))
            listed = f' (listed in {quarantine.path})' if quarantine.path else ''
            print_log(f'{who}: skipped {path!r}: {err}{listed}', logger='current', level=logging.WARNING)
            continue
        found += 1
        yield path, img


def decode_image(data: bytes, min_size: int = 0, factor: int = 1) -> np.ndarray:
    """Decode image bytes into a BGR uint8 (H, W, 3) array, normalised as described in the module doc.

    Args:
        factor: decode a JPEG at exactly 1/factor of its resolution by DCT scaling (1, 2, 4 or 8): the array is then
            (ceil(H / factor), ceil(W / factor), 3), see multisiam_mm.datasets.transforms.scaled_pixels.

    Raises:
        ImageRejected: empty, not an image, truncated or corrupt, an unsupported mode, or a side below min_size; and
            a factor > 1 that libjpeg cannot apply (not a JPEG).
    """
    if not data:
        raise ImageRejected('empty file (0 bytes)')
    img = _opencv_jpeg(data, factor)
    if img is None:
        img = _pillow_bgr(data, factor)
    _check_size(img.shape[:2], min_size)
    return img


def _jpeg_frame(data: bytes) -> Optional[Tuple[int, int, int]]:
    """(height, width, colour components) from the frame header (SOFn) of JPEG bytes; None if none precedes the
    scan."""
    i = 2  # after SOI
    while i + 10 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _SOF_MARKERS:
            h, w = int.from_bytes(data[i + 5:i + 7], 'big'), int.from_bytes(data[i + 7:i + 9], 'big')
            return h, w, data[i + 9]  # FF Cn, length (2), precision (1), height (2), width (2), Nf
        elif marker in (0xDA, 0xD9):  # start of scan / end of image: no frame header
            return None
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], 'big')
    return None


def device_decodable(data: bytes, orientation: int) -> bool:
    """Whether JPEG bytes can go to the device decoder as they are: complete (ends with EOI), 3 colour components,
    no EXIF rotation (nvJPEG ignores EXIF). Others are decoded on the CPU, robustly, as without the option."""
    frame = _jpeg_frame(data) if data.endswith(_JPEG_EOI) else None
    return frame is not None and frame[2] == 3 and orientation == 1


def _opencv_jpeg(data: bytes, factor: int) -> Optional[np.ndarray]:
    """BGR pixels by OpenCV for a complete grey or colour JPEG; None for any other file (Pillow decides those).

    Complete: the data end with the EOI marker, which a truncated file lacks (OpenCV would fill its missing rows with
    grey instead of failing). Grey or colour: 1 or 3 components (CMYK / YCCK JPEGs go to Pillow, which handles
    Adobe's inverted CMYK). Frames above Pillow's ``Image.MAX_IMAGE_PIXELS`` also go to Pillow, so that its
    decompression-bomb check still applies. On these files OpenCV and Pillow run the same libjpeg-turbo and give the
    same pixels, at every DCT scale and EXIF orientation (tests/test_robustness.py), without Pillow's copies into
    numpy.
    """
    frame = _jpeg_frame(data) if data.startswith(_JPEG_SOI) and data.endswith(_JPEG_EOI) else None
    if frame is None or frame[2] not in (1, 3) or frame[0] * frame[1] > (Image.MAX_IMAGE_PIXELS or float('inf')):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), OPENCV_DECODE_FLAGS[factor])  # None on a fatal libjpeg error


def _pillow_bgr(data: bytes, factor: int) -> np.ndarray:
    """BGR pixels by Pillow for any image format and mode (see the module doc); ImageRejected if it fails."""
    try:
        with Image.open(io.BytesIO(data)) as pil:
            if factor > 1:
                _draft(pil, factor)
            pil.load()  # decodes everything: truncated data raises here
            ImageOps.exif_transpose(pil, in_place=True)  # no copy when there is no orientation tag
            img = _to_rgb(pil)
    except ImageRejected:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise ImageRejected(f'cannot decode ({type(err).__name__}: {err})') from err
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # 30x faster than a numpy channel flip + copy


def _check_size(img_hw: Tuple[int, int], min_size: int) -> None:
    if min(img_hw) < min_size:
        raise ImageRejected(f'too small ({img_hw[1]}x{img_hw[0]}, min_size={min_size})')


def _draft(pil: Image.Image, factor: int) -> None:
    """Make Pillow decode a JPEG at exactly 1/factor; ValueError where it would not (not a JPEG, or too small)."""
    w, h = pil.size
    drafted = pil.draft(None, (w // factor, h // factor))  # libjpeg's scale: the largest power of 2 that fits
    if drafted is None or drafted[1][2:] != (w / factor, h / factor):
        raise ValueError(f'no DCT scaling to 1/{factor} for a {w}x{h} {pil.format} image')


def read_jpeg_header(data: bytes) -> Optional[Tuple[Tuple[int, int], int]]:
    """Upright (H, W) and EXIF orientation (1-8) of JPEG bytes, from the header alone (no decoding).

    MPO files (a JPEG followed by more frames, as many cameras write) count as JPEGs: Pillow decodes their first
    frame. None for other formats or an unreadable header. Orientations 5-8 transpose the stored frame, so its
    (H, W) is swapped, as ``ImageOps.exif_transpose`` (applied by :func:`decode_image`) does; other values count as 1.
    """
    try:
        with Image.open(io.BytesIO(data)) as pil:
            if pil.format not in ('JPEG', 'MPO'):
                return None
            orientation = pil.getexif().get(0x0112, 1)
            w, h = pil.size
    except Exception:  # anything Pillow raises on a bad header: the full decode will say why
        return None
    orientation = orientation if orientation in range(1, 9) else 1
    return ((w, h) if orientation >= 5 else (h, w)), orientation


@dataclass
class DeferredJpeg:
    """``img`` of ``RobustLoadImage(reduced_decode=True)`` for a JPEG: read, header parsed, not yet decoded.

    The crop transform that receives it calls :meth:`decode_for` with its boxes; ``later_crops`` lets a wrapping
    transform (OdinSpanningView) declare the crops it will cut from the same pixels afterwards, so that the scale
    suits them too.

    Attributes:
        data: the file's bytes.
        hw: upright full-resolution (H, W), the image size every box refers to.
        orientation: EXIF orientation (1-8), applied after decoding.
        report: the loader's verdict callback: ``report(None)`` decoded, ``report(reason)`` rejected.
        later_crops: (box_of_views, resize) pairs: ``box_of_views`` maps the views' boxes (N, 4) to the box (4,)
            of a later crop, resized by ``resize``.
        pixels: the decoded pixels, set by :meth:`decode_for`.
        device: left for the data preprocessor to decode on the device (``device_decode``): the crop transform
            records its boxes and keeps this object as ``img``; PackPairInputs sends :attr:`data`.
    """

    data: bytes
    hw: Tuple[int, int]
    orientation: int
    report: Callable[[Optional[str]], None]
    later_crops: Tuple[Tuple[Callable[[np.ndarray], np.ndarray], CropResize], ...] = ()
    pixels: Optional[ScaledPixels] = None
    device: bool = False

    def decode_for(self, boxes: np.ndarray, resize: CropResize) -> Optional[ScaledPixels]:
        """Decode at the coarsest DCT scale at which the boxes (N, 4) resized by ``resize`` and every later crop keep
        their output size; None when the data turn out corrupt (counted as a rejection by the loader)."""
        factor = min([resize.max_factor(boxes)] + [later.max_factor(box_of(boxes)[None])
                                                   for box_of, later in self.later_crops])
        try:
            img = decode_image(self.data, factor=factor)
        except ImageRejected as err:
            self.report(str(err))
            return None
        self.report(None)
        self.pixels = ScaledPixels(img, factor, exif_offset(self.orientation, self.hw, factor))
        return self.pixels


def _to_rgb(pil: Image.Image) -> np.ndarray:
    """RGB uint8 (H, W, 3) of any Pillow mode with a defined integer range."""
    if pil.mode in _SIXTEEN_BIT_MODES:
        gray = (np.clip(np.asarray(pil, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if pil.mode == 'F':
        raise ImageRejected('float image (mode F): no defined value range')
    return np.asarray(pil if pil.mode == 'RGB' else pil.convert('RGB'))  # convert() copies even RGB -> RGB


def _worker_id() -> Optional[int]:
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    return None if info is None else info.id


@TRANSFORMS.register_module()
class RobustLoadImage(BaseTransform):
    """Drop-in replacement of ``LoadImageFromFile`` that decodes robustly or rejects (returns None) with a warning.

    **Required keys:** ``img_path``. **Added keys:** ``img`` (BGR uint8, or float32 with ``to_float32``; a
    :class:`DeferredJpeg` for a JPEG with ``reduced_decode``), ``img_shape``, ``ori_shape`` (upright (H, W)).

    Args:
        min_size: reject images whose shorter side is below this (after EXIF rotation); 0 accepts any size.
        to_float32: return a float32 image, as LoadImageFromFile's option.
        warn_first: log each of the first ``warn_first`` rejections of this process; later ones only when the
            total reaches a power of two.
        max_consecutive: raise RuntimeError after this many rejections in a row (0 never raises).
        backend_args: mmengine file backend arguments, as LoadImageFromFile's.
        reduced_decode: leave JPEGs to the next transform (IoUPairCrop), which decodes them at the coarsest DCT scale
            its crops allow (module doc); needs uint8 (``to_float32=False``).
        device_decode: leave plain JPEGs to the data preprocessor (DevicePairPreprocessor), which decodes them on the
            GPU (module doc); sets ``device_decode`` in the results for PairPhotometric and PackPairInputs.
    """

    def __init__(self, min_size: int = 32, to_float32: bool = False, warn_first: int = 10,
                 max_consecutive: int = 100, backend_args: Optional[dict] = None,
                 reduced_decode: bool = False, device_decode: bool = False) -> None:
        if min_size < 0 or warn_first < 0 or max_consecutive < 0:
            raise ValueError(f'RobustLoadImage: min_size, warn_first and max_consecutive must be >= 0, got '
                             f'{min_size}, {warn_first}, {max_consecutive}')
        if reduced_decode and to_float32:
            raise ValueError('RobustLoadImage: reduced_decode decodes to uint8 in the crop transform; it cannot be '
                             'combined with to_float32')
        if device_decode and (reduced_decode or to_float32):
            raise ValueError('RobustLoadImage: device_decode sends the JPEG bytes to the data preprocessor; it '
                             'cannot be combined with reduced_decode or to_float32')
        self.device_decode = device_decode
        self.min_size = min_size
        self.to_float32 = to_float32
        self.warn_first = warn_first
        self.max_consecutive = max_consecutive
        self.backend_args = backend_args.copy() if backend_args else None
        self.reduced_decode = reduced_decode
        self.loaded = 0
        self.rejected: Counter = Counter()
        self.skipped = 0  # files found in the quarantine, not opened
        self.consecutive = 0
        self._quarantine = Quarantine(current_quarantine_file())

    @property
    def quarantine(self) -> Quarantine:
        """This process's view of the run's quarantine (follows ``$MULTISIAM_BAD_FILES``)."""
        path = current_quarantine_file()
        if path != self._quarantine.path:
            self._quarantine = Quarantine(path)
        return self._quarantine

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        if path in self.quarantine:
            self._verdict(path, 'quarantined', known=True)
            return None
        try:
            img = self._load(path)
        except ImageRejected as err:
            self._verdict(path, str(err))
            return None
        if isinstance(img, DeferredJpeg):
            img_hw = img.hw  # counted as loaded (or rejected) by the transform that decodes it
        else:
            self._verdict(path, None)
            img_hw = img.shape[:2]
            img = img.astype(np.float32) if self.to_float32 else img
        results['img'] = img
        results['img_shape'] = img_hw
        results['ori_shape'] = img_hw
        if self.device_decode:
            results['device_decode'] = True
        return results

    def _load(self, path: str) -> Union[np.ndarray, DeferredJpeg]:
        """The decoded image; with ``reduced_decode``, a :class:`DeferredJpeg` where the file is a readable JPEG."""
        data = read_file_bytes(path, self.backend_args)
        header = read_jpeg_header(data) if self.reduced_decode or self.device_decode else None
        if self.device_decode and header is not None and not device_decodable(data, header[1]):
            header = None
        if header is None:
            return decode_image(data, self.min_size)
        _check_size(header[0], self.min_size)
        return DeferredJpeg(data, *header, report=partial(self._verdict, path), device=self.device_decode)

    def _verdict(self, path: str, reason: Optional[str], known: bool = False) -> None:
        """Count a decoded image (``reason`` None), a rejected one (quarantined, warned) or one skipped because it
        already was quarantined (``known``, not warned again); raise after max_consecutive failures in a row."""
        if reason is None:
            self.loaded += 1
            self.consecutive = 0
            return
        self.consecutive += 1
        if known:
            self.skipped += 1
        else:
            self.rejected[reason.split(' (')[0]] += 1
            self.quarantine.add(path, reason)
        total = sum(self.rejected.values())
        worker = _worker_id()
        where = 'main process' if worker is None else f'data worker {worker}'
        if self.max_consecutive and self.consecutive >= self.max_consecutive:
            raise RuntimeError(f'RobustLoadImage: {self.consecutive} images in a row could not be loaded in the '
                               f'{where}, the last {path!r}: {reason}. The data looks unreadable (wrong data_root, '
                               f'unmounted volume, unsupported format?). Rejections so far: {dict(self.rejected)}')
        if not known and (total <= self.warn_first or total & (total - 1) == 0):
            listed = f'listed in {self.quarantine.path}' if self.quarantine.path else 'this process only'
            print_log(f'RobustLoadImage: skipped {path!r}: {reason} (quarantined, {listed}: not read again). '
                      f'{where}: {total} rejected, {self.loaded} loaded, by reason {dict(self.rejected)}',
                      logger='current', level=logging.WARNING)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, to_float32={self.to_float32}, '
                f'warn_first={self.warn_first}, max_consecutive={self.max_consecutive}, '
                f'backend_args={self.backend_args}, reduced_decode={self.reduced_decode}, '
                f'device_decode={self.device_decode})')

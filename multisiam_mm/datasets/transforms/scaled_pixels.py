"""Crops cut in full-resolution coordinates from an image decoded at a reduced JPEG DCT scale (issue 7, item 3).

libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 of its resolution by scaling the inverse DCT (Pillow's ``draft``), which
skips most of the IDCT, upsampling and colour conversion work of a full decode. Reduced pixel j covers the
full-resolution pixels [j f, (j + 1) f), so a full-resolution coordinate u (continuous, pixel edges at integers) lies
at u / f in the reduced image, which has ceil(W / f) x ceil(H / f) pixels (the last column and row partly cover
libjpeg's edge padding). An EXIF flip or rotation applied after decoding reverses some axes; a reversed axis of
full-resolution length L then starts ceil(L / f) - L / f reduced pixels later (:func:`exif_offset`).

:meth:`ScaledPixels.crop` cuts a full-resolution box (x1, y1, x2, y2) and resizes it to S x S. At factor 1 it is the
integer slice + ``mmcv.imresize`` of the full-resolution pipeline, bit for bit. At factor f > 1 it is one
``cv2.warpAffine`` with the same cv2 interpolation, mapping each output pixel centre to the point the full-resolution
resize samples (cv2.resize's half-pixel convention), divided by f: the geometry is exact, only the pixel values
differ (the DCT-scaled image is smoother than the full-resolution one, i.e. less aliased). The reduced path is taken
only where every box keeps at least S pixels per side after reduction (:meth:`CropResize.max_factor`), so views are
resized down (or 1:1), never up.
"""
from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import mmcv
import numpy as np

FACTORS = (8, 4, 2, 1)  # libjpeg's DCT scales available through Pillow's draft, coarsest first
_WARP_FLAGS = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
               'lanczos': cv2.INTER_LANCZOS4}
# axes (x, y) of the upright image that ImageOps.exif_transpose reverses, by EXIF orientation (1 and unknown: none)
_EXIF_REVERSED = {2: (True, False), 3: (True, True), 4: (False, True), 5: (False, False), 6: (True, False),
                  7: (True, True), 8: (False, True)}


def exif_offset(orientation: int, img_hw: Sequence[int], factor: int) -> Tuple[float, float]:
    """(x, y) offset of full-resolution coordinates in the upright image decoded at 1/factor, after the EXIF transpose.

    Args:
        orientation: EXIF orientation tag (1-8; other values are not applied by Pillow, i.e. count as 1).
        img_hw: upright full-resolution (H, W).
    """
    reversed_xy = _EXIF_REVERSED.get(orientation, (False, False))
    lengths = (img_hw[1], img_hw[0])
    return tuple(float(-(-n // factor) - n / factor) if rev else 0.0 for rev, n in zip(reversed_xy, lengths))


@dataclass(frozen=True)
class CropResize:
    """Cut a box and resize it to ``size`` x ``size`` by ``mmcv.imresize(interpolation, backend)``."""

    size: int
    interpolation: str = 'bicubic'
    backend: str = 'cv2'

    def max_factor(self, boxes: np.ndarray) -> int:
        """Coarsest DCT scale f in :data:`FACTORS` at which every box (N, 4) keeps >= ``size`` pixels per side.

        1 where a fractional box cannot be resized like the full-resolution path (backend ``pillow``, interpolation
        ``area``: no cv2.warpAffine counterpart) or a box is already smaller than ``size``.
        """
        if self.backend != 'cv2' or self.interpolation not in _WARP_FLAGS:
            return 1
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).min()
        return next((f for f in FACTORS if side >= f * self.size), 1)


@dataclass(frozen=True)
class ScaledPixels:
    """An image's pixels at 1/``factor`` of its full resolution: full-resolution coordinate u is at
    u / factor + ``offset`` here ((x, y), see :func:`exif_offset`). Factor 1 wraps a full-resolution image."""

    img: np.ndarray  # (h, w[, C]), h = ceil(H / factor), w = ceil(W / factor)
    factor: int = 1
    offset: Tuple[float, float] = (0.0, 0.0)

    def crop(self, box: np.ndarray, resize: CropResize) -> np.ndarray:
        """(S, S[, C]) view of the full-resolution box (4,) (x1, y1, x2, y2), integer-valued, S = ``resize.size``."""
        size = (resize.size, resize.size)
        if self.factor == 1:
            x1, y1, x2, y2 = np.asarray(box).astype(np.int64)
            return mmcv.imresize(self.img[y1:y2, x1:x2], size, interpolation=resize.interpolation,
                                 backend=resize.backend)
        return cv2.warpAffine(self.img, self.inverse_map(box, resize.size), size,
                              flags=_WARP_FLAGS[resize.interpolation] | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def inverse_map(self, box: np.ndarray, size: int) -> np.ndarray:
        """(2, 3) affine map from an output pixel index of the S x S view to a (fractional) pixel index here.

        Output pixel i has its centre at x1 + (i + 1/2) (x2 - x1) / S in full-resolution coordinates (where
        cv2.resize of the crop samples it), i.e. at that / factor + offset here, which is pixel index that - 1/2.
        """
        box = np.asarray(box, dtype=np.float64)
        step = (box[2:] - box[:2]) / (size * self.factor)  # (x, y) reduced pixels per output pixel
        shift = box[:2] / self.factor + np.asarray(self.offset) + step / 2 - 0.5
        return np.array(((step[0], 0.0, shift[0]), (0.0, step[1], shift[1])))

"""Views cut on the device from JPEG bytes: batched decode, pair-crop boxes, flips (issue 18, item 4).

The CPU pipeline cuts view i as ``mmcv.imresize(frame[y1:y2, x1:x2], (S, S), interpolation)`` (cv2) and flips it
when ``view_flips[i]``. Here the same integer box of the decoded frame is resized with ``F.interpolate`` of the same
kind (bicubic / bilinear: cv2's a = -0.75 cubic and half-pixel centres, as torch's ``align_corners=False``; nearest),
rounded and clipped to 0..255 as cv2's uint8 result is, then flipped. What differs from the CPU view is cv2's 11-bit
fixed-point weights and the decoder's rounding (libjpeg-turbo in both on the CPU, nvJPEG on a GPU): a level or two
on a few pixels, far less than a one-pixel shift of the box (tests/test_device_decode.py).
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
import torchvision.io as tvio

DEVICE_INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic')


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device) -> List[torch.Tensor]:
    """BGR uint8 (3, H, W) frames on ``device`` of JPEG byte tensors (N,) uint8 (on the CPU), decoded as a batch by
    ``torchvision.io.decode_jpeg`` (nvJPEG on a CUDA device). Raises RuntimeError if any of them cannot be decoded."""
    frames = tvio.decode_jpeg(list(data), mode=tvio.ImageReadMode.RGB, device=device)
    return [f.flip(0) for f in frames]


def cut_views(frame: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int,
              interpolation: str = 'bicubic') -> torch.Tensor:
    """(V, 3, S, S) float views (values 0..255, integers) of a (3, H, W) frame.

    Args:
        boxes: (V, 4) integer-valued crop boxes (x1, y1, x2, y2) in frame pixels, as IoUPairCrop records them.
        flips: (V,) bool, horizontal flip after the resize.
        size: S.
        interpolation: one of :data:`DEVICE_INTERPOLATIONS` (IoUPairCrop's).
    """
    if interpolation not in DEVICE_INTERPOLATIONS:
        raise ValueError(f'cut_views: interpolation {interpolation!r} has no device counterpart; use one of '
                         f'{DEVICE_INTERPOLATIONS}')
    corner = dict(align_corners=False) if interpolation != 'nearest' else {}
    views = []
    for (x1, y1, x2, y2), flip in zip(boxes.round().long().tolist(), flips.tolist()):
        crop = frame[:, y1:y2, x1:x2][None].float()
        view = F.interpolate(crop, size=(size, size), mode=interpolation, **corner)
        view = torch.floor(view + 0.5).clamp(0, 255)  # cv2's saturate_cast of a uint8 resize
        views.append(view.flip(-1) if flip else view)
    return torch.cat(views)

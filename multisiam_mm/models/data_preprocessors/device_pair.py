"""DevicePairPreprocessor: decode JPEG batches on the GPU, cut the pair-crop views there, apply BYOL's T / T'.

The data workers of a ``RobustLoadImage(device_decode=True)`` pipeline only read each file, draw its view boxes and
flips (IoUPairCrop) and the parameters of T / T' (PairPhotometric, multisiam_mm.datasets.transforms.photometric_draws)
and send the JPEG bytes: a pair costs a worker the header parse and the random draws instead of a full decode, two
resizes and the photometric ops (benchmarks/loader_bench.py). This preprocessor does the rest for the whole batch:

  bytes --decode_jpeg(device)--> BGR frames --boxes, flips--> (B, 2, 3, S, S) views --draw tables--> T / T' applied
  --> SelfSupDataPreprocessor (BGR -> RGB, normalise) --> [view1 (B, 3, S, S), view2]

so an algorithm receives what the CPU pipeline gives it. Samples the workers decoded on the CPU (not a plain
3-channel JPEG, or an EXIF rotation) arrive as views already cut and with T / T' applied (an empty draw table), and
join the batch here; the robust loader rejects truncated or unreadable files in the worker, as without the option.

Device. ``decode_device='auto'`` decodes where the model is (nvJPEG on a CUDA device); on a CPU-only machine, or with
``decode_device='cpu'``, torchvision's libjpeg-turbo decodes in the main process (one log line says so): slow at
scale, but the same views, so a config runs anywhere. A JPEG that the device decoder refuses is decoded again by the
robust CPU loader; one that nothing decodes is quarantined (``bad_files.txt``), warned about, and its sample is
replaced by another sample of the batch, so the batch keeps its size.

The dataloader must use ``collate_fn=dict(type='pseudo_collate')`` (byte strings of different lengths do not stack).
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from multisiam_mm.datasets.transforms.robust_loading import (
    ImageRejected,
    Quarantine,
    current_quarantine_file,
    decode_image,
)
from multisiam_mm.models.utils.device_views import cut_views, decode_jpegs
from multisiam_mm.models.utils.photometric import apply_draws

DECODE_DEVICES = ('auto', 'cuda', 'cpu')


@MODELS.register_module()
class DevicePairPreprocessor(SelfSupDataPreprocessor):
    """SelfSupDataPreprocessor that first makes the view pairs of JPEG bytes on the device (module doc).

    Args:
        decode_device: 'auto' (the model's device), 'cuda' (falls back to the CPU with a log line when there is no
            GPU) or 'cpu'.
        **kwargs: SelfSupDataPreprocessor's (mean, std, to_rgb ...), applied to the views as made here (BGR).
    """

    def __init__(self, decode_device: str = 'auto', **kwargs) -> None:
        if decode_device not in DECODE_DEVICES:
            raise ValueError(f'DevicePairPreprocessor: decode_device must be one of {DECODE_DEVICES}, got '
                             f'{decode_device!r}')
        super().__init__(**kwargs)
        self.decode_device = decode_device
        self._announced = False

    def target_device(self) -> torch.device:
        """Where frames are decoded and views cut."""
        model = torch.device(self._device) if not isinstance(self._device, torch.device) else self._device
        wanted = model if self.decode_device == 'auto' else torch.device(self.decode_device)
        if wanted.type == 'cuda' and not torch.cuda.is_available():
            wanted = torch.device('cpu')
        if not self._announced:
            self._announced = True
            how = 'nvJPEG' if wanted.type == 'cuda' else "torchvision's libjpeg-turbo in the main process"
            extra = '' if wanted.type == 'cuda' else ' (no CUDA device: slow at scale, same views)'
            print_log(f'DevicePairPreprocessor: decoding JPEG batches on {wanted} with {how}{extra}',
                      logger='current', level=logging.INFO)
        return wanted

    def forward(self, data: dict, training: bool = False) -> dict:
        payloads, samples = _unpack(data)
        device = self.target_device()
        frames = decode_batch(payloads, samples, device)
        views = make_views(payloads, samples, frames, device)  # (B, 2, 3, S, S)
        draws = torch.stack([torch.as_tensor(ds.photometric_draws) for ds in samples]).to(device)  # (B, 2, J, 4)
        pair = [apply_draws(views[:, i], draws[:, i]) for i in range(views.shape[1])]
        return super().forward({'inputs': pair, 'data_samples': samples}, training)


def decode_batch(payloads: List[torch.Tensor], samples: List, device: torch.device) -> Dict[int, torch.Tensor]:
    """Frames (3, H, W) BGR uint8 on ``device`` of the JPEG payloads (N,) of a batch, by sample index.

    One batched decode; if the device decoder refuses it, each JPEG alone, and one it refuses by the robust CPU
    decoder; a sample that nothing decodes is quarantined, warned about and replaced IN PLACE (``payloads``,
    ``samples``) by another sample of the batch.
    """
    jpegs = [i for i, p in enumerate(payloads) if p.dim() == 1]
    if not jpegs:
        return {}
    try:
        return dict(zip(jpegs, decode_jpegs([payloads[i] for i in jpegs], device)))
    except RuntimeError:
        pass
    frames, bad = {}, []
    for i in jpegs:
        try:
            frames[i] = decode_jpegs([payloads[i]], device)[0]
        except RuntimeError as err:
            frame = _robust_frame(payloads[i], samples[i], err)
            if frame is None:
                bad.append(i)
            else:
                frames[i] = frame.to(device)
    good = [i for i in range(len(payloads)) if i not in bad]
    if not good:
        raise RuntimeError(f'DevicePairPreprocessor: no image of this batch of {len(payloads)} could be decoded')
    for k, i in enumerate(bad):
        j = good[k % len(good)]
        payloads[i], samples[i] = payloads[j], samples[j]
        if j in frames:
            frames[i] = frames[j]
    return frames


def make_views(payloads: Sequence[torch.Tensor], samples: Sequence, frames: Dict[int, torch.Tensor],
               device: torch.device) -> torch.Tensor:
    """(B, 2, 3, S, S) float views: cut from the decoded ``frames`` by each sample's boxes and flips, or taken as
    they are where the worker cut them (payload (2, 3, S, S))."""
    views = []
    for i, (payload, ds) in enumerate(zip(payloads, samples)):
        if i in frames:
            views.append(cut_views(frames[i], ds.view_boxes, ds.view_flips, int(ds.img_shape[0]),
                                   ds.view_interpolation))
        else:
            views.append(payload.to(device).float())
    return torch.stack(views)


def _unpack(data: dict) -> Tuple[List[torch.Tensor], List]:
    """(payload per sample, data samples) of a pseudo_collate batch of ``PackPairInputs`` device-decode samples."""
    inputs, samples = data.get('inputs'), data.get('data_samples')
    if not (isinstance(inputs, (list, tuple)) and len(inputs) == 1 and isinstance(inputs[0], (list, tuple))):
        raise TypeError("DevicePairPreprocessor: expected the batch of a device_decode pipeline collated with "
                        "collate_fn=dict(type='pseudo_collate') (inputs = [[payload per sample]]), got "
                        f"{type(inputs).__name__}; set the dataloader's collate_fn and RobustLoadImage(device_decode="
                        "True)")
    payloads = list(inputs[0])
    missing = [k for k in ('photometric_draws', 'view_boxes', 'view_flips') if samples and k not in samples[0]]
    if missing:
        raise TypeError(f'DevicePairPreprocessor: data samples lack {missing}: the pipeline must be RobustLoadImage('
                        f'device_decode=True) -> IoUPairCrop -> PairPhotometric -> PackPairInputs')
    return payloads, list(samples)


def _robust_frame(payload: torch.Tensor, sample, err: Exception) -> Optional[torch.Tensor]:
    """(3, H, W) BGR uint8 frame by the robust CPU decoder, or None after quarantining the file."""
    path = sample.metainfo.get('img_path', '<unknown>')
    try:
        img = decode_image(payload.numpy().tobytes())
    except ImageRejected as rejected:
        reason = f'{rejected} (device decode: {err})'
        Quarantine(current_quarantine_file()).add(path, reason)
        print_log(f'DevicePairPreprocessor: skipped {path!r}: {reason}; its place in the batch is taken by another '
                  f'sample', logger='current', level=logging.WARNING)
        return None
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

"""Unlabeled images for self-supervised pretraining, from a folder tree or from a list file."""
import os.path as osp
import pickle
from array import array
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from .image_listing import IMAGE_EXTENSIONS, iter_image_list, scan_image_folder
from .samplers.resumable_sampler import sample_rng


def serialize_paths(paths: Iterable[str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(data_bytes, data_address)`` of the samples ``dict(img_path=path)``, built while ``paths`` streams by.

    The layout of mmengine's ``BaseDataset._serialize_data`` (the samples pickled one after the other in one uint8
    array, and the int64 array of their cumulative end offsets), which ``get_data_info`` reads, but without the
    list of sample dicts and the list of per-sample arrays that the stock way holds at once: for a list of a
    million frames the build peak drops from about 610 MiB to 76 MiB (benchmarks/list_memory.py).
    """
    data, ends = bytearray(), array('q')
    for path in paths:
        data += pickle.dumps(dict(img_path=path), protocol=4)
        ends.append(len(data))
    return np.frombuffer(data, dtype=np.uint8), np.frombuffer(ends, dtype=np.int64)


@DATASETS.register_module()
class UnlabeledImageDataset(BaseDataset):
    """Images without labels, each sample being ``dict(img_path=...)`` for a loading pipeline.

    Two sources:

    - a folder tree (``ann_file`` empty): every image file under ``data_root/data_prefix``, recursively, sorted;
      extensions are matched case-insensitively, symlinks followed, hidden files/folders skipped (the project's
      one listing rule, :mod:`multisiam_mm.datasets.image_listing`);
    - a list file (``ann_file``, relative to ``data_root`` unless absolute): one image path per line, blank lines
      and ``#`` comment lines ignored, relative paths resolved against ``data_root/data_prefix`` (against the
      working directory when both are empty). This is how large extracted frame sets (Waymo, SODA10M) are given:
      the paths are not checked at start, so a missing file surfaces when the pipeline loads it.

    The sample list is serialized into one numpy buffer (mmengine's ``serialize_data=True``, the default), written
    while the paths are read (:func:`serialize_paths`), so a list of millions of frames costs about 40 bytes plus
    the path per frame, shared copy-on-write by the dataloader workers (``filter_cfg`` is not used: there is
    nothing to filter). Measured in docs/data_ingestion.md.

    Args:
        data_root: root folder of the data; joined in front of relative ``data_prefix`` and ``ann_file``.
        data_prefix: image folder below ``data_root``, as a string or ``dict(img_path=...)``.
        ann_file: optional list file; empty to scan the image folder instead.
        extensions: image file extensions accepted by the folder scan (case-insensitive).
        metainfo: extra meta information merged into :attr:`METAINFO` (e.g. ``dict(dataset_name='waymo')``).
        **kwargs: other :class:`mmengine.dataset.BaseDataset` arguments (``pipeline``, ``indices``,
            ``serialize_data``, ``lazy_init``, ``test_mode``, ...).
    """

    METAINFO = dict(classes=())  # unlabeled: no classes

    def __init__(self, data_root: str = '', data_prefix: Union[str, dict] = '', ann_file: str = '',
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, metainfo: Optional[dict] = None, **kwargs) -> None:
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        if set(data_prefix) != {'img_path'}:
            raise ValueError(f'UnlabeledImageDataset: data_prefix must be a string or dict(img_path=...), '
                             f'got {data_prefix!r}')
        self.extensions = tuple(extensions)
        super().__init__(ann_file=ann_file, metainfo=metainfo, data_root=data_root, data_prefix=data_prefix,
                         **kwargs)

    def __getitem__(self, idx: int) -> dict:
        """The pipeline's output for sample ``idx``. Given a :class:`~multisiam_mm.datasets.samplers.SeededIndex`
        (from ``ResumableSampler`` / ``ResumableInfiniteSampler``), every random draw of the pipeline (python, numpy
        and torch global generators) is seeded from ``(seed, epoch, idx)``: the same crops, flips and colours in any
        worker, and after a resume."""
        with sample_rng(idx):
            return super().__getitem__(int(idx))

    @property
    def img_prefix(self) -> str:
        """The image folder (``data_root`` joined with ``data_prefix['img_path']``)."""
        return self.data_prefix['img_path']

    def _iter_paths(self) -> Iterator[str]:
        """The image paths, from the list file when ``ann_file`` is set, else from the folder scan.

        Raises:
            FileNotFoundError: the list file or the image folder does not exist.
            ValueError: the list file lists no image, or the folder holds none, or neither source is given.
        """
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'UnlabeledImageDataset: list file {self.ann_file!r} (ann_file) does not exist')
            listed = False
            for path in iter_image_list(self.ann_file, self.img_prefix):
                listed = True
                yield path
            if not listed:
                raise ValueError(f'UnlabeledImageDataset: list file {self.ann_file!r} lists no image (only blank '
                                 'or # comment lines)')
            return
        if not self.img_prefix:
            raise ValueError('UnlabeledImageDataset needs an image folder (data_root and/or data_prefix) or a list '
                             'file (ann_file)')
        try:
            yield from scan_image_folder(self.img_prefix, self.extensions)
        except (FileNotFoundError, ValueError) as err:
            raise type(err)(f'UnlabeledImageDataset: {err}') from None

    def load_data_list(self) -> List[dict]:
        """``[dict(img_path=...), ...]`` from the list file when ``ann_file`` is set, else from the folder scan
        (used with ``serialize_data=False``; errors as :meth:`_iter_paths`)."""
        return [dict(img_path=path) for path in self._iter_paths()]

    def full_init(self) -> None:
        """Read the sample paths; with ``serialize_data`` straight into the serialized storage, then take the
        ``indices`` subset if given (errors as :meth:`_iter_paths`)."""
        if self._fully_initialized or not self.serialize_data:
            super().full_init()
            return
        self.data_bytes, self.data_address = serialize_paths(self._iter_paths())
        self._fully_initialized = True  # before the subset: len(self) inside it would call full_init again
        if self._indices is not None:
            self.data_bytes, self.data_address = self._get_serialized_subset(self._indices)

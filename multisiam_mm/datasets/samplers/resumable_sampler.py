"""Samplers that resume in constant time and give every sample its own random seed.

mmengine's ``DefaultSampler`` / ``InfiniteSampler`` keep no position: a resumed run can only reach the batch it was
at by drawing (and, through the data loader, decoding and augmenting) every batch before it again. The two samplers
here describe their position by a small state, saved in the checkpoint by the resumable loops
(:mod:`multisiam_mm.engine.runner.loops`) and restored without touching any skipped sample:

``state = dict(seed=s, epoch=e, position=g, shuffle=..., world_size=W, dataset_size=N)``

where ``g`` is the number of entries of epoch ``e``'s index stream already consumed by all ranks together.

Index streams (``N`` samples, ``W`` ranks, this process is rank ``r``):

- :class:`ResumableSampler` (epoch-based loops, the ``DefaultSampler`` layout): epoch ``e`` is a permutation of
  ``range(N)`` drawn from ``torch.Generator().manual_seed(s + e)``, padded by repetition to ``ceil(N / W) * W``
  entries; rank ``r`` takes the entries ``g + r, g + r + W, ...``. Each epoch ends (``StopIteration``).
- :class:`ResumableInfiniteSampler` (iteration-based loops): the epochs' permutations one after the other without
  padding, one endless stream; rank ``r`` takes its entries ``g + r, g + r + W, ...`` (``epoch = g // N``), as
  mmengine's ``InfiniteSampler`` interleaves ranks.

Because positions count entries of the shared stream, a run resumed on another number of ranks carries on exactly
where the old one stopped (no sample of the epoch is repeated or skipped, up to the padding).

Per-sample randomness. Each index is yielded as a :class:`SeededIndex`: an ``int`` (any dataset accepts it) that also
carries ``(seed, epoch)``. A dataset that knows it (``UnlabeledImageDataset``) runs its pipeline inside
:func:`sample_rng`, which seeds python's ``random``, numpy's global ``np.random`` and torch's CPU generator from
``(seed, epoch, index)``, so crops, flips and photometric draws are a function of the sample and epoch only: equal
with any number of workers, any worker order, and after a resume.
"""
import contextlib
import math
import random
from typing import Dict, Iterator, Optional, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

STATE_KEYS = ('seed', 'epoch', 'position', 'shuffle', 'world_size', 'dataset_size')


class SeededIndex(int):
    """A dataset index that carries the sampler's ``seed`` and the ``epoch`` it was drawn in.

    It is an ``int`` everywhere (indexing, arithmetic, ``sample_idx``); :attr:`sample_seed` is the sample's own seed.
    """

    seed: int
    epoch: int

    def __new__(cls, index: int, seed: int, epoch: int) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.seed, obj.epoch = int(seed), int(epoch)
        return obj

    def __reduce__(self):  # pickled to the data workers as its constructor call
        return SeededIndex, (int(self), self.seed, self.epoch)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed}, epoch={self.epoch})'

    @property
    def sample_seed(self) -> int:
        """A 63-bit seed mixed from ``(seed, epoch, index)`` by numpy's ``SeedSequence``."""
        words = np.random.SeedSequence([self.seed % 2**63, self.epoch, int(self)]).generate_state(2, np.uint32)
        return (int(words[0]) << 31) ^ int(words[1])


@contextlib.contextmanager
def sample_rng(index: int) -> Iterator[None]:
    """Run the block with python's, numpy's and torch's (CPU) global generators seeded from a :class:`SeededIndex`.

    The three states are put back afterwards, so loading in the main process (``num_workers=0``) does not change
    the training process's own random streams. A plain ``int`` index leaves the generators alone.
    """
    if not isinstance(index, SeededIndex):
        yield
        return
    seed = index.sample_seed
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)  # CPU only: never touch the CUDA generators of the main process
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class _ResumableBase(Sampler):
    """Seed, rank layout, per-epoch permutations and the resume state shared by both samplers."""

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: Optional[int] = None) -> None:
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0
        self._start = 0  # global position (entries of the current epoch's stream) of the next __iter__
        self._iter_epoch, self._iter_start = 0, 0  # where the running __iter__ began
        self._cached = (-1, None)

    @property
    def dataset_size(self) -> int:
        return len(self.dataset)

    def permutation(self, epoch: int) -> np.ndarray:
        """``(N,)`` int64 dataset indices of ``epoch``'s stream: ``randperm(N)`` seeded with ``seed + epoch``."""
        if self._cached[0] != epoch:
            n = self.dataset_size
            if self.shuffle:
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).numpy()
            else:
                perm = np.arange(n, dtype=np.int64)
            self._cached = (epoch, perm)
        return self._cached[1]

    def _seeded(self, indices: np.ndarray, epoch: int) -> Iterator[SeededIndex]:
        for i in indices.tolist():
            yield SeededIndex(i, self.seed, epoch)

    def _global_position(self, consumed: int) -> int:
        """Position in the stream after this rank consumed ``consumed`` samples of the running ``__iter__``."""
        return self._iter_start + consumed * self.world_size

    def state_dict(self, consumed: int = 0) -> Dict[str, object]:
        """The state to resume from once this rank has consumed ``consumed`` samples of the running iteration
        (0: where the next ``__iter__`` starts, when no iteration runs)."""
        epoch, position = self._normalise(self._iter_epoch, self._global_position(consumed))
        return dict(seed=self.seed, epoch=epoch, position=position, shuffle=self.shuffle,
                    world_size=self.world_size, dataset_size=self.dataset_size)

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Continue from ``state`` (as :meth:`state_dict` wrote it) at the next ``__iter__``.

        Raises:
            ValueError: the state lacks a key (not written by these samplers).
        """
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f'{type(self).__name__}.load_state_dict: the saved sampler state lacks {missing}; '
                             'it was not written by ResumableSampler / ResumableInfiniteSampler')
        self.seed, self.shuffle = int(state['seed']), bool(state['shuffle'])
        self._cached = (-1, None)
        epoch, position = int(state['epoch']), int(state['position'])
        if int(state['dataset_size']) != self.dataset_size:
            print_log(f'{type(self).__name__}: the dataset has {self.dataset_size} samples, the checkpoint was '
                      f'written with {state["dataset_size"]}; epoch {epoch} starts again from its beginning with '
                      'the new permutation', logger='current', level='WARNING')
            position = 0
        elif int(state['world_size']) != self.world_size:
            print_log(f'{type(self).__name__}: resuming on {self.world_size} ranks a run saved on '
                      f'{state["world_size"]}; the ranks split the rest of epoch {epoch} anew', logger='current',
                      level='WARNING')
        self.epoch, self._start = self._normalise(epoch, position)
        self._iter_epoch, self._iter_start = self.epoch, self._start

    def _normalise(self, epoch: int, position: int) -> tuple:
        raise NotImplementedError

    def _begin_iter(self) -> tuple:
        """Mark the start of an iteration: returns ``(epoch, start)`` and makes later iterations start afresh."""
        self._iter_epoch, self._iter_start = self.epoch, self._start
        return self.epoch, self._start


@DATA_SAMPLERS.register_module()
class ResumableSampler(_ResumableBase):
    """``DefaultSampler`` (shuffle, round up) that resumes mid-epoch in constant time; for epoch-based loops.

    Args:
        dataset: the dataset (only its length is used).
        shuffle: a new permutation every epoch (``seed + epoch``); else ``range(N)``.
        seed: permutation and per-sample seed; ``None`` draws one shared by all ranks (``sync_random_seed``).
    """

    def __iter__(self) -> Iterator[SeededIndex]:
        epoch, start = self._begin_iter()
        self._start = 0  # a second pass over the same epoch starts at its beginning
        w = self.world_size
        padded = np.resize(self.permutation(epoch), self.total_size)  # DefaultSampler's round-up by repetition
        rest = padded[start:]
        if len(rest) % w:  # only after a change of world size: pad the rest to equal shares
            rest = np.resize(rest, math.ceil(len(rest) / w) * w)
        return self._seeded(rest[self.rank::w], epoch)

    @property
    def num_samples(self) -> int:
        """Samples per rank in a whole epoch, ``ceil(N / W)``."""
        return math.ceil(self.dataset_size / self.world_size)

    @property
    def total_size(self) -> int:
        return self.num_samples * self.world_size

    def __len__(self) -> int:
        """A whole epoch's share (the schedule's epoch length), also in a resumed, shortened epoch."""
        return self.num_samples

    def remaining(self) -> int:
        """Samples this rank yields in the next ``__iter__`` (fewer than ``len(self)`` after a mid-epoch resume)."""
        return math.ceil((self.total_size - min(self._start, self.total_size)) / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch`` (from its beginning), unless the sampler already stands in it (a resumed position)."""
        if epoch != self.epoch:
            self.epoch, self._start = int(epoch), 0

    def _normalise(self, epoch: int, position: int) -> tuple:
        return (epoch + 1, 0) if position >= self.dataset_size else (epoch, position)


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(_ResumableBase):
    """``InfiniteSampler`` that resumes in constant time; for iteration-based loops (never ends an iteration).

    Args: as :class:`ResumableSampler`.
    """

    def __iter__(self) -> Iterator[SeededIndex]:
        epoch, start = self._begin_iter()
        return self._stream(epoch * self.dataset_size + start)

    def _stream(self, first: int) -> Iterator[SeededIndex]:
        n, w = self.dataset_size, self.world_size
        p = first + self.rank  # absolute position in the endless stream
        while True:
            epoch, offset = divmod(p, n)
            chunk = self.permutation(epoch)[offset::w]
            yield from self._seeded(chunk, epoch)
            p += len(chunk) * w

    def __len__(self) -> int:
        """One epoch's share per rank (mmengine's convention; the iterator itself never stops)."""
        return math.ceil(self.dataset_size / self.world_size)

    def _normalise(self, epoch: int, position: int) -> tuple:
        absolute = epoch * self.dataset_size + position
        return divmod(absolute, self.dataset_size)

"""Training loops that resume in constant time and keep a resumed run identical to an uninterrupted one.

mmengine 0.10.7's ``IterBasedTrainLoop`` resumes at iteration ``i`` by drawing ``i`` batches and throwing them away
(every skipped image is read, decoded and augmented again: minutes at a few thousand iterations, hours at 100k), and
``EpochBasedTrainLoop`` can only resume at an epoch boundary. These loops instead

- record, with every batch they draw, where the sampler stands after it (:class:`ResumableSampler` /
  :class:`ResumableInfiniteSampler` state: seed, epoch, position) in the runner's MessageHub under
  :data:`SAMPLER_STATE_KEY`. mmengine saves the MessageHub in every checkpoint and restores it on resume, so a
  checkpoint written after iteration ``i`` holds the position of batch ``i + 1``;
- on resume, load that state into the sampler before the data loader is first iterated, so the first batch drawn is
  the first one not yet trained on and no skipped sample is touched (``ResumableIterBasedTrainLoop`` therefore does
  not create its data-loader iterator at construction, as mmengine's loop does, but when ``run`` starts);
- seed python's ``random``, numpy's and torch's global generators before every step from ``(seed, iteration,
  rank)``, so any random draw on the model side (none in MultiSiam, DenseSiam or Odin today: their k-means is
  deterministic) is a function of the iteration, not of how the run got there.

With the per-sample seeds of the samplers (the augmentations are a function of ``(seed, epoch, index)``), a run
interrupted and resumed on CPU ends on the weights of the uninterrupted run (tests/test_resume_determinism.py).
``ResumableEpochBasedTrainLoop`` also resumes from mid-epoch checkpoints (:class:`MidEpochCheckpointHook`): it
continues the interrupted epoch at the saved position, with the batch indices the hooks and the logger expect.
"""
import math
import random
from typing import Dict, List, Optional, Tuple, Type, Union

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.base_loop import BaseLoop
from mmengine.runner.utils import calc_dynamic_intervals
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from ...datasets.samplers import ResumableInfiniteSampler, ResumableSampler

SAMPLER_STATE_KEY = 'train_sampler_state'


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """A 63-bit seed for the global generators at ``iteration`` on ``rank`` (numpy ``SeedSequence`` mixing)."""
    words = np.random.SeedSequence([seed % 2**63, iteration, rank]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seed_global_rngs(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch's CPU and CUDA generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _ResumableLoopMixin:
    """Sampler check, position bookkeeping in the MessageHub, resume and per-step seeding of the two loops."""

    sampler_types: Tuple[Type, ...] = ()

    def _check_sampler(self) -> None:
        sampler = getattr(self.dataloader, 'sampler', None)
        if not isinstance(sampler, self.sampler_types):
            wanted = self.sampler_types[0].__name__
            raise TypeError(f'{type(self).__name__} needs train_dataloader.sampler=dict(type={wanted!r}, '
                            f'shuffle=True), got {type(sampler).__name__}: it resumes by the sampler position')
        self.sampler = sampler

    def _record_position(self, consumed: int) -> None:
        """Publish the sampler state after this rank consumed ``consumed`` samples of the running iteration."""
        self.runner.message_hub.update_info(SAMPLER_STATE_KEY, self.sampler.state_dict(consumed))

    def _restore_position(self) -> None:
        """After ``Runner.resume``: put the sampler where the checkpoint's run stood (no sample is loaded)."""
        if self._iter == 0:  # a fresh run (a MessageHub reused within the same second may hold a stale state)
            return
        state = self.runner.message_hub.get_info(SAMPLER_STATE_KEY)
        if state is None:
            state = self._position_from_iteration()
            print_log(f'{type(self).__name__}: the checkpoint holds no sampler state (written by another loop); '
                      f'continuing at epoch {state["epoch"]}, position {state["position"]}, derived from the '
                      'iteration and the batch size; the augmentations differ from those of an uninterrupted run',
                      logger='current', level='WARNING')
        self.sampler.load_state_dict(state)
        print_log(f'{type(self).__name__}: resumed the sampler at epoch {self.sampler.epoch}, position '
                  f'{self.sampler.state_dict()["position"]} (no skipped sample is loaded)', logger='current')

    def _position_from_iteration(self) -> Dict[str, object]:
        raise NotImplementedError

    def _seed_step(self) -> None:
        seed_global_rngs(step_seed(self.runner.seed, self._iter, get_rank()))


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(_ResumableLoopMixin, IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that resumes without replaying the data loader; needs ``ResumableInfiniteSampler``.

    Args: those of mmengine's ``IterBasedTrainLoop``.

    Raises:
        TypeError: the training sampler is not a ``ResumableInfiniteSampler``.
    """

    sampler_types = (ResumableInfiniteSampler, )

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000, dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        # IterBasedTrainLoop.__init__ would iterate the data loader now (starting its workers on the first batches)
        # before the resume sets the sampler position; this sets the same attributes without iterating.
        BaseLoop.__init__(self, runner, dataloader)
        self._max_iters = int(max_iters)
        if self._max_iters != max_iters:
            raise ValueError(f'{type(self).__name__}: max_iters must be an integer, got {max_iters!r}')
        self._max_epochs, self._epoch, self._iter = 1, 0, 0
        self.val_begin, self.val_interval = val_begin, val_interval
        self.stop_training = False  # set by EarlyStoppingHook
        self.runner.visualizer.dataset_meta = getattr(self.dataloader.dataset, 'metainfo', None)
        self.dynamic_milestones, self.dynamic_intervals = calc_dynamic_intervals(self.val_interval,
                                                                                 dynamic_intervals)
        self._check_sampler()

    def _position_from_iteration(self) -> Dict[str, object]:
        state = self.sampler.state_dict()
        state.update(epoch=0, position=self._iter * self.dataloader.batch_size * self.sampler.world_size)
        return state

    def run(self) -> torch.nn.Module:
        """Train from the current iteration to ``max_iters`` (the sampler stream continues where it stood)."""
        self._restore_position()
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')  # the whole run is one big epoch, as in mmengine
        batches = iter(self.dataloader)
        consumed = 0
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(batches)
            consumed += self.dataloader.batch_size
            self._record_position(consumed)
            self._seed_step()
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(_ResumableLoopMixin, EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes mid-epoch in constant time; needs ``ResumableSampler``.

    A resumed epoch yields only its remaining batches; their ``batch_idx`` (hooks, logger) continues the interrupted
    count. Args: those of mmengine's ``EpochBasedTrainLoop``.

    Raises:
        TypeError: the training sampler is not a ``ResumableSampler``.
    """

    sampler_types = (ResumableSampler, )

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], max_epochs: int, val_begin: int = 1,
                 val_interval: int = 1, dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin=val_begin, val_interval=val_interval,
                         dynamic_intervals=dynamic_intervals)
        self._check_sampler()

    def _position_from_iteration(self) -> Dict[str, object]:
        state = self.sampler.state_dict()
        done = max(self._iter - self._epoch * len(self.dataloader), 0)  # batches of the epoch already trained on
        state.update(epoch=self._epoch, position=done * self.dataloader.batch_size * self.sampler.world_size)
        return state

    def _restore_position(self) -> None:
        super()._restore_position()
        if self._iter and self.sampler.epoch != self._epoch:
            print_log(f'{type(self).__name__}: the saved sampler state is for epoch {self.sampler.epoch}, the '
                      f'checkpoint for epoch {self._epoch}; epoch {self._epoch} starts from its beginning',
                      logger='current', level='WARNING')

    def run(self) -> torch.nn.Module:
        """Train the remaining epochs, starting with the rest of the interrupted one."""
        self._restore_position()
        return super().run()

    def run_epoch(self) -> None:
        """One epoch (its remaining batches after a mid-epoch resume)."""
        self.runner.call_hook('before_train_epoch')
        self.sampler.set_epoch(self._epoch)  # also without DistSamplerSeedHook; keeps a resumed position
        self.runner.model.train()
        bs = self.dataloader.batch_size
        remaining = self.sampler.remaining()
        first = math.ceil((len(self.sampler) - remaining) / bs)  # batches of this epoch trained before a resume
        for k, data_batch in enumerate(self.dataloader):
            self._record_position(min((k + 1) * bs, remaining))
            self._seed_step()
            self.run_iter(first + k, data_batch)
        self._record_position(remaining)  # the epoch is done (also when drop_last dropped a partial batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

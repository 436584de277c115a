"""Registered training hooks (into mmpretrain's HOOKS; StrictBackboneLoadHook into mmengine's root HOOKS) and the
resumable training loops (mmpretrain's LOOPS)."""
from .hooks import DenseSiamRegionSimHook, StrictBackboneLoadHook
from .runner import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop

__all__ = ['DenseSiamRegionSimHook', 'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
           'StrictBackboneLoadHook']

"""Registered training hooks (into mmpretrain's HOOKS; StrictBackboneLoadHook into mmengine's root HOOKS) and the
optimizer-wrapper constructor (mmpretrain's OPTIM_WRAPPER_CONSTRUCTORS) and the resumable training loops
(mmpretrain's LOOPS)."""
from .hooks import DenseSiamRegionSimHook, StrictBackboneLoadHook
from .optimizers import TrainableParamsOptimWrapperConstructor
from .runner import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop

__all__ = ['DenseSiamRegionSimHook', 'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
           'StrictBackboneLoadHook', 'TrainableParamsOptimWrapperConstructor']

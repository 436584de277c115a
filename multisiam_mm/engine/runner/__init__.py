"""Registered training loops (into mmpretrain's LOOPS)."""
from .loops import (
    SAMPLER_STATE_KEY,
    ResumableEpochBasedTrainLoop,
    ResumableIterBasedTrainLoop,
    seed_global_rngs,
    step_seed,
)

__all__ = ['SAMPLER_STATE_KEY', 'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop', 'seed_global_rngs',
           'step_seed']

"""Registered data samplers (into mmpretrain's DATA_SAMPLERS)."""
from .resumable_sampler import ResumableInfiniteSampler, ResumableSampler, SeededIndex, sample_rng

__all__ = ['ResumableInfiniteSampler', 'ResumableSampler', 'SeededIndex', 'sample_rng']

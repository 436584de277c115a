"""Registered training hooks (into mmpretrain's HOOKS registry)."""
from .hooks import DenseSiamRegionSimHook

__all__ = ['DenseSiamRegionSimHook']

"""Registered training hooks (into mmpretrain's HOOKS; StrictBackboneLoadHook into mmengine's root HOOKS)."""
from .hooks import DenseSiamRegionSimHook, StrictBackboneLoadHook

__all__ = ['DenseSiamRegionSimHook', 'StrictBackboneLoadHook']

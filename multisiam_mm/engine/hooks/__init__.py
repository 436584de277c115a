from .densesiam_region_hook import DenseSiamRegionSimHook

__all__ = ['DenseSiamRegionSimHook']

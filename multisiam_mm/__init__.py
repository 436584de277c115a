"""multisiam_mm: MultiSiam, DenseSiam and Odin for mmpretrain."""
from .version import __version__

__all__ = ['__version__']

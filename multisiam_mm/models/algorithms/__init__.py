from .densesiam import DenseSiam
from .multisiam import MultiSiam
from .multisiam_moco import MultiSiamMoCo
from .odin import Odin

__all__ = ['DenseSiam', 'MultiSiam', 'MultiSiamMoCo', 'Odin']

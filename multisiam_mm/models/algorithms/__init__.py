from .multisiam import MultiSiam
from .multisiam_moco import MultiSiamMoCo

__all__ = ['MultiSiam', 'MultiSiamMoCo']

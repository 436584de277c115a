from .multisiam_neck import MultiSiamNeck

__all__ = ['MultiSiamNeck']

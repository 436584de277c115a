"""Registered models: necks, heads and algorithms (into mmpretrain's MODELS registry)."""
from .algorithms import MultiSiam, MultiSiamMoCo
from .heads import ClusterHead
from .necks import MultiSiamNeck

__all__ = ['MultiSiam', 'MultiSiamMoCo', 'ClusterHead', 'MultiSiamNeck']

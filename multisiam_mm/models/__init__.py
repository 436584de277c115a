"""Registered models: necks, heads and algorithms (into mmpretrain's MODELS registry)."""
from .algorithms import DenseSiam, MultiSiam, MultiSiamMoCo, Odin
from .heads import ClusterHead
from .necks import MultiSiamNeck

__all__ = ['DenseSiam', 'MultiSiam', 'MultiSiamMoCo', 'Odin', 'ClusterHead', 'MultiSiamNeck']

"""Registered models: necks, heads, algorithms and data preprocessors (into mmpretrain's MODELS registry)."""
from .algorithms import DenseSiam, MultiSiam, MultiSiamMoCo, Odin
from .data_preprocessors import DevicePairPreprocessor
from .heads import ClusterHead
from .necks import MultiSiamNeck

__all__ = ['DenseSiam', 'MultiSiam', 'MultiSiamMoCo', 'Odin', 'DevicePairPreprocessor', 'ClusterHead', 'MultiSiamNeck']

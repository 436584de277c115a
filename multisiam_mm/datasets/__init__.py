"""Datasets: unlabeled image sources for pretraining, a procedural synthetic street-scene generator, and resumable
samplers with per-sample seeds."""
from . import samplers, transforms  # noqa: F401
from .synthetic_streets import generate_scene, write_synthetic_dataset
from .unlabeled import UnlabeledImageDataset

__all__ = ['generate_scene', 'write_synthetic_dataset', 'UnlabeledImageDataset']

"""multisiam_mm: MultiSiam, DenseSiam and Odin self-supervised pretraining as an mmpretrain plugin.

Importing the package registers its components into mmpretrain's registries (configs use them by type name with
``default_scope='mmpretrain'`` and ``custom_imports=dict(imports=['multisiam_mm'])``) and allow-lists mmengine's
checkpoint types for ``torch.load(weights_only=True)`` so that resume and load_from work on torch >= 2.6.
"""
from .utils import allow_mmengine_checkpoints
from .utils.atomic_save import enable_atomic_checkpoints
from .version import __version__

allow_mmengine_checkpoints()
enable_atomic_checkpoints()  # checkpoints and last_checkpoint: temp file + os.replace

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registration)

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models']

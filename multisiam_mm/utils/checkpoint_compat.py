"""Let mmengine's resume / load_from work under torch >= 2.6 without disabling ``weights_only``.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls plain ``torch.load`` and its
checkpoints carry, besides tensors, the MessageHub state (``HistoryBuffer`` objects holding numpy arrays), so
loading them raises ``UnpicklingError``. Instead of turning the safety off (``weights_only=False`` for everyone, which
runs arbitrary pickled code from a downloaded checkpoint), we extend torch's allow-list with exactly the types
mmengine writes. Loading stays restricted: any other global in a checkpoint is still refused.

One more thing is needed: as mmengine pickles it, a HistoryBuffer's state can carry its statistics functions as
``getattr(HistoryBuffer, 'min')``, and allow-listing ``builtins.getattr`` would let a crafted checkpoint reach any
attribute of an allowed class (e.g. ``ndarray.tofile``: a file-write gadget). So HistoryBuffer pickles as its
constructor call with plain lists instead. Checkpoints written before this (or without the plugin) keep the old
form: load those only if you trust them (``torch.load(..., weights_only=False)``).
"""
from typing import List, Tuple

import numpy as np
import torch


def mmengine_checkpoint_globals() -> List[object]:
    """The non-tensor types an mmengine Runner checkpoint contains (message hub, numpy scalars and arrays)."""
    from mmengine.logging import HistoryBuffer

    np_core = np._core if int(np.__version__.split('.')[0]) >= 2 else np.core  # where pickle finds them
    dtype_classes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_, np.uint8)]
    return [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        np_core.multiarray._reconstruct,
        np_core.multiarray.scalar,
        *dtype_classes,
    ]


def _history_buffer_reduce(self) -> Tuple[type, tuple]:
    """Pickle a HistoryBuffer as ``HistoryBuffer(log_history, count_history, max_length)`` with plain lists."""
    return type(self), (self._log_history.tolist(), self._count_history.tolist(), self.max_length)


def allow_mmengine_checkpoints() -> None:
    """Register mmengine's checkpoint types as safe for ``torch.load(weights_only=True)``. Idempotent."""
    from mmengine.logging import HistoryBuffer

    HistoryBuffer.__reduce__ = _history_buffer_reduce
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 has no allow-list and loads everything anyway
        add_safe_globals(mmengine_checkpoint_globals())

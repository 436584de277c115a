"""Atomic checkpoints: a kill during a save leaves the previous checkpoint and ``last_checkpoint`` intact.

mmengine 0.10.7 writes a checkpoint with ``torch.save`` straight into its final name (``CheckpointHook`` ->
``Runner.save_checkpoint`` -> ``mmengine.runner.checkpoint.save_checkpoint`` -> ``LocalBackend.put``), then rewrites
``work_dir/last_checkpoint`` with ``open(path, 'w')``. A kill (SIGKILL, OOM killer, pre-emption, full disk) in the
middle leaves a truncated ``iter_N.pth`` and possibly an empty ``last_checkpoint``, and ``--resume`` then fails.

Choice. Importing multisiam_mm calls :func:`enable_atomic_checkpoints`, which

- replaces ``save_checkpoint`` in ``mmengine.runner.checkpoint``, ``mmengine.runner`` and ``mmengine.runner.runner``
  (where ``Runner.save_checkpoint`` looks it up; the single-device / FSDP strategies import it from the first at
  call time) by :func:`save_checkpoint_atomic`: for local paths it ``torch.save``s into a hidden temporary file in
  the same folder, fsyncs it and ``os.replace``s it onto the final name (atomic on POSIX and Windows within one
  file system); other backends (``s3://``, petrel, ``backend_args``) are passed to mmengine's function unchanged;
- gives ``mmengine.hooks.checkpoint_hook`` a module-level ``open`` whose write modes go through the same
  temporary-file-and-replace path, so ``last_checkpoint`` is either the old or the new path, never empty.

This covers every config, whatever checkpoint hook type it names, without a config change; a hook subclass would
have to copy ``CheckpointHook._save_checkpoint_with_step`` to reach the ``last_checkpoint`` write. A killed save
leaves a ``.iter_N.pth.<pid>.<hex>.tmp`` file behind (removed when the save fails with an exception instead).

Caveat: ``CheckpointHook`` deletes the oldest kept checkpoint BEFORE it writes the new one, so with
``max_keep_ckpts=1`` a kill during the save leaves none; keep ``max_keep_ckpts >= 2`` (the runtime default is 3).
"""
import builtins
import contextlib
import os
import os.path as osp
import secrets
from typing import IO, Iterator, Optional

import torch

_ORIGINAL = {}


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit fsync it and replace ``path`` with it.

    On an exception the temporary file is removed and ``path`` is untouched; a kill leaves ``path`` untouched too.
    """
    path = os.fspath(path)
    folder, name = osp.split(osp.abspath(path))
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        with builtins.open(tmp, mode.replace('w', 'x'), encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _is_local(filename: str, file_client_args: Optional[dict], backend_args: Optional[dict]) -> bool:
    """True when mmengine would write ``filename`` with its LocalBackend."""
    custom = [a.get('backend', 'local') for a in (file_client_args, backend_args) if a]
    return '://' not in str(filename) and all(b in ('local', 'disk') for b in custom)


def save_checkpoint_atomic(checkpoint: dict, filename: str, file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None) -> None:
    """mmengine's ``save_checkpoint``, atomic for local paths (temporary file in the same folder + os.replace)."""
    if not _is_local(filename, file_client_args, backend_args):
        _ORIGINAL['save_checkpoint'](checkpoint, filename, file_client_args=file_client_args,
                                     backend_args=backend_args)
        return
    folder = osp.dirname(osp.abspath(filename))
    os.makedirs(folder, exist_ok=True)
    with atomic_write(filename, 'wb') as f:
        torch.save(checkpoint, f)


def _open_atomic_writes(file, mode: str = 'r', *args, **kwargs):
    """``open`` for mmengine's checkpoint hook: writes (``last_checkpoint``) are atomic, reads are plain."""
    if 'w' in mode and not args:
        return atomic_write(file, mode, encoding=kwargs.get('encoding'))
    return builtins.open(file, mode, *args, **kwargs)


def enable_atomic_checkpoints() -> None:
    """Make mmengine's checkpoint and ``last_checkpoint`` writes atomic (see the module doc). Idempotent."""
    import mmengine.hooks.checkpoint_hook as hook_module
    import mmengine.runner as runner_pkg
    import mmengine.runner.checkpoint as ckpt_module
    import mmengine.runner.runner as runner_module

    _ORIGINAL.setdefault('save_checkpoint', ckpt_module.save_checkpoint)
    for module in (ckpt_module, runner_pkg, runner_module):
        module.save_checkpoint = save_checkpoint_atomic
    hook_module.open = _open_atomic_writes

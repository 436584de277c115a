"""MidEpochCheckpointHook: epoch checkpoints plus a checkpoint every ``iter_interval`` iterations inside an epoch.

mmengine's ``CheckpointHook`` saves either by epoch or by iteration. An epoch of the paper configs is hours of a
node on Waymo, so a pre-emption loses up to a whole epoch. This hook keeps the epoch checkpoints (``epoch_E.pth``,
``interval`` and ``max_keep_ckpts`` as in ``CheckpointHook``) and also writes ``iter_I.pth`` every ``iter_interval``
training iterations inside an epoch. A mid-epoch checkpoint is a regular Runner checkpoint (meta ``epoch`` = the
running epoch, ``iter`` = iterations done), it is named in ``work_dir/last_checkpoint``, so ``--resume`` finds it,
and ``ResumableEpochBasedTrainLoop`` continues the epoch at the saved sampler position.

Files kept: the newest ``max_keep_ckpts`` epoch checkpoints (mmengine's rule) and the newest ``max_keep_ckpts``
mid-epoch checkpoints; when an epoch checkpoint is written, the mid-epoch checkpoints before it are deleted (it
supersedes them). Mid-epoch checkpoints are deleted only after the new file is in place, and writes go through
:mod:`multisiam_mm.utils.atomic_save` (temporary file + ``os.replace``), so a kill never leaves none behind.

With ``by_epoch=False`` the hook is mmengine's ``CheckpointHook`` (its ``interval`` already counts iterations) and
``iter_interval`` is not used, so iteration-based configs may inherit it from the runtime base.
"""
import os.path as osp
from collections import deque
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from ...utils.atomic_save import atomic_write

KEEP_KEY = 'keep_mid_epoch_ckpt_ids'


@HOOKS.register_module()
class MidEpochCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that, by epoch, also saves ``iter_{I}.pth`` every ``iter_interval`` iterations.

    Args:
        iter_interval: iterations between mid-epoch checkpoints (counted from the start of training, like
            ``interval`` of an iteration-based ``CheckpointHook``); ``None`` or ``0``: none.
        **kwargs: ``CheckpointHook`` arguments (``interval``, ``by_epoch``, ``max_keep_ckpts``, ``save_last``, ...).

    Raises:
        ValueError: ``iter_interval`` is negative.
    """

    def __init__(self, iter_interval: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if iter_interval is not None and int(iter_interval) < 0:
            raise ValueError(f'MidEpochCheckpointHook: iter_interval must be >= 0 (0 or None: no mid-epoch '
                             f'checkpoints), got {iter_interval}')
        self.iter_interval = int(iter_interval or 0)
        self.mid_epoch_tmpl = 'iter_{}.pth'
        self.mid_epoch_ids: deque = deque()

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self.mid_epoch_ids = deque(runner.message_hub.get_info(KEEP_KEY, []))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if (self.by_epoch and self.iter_interval and self.every_n_train_iters(runner, self.iter_interval)
                and not self.end_of_epoch(runner.train_loop.dataloader, batch_idx)):  # the epoch checkpoint follows
            runner.logger.info(f'Saving mid-epoch checkpoint at {runner.iter + 1} iterations '
                               f'(epoch {runner.epoch + 1}, batch {batch_idx + 1})')
            self._save_mid_epoch(runner)

    def after_train_epoch(self, runner) -> None:
        before = self.last_ckpt
        super().after_train_epoch(runner)
        if self.last_ckpt != before:  # an epoch checkpoint was written: it supersedes the mid-epoch ones
            self._remove_mid_epoch(runner, keep=0)

    def _save_mid_epoch(self, runner) -> None:
        step = runner.iter + 1
        filename = self.mid_epoch_tmpl.format(step)
        self.mid_epoch_ids.append(step)  # recorded in the checkpoint itself, so a resumed run deletes it in turn
        runner.message_hub.update_info(KEEP_KEY, list(self.mid_epoch_ids))
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler,
                               meta=dict(epoch=runner.epoch, iter=step), by_epoch=False,
                               backend_args=self.backend_args, **self.args)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        if is_main_process():
            with atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(self.last_ckpt)
        self._remove_mid_epoch(runner, keep=self.max_keep_ckpts if self.max_keep_ckpts > 0 else -1)

    def _remove_mid_epoch(self, runner, keep: int) -> None:
        """Delete the oldest mid-epoch checkpoints until ``keep`` are left (``keep < 0``: keep all); after a save."""
        while keep >= 0 and len(self.mid_epoch_ids) > keep:
            path = self.file_backend.join_path(self.out_dir, self.mid_epoch_tmpl.format(self.mid_epoch_ids.popleft()))
            if is_main_process() and self.file_backend.isfile(path):
                self.file_backend.remove(path)
        runner.message_hub.update_info(KEEP_KEY, list(self.mid_epoch_ids))

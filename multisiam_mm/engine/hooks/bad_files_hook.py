"""BadFilesHook: the run's quarantine of unreadable images in ``<work_dir>/bad_files.txt``, counted in the log.

RobustLoadImage and the other readers (ClusterMapHook, the tools) quarantine a file that fails to load: it is listed
with its reason in the file named by ``$MULTISIAM_BAD_FILES`` and never opened again in the run
(multisiam_mm.datasets.transforms.robust_loading). tools/train.py and tools/demo.py point that variable at
``<work_dir>/bad_files.txt`` before they build the Runner. This hook, in the default runtime, does it for a Runner
built some other way, in ``before_run``: the main process and the data workers started later see it, which covers the
project's loops (Resumable*TrainLoop start their workers in ``run``). mmengine's own ``IterBasedTrainLoop`` starts
them when it is built, before any hook: those workers keep a quarantine of their own, and the hook says so. It logs
the count:

- at the start, the files already listed by an earlier run in the same work dir (skipped; delete the file to retry);
- during training, a line whenever the list has grown (checked every ``interval`` iterations, one ``stat``);
- at the end, the total (``bad files: none`` when there is none).
"""
import logging
import os
from typing import MutableMapping, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ...datasets.transforms.robust_loading import BAD_FILES_ENV, BAD_FILES_NAME, Quarantine

try:
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter as _WorkerIter
except ImportError:  # pragma: no cover  (a torch without the private class: no check)
    _WorkerIter = None


@HOOKS.register_module()
class BadFilesHook(Hook):
    """Share the quarantine file ``<work_dir>/bad_files.txt`` and log how many files it holds.

    Args:
        interval: training iterations between two checks of the file.
    """

    priority = 'VERY_HIGH'  # before ClusterMapHook reads its images

    def __init__(self, interval: int = 10) -> None:
        if interval < 1:
            raise ValueError(f'BadFilesHook needs interval >= 1, got {interval}')
        self.interval = interval
        self._quarantine: Optional[Quarantine] = None
        self._set_env = False
        self._logged = 0

    def before_run(self, runner) -> None:
        """Point ``$MULTISIAM_BAD_FILES`` at the work dir's file unless it is set; report earlier entries."""
        path = os.environ.get(BAD_FILES_ENV)
        if not path:
            path = os.path.join(os.path.abspath(runner.work_dir), BAD_FILES_NAME)
            os.environ[BAD_FILES_ENV] = path
            self._set_env = True
            loop = runner._train_loop  # built before before_run, and with it the workers of an iteration-based loop
            workers = getattr(getattr(loop, 'dataloader_iterator', None), '_iterator', None)
            if _WorkerIter is not None and isinstance(workers, _WorkerIter):
                print_log(f'BadFilesHook: the data workers started before this hook set {BAD_FILES_ENV}; each keeps '
                          f'its own quarantine and its bad files are not listed in {path}. Train with tools/train.py, '
                          f'or set {BAD_FILES_ENV} before building the Runner, to share it.', logger='current',
                          level=logging.WARNING)
        self._quarantine = Quarantine(path)
        self._logged = len(self._quarantine)
        if self._logged:
            print_log(f'bad files: {self._logged} listed in {path} by an earlier run are skipped (delete that file to '
                      'retry them)', logger='current', level=logging.WARNING)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Log the count when the quarantine has grown since the last line."""
        if self._quarantine is None or not self.every_n_train_iters(runner, self.interval):
            return
        count = len(self._quarantine)
        if count > self._logged:
            print_log(f'bad files: {count} quarantined so far ({count - self._logged} new), listed in '
                      f'{self._quarantine.path}', logger='current', level=logging.WARNING)
            self._logged = count

    def after_train(self, runner) -> None:
        """Log the total."""
        if self._quarantine is None:
            return
        count = len(self._quarantine)
        print_log(f'bad files: {count} quarantined, listed in {self._quarantine.path}' if count else
                  'bad files: none', logger='current', level=logging.WARNING if count else logging.INFO)
        self._logged = count

    def after_run(self, runner) -> None:
        """Unset ``$MULTISIAM_BAD_FILES`` if this hook set it."""
        if self._set_env:
            os.environ.pop(BAD_FILES_ENV, None)
            self._set_env = False


def add_bad_files_hook(cfg: MutableMapping) -> None:
    """Append BadFilesHook to ``cfg['custom_hooks']`` unless it is there (configs that replace the default runtime's
    hook list leave it out); used by tools/train.py and tools/demo.py."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('BadFilesHook', BadFilesHook) for h in hooks):
        cfg['custom_hooks'] = hooks + [dict(type='BadFilesHook')]

"""PairCropStatsHook: log IoUPairCrop's acceptance rate and fallbacks of each training batch.

IoUPairCrop's :attr:`~multisiam_mm.datasets.IoUPairCrop.stats` live in the data-loader worker processes, out of the
runner's reach. So the transform records per-sample statistics in the data (``pair_candidates``: candidate pairs
drawn for the sample; ``pair_passing``: how many of them had IoU > iou_thr; ``pair_fallback``: its pair came from
the max_rounds fallback), PackPairInputs keeps them as
DataSample metainfo, and this hook reads them from ``data_batch['data_samples']`` after each training iteration.
"""
from typing import Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def pair_crop_batch_stats(data_samples: Sequence) -> Optional[Tuple[float, int]]:
    """(acceptance, fallbacks) of a batch, or None when no sample carries IoUPairCrop's statistics.

    acceptance = sum(pair_passing) / sum(pair_candidates) over the samples that carry both: the fraction of the
    independent candidate pairs drawn for this batch whose IoU exceeds iou_thr (about 0.26 for a 1920x1280 frame with
    the paper's scales and 0.5), the rate that sets the sampling effort (1 / acceptance candidates per pair for
    sequential rejection); fallbacks = number of those samples whose pair came from the fallback.
    """
    samples = [ds for ds in data_samples if 'pair_candidates' in ds and 'pair_passing' in ds]
    if not samples:
        return None
    candidates = sum(int(ds.pair_candidates) for ds in samples)
    passing = sum(int(ds.pair_passing) for ds in samples)
    fallbacks = sum(bool(ds.get('pair_fallback', False)) for ds in samples)
    return passing / max(candidates, 1), fallbacks


@HOOKS.register_module()
class PairCropStatsHook(Hook):
    """Put ``train/paircrop_acceptance`` and ``train/paircrop_fallbacks`` of each batch in the message hub.

    mmengine's LoggerHook (priority BELOW_NORMAL, after this NORMAL hook) then writes them to the log line and the
    visualizer backends (TensorBoard, scalars.json) as ``paircrop_acceptance`` and ``paircrop_fallbacks``, averaged
    over ``log_processor.window_size`` batches. With ``iou_thr`` None / 0 the acceptance is 1. Batches whose samples
    carry no statistics (a pipeline without IoUPairCrop, a custom packer with other ``meta_keys``) are skipped
    silently. Pipelines wrapping IoUPairCrop in OdinSpanningView carry them (PackOdinInputs extends PackPairInputs).
    In distributed training each rank logs its own batch.
    """

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Log the statistics of ``data_batch``."""
        if not isinstance(data_batch, dict) or not data_batch.get('data_samples'):
            return
        stats = pair_crop_batch_stats(data_batch['data_samples'])
        if stats is None:
            return
        acceptance, fallbacks = stats
        runner.message_hub.update_scalar('train/paircrop_acceptance', acceptance)
        runner.message_hub.update_scalar('train/paircrop_fallbacks', fallbacks)

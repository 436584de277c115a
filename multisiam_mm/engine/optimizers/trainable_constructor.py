"""An optimizer-wrapper constructor that reports the frozen parameters it leaves out in one log line, not one each.

With a ``paramwise_cfg`` (the LARS schedule's BN / bias exclusions), mmengine's ``DefaultOptimWrapperConstructor``
walks every parameter and, for each one with ``requires_grad=False``, logs the WARNING
``<name> is skipped since its requires_grad=False``. The EMA target network of MultiSiam / BYOL / Odin is frozen by
design, so configs/multisiam_waymo.py (ResNet-50) starts with 169 of those lines and the demo config (ResNet-18)
with 70, hiding the warnings that matter. This constructor builds exactly what mmengine's builds (same groups, same
options), with a filter on the current mmengine logger that drops those lines and counts them per top-level module,
then logs one INFO line:

    optimizer: 70 parameters with requires_grad=False left out (target_net: 70)
"""
import logging
import re
from collections import Counter

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

SKIPPED = re.compile(r'^(?P<name>\S+) is skipped since its requires_grad=False$')


class _SkippedParamCounter(logging.Filter):
    """Drops mmengine's per-parameter 'is skipped since its requires_grad=False' records, counting them per
    top-level module name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        match = SKIPPED.match(record.getMessage())
        if match is None:
            return True
        self.counts[match.group('name').lstrip('.').split('.')[0]] += 1
        return False


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableParamsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's ``DefaultOptimWrapperConstructor`` with the skipped frozen parameters summarised in one line.

    Use it with ``optim_wrapper=dict(constructor='TrainableParamsOptimWrapperConstructor', ...)`` (the shipped
    LARS schedule does). Without a ``paramwise_cfg`` mmengine logs nothing per parameter and gives the optimizer
    ``model.parameters()``; the summary line is then not needed and not written.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        logger = MMLogger.get_current_instance()
        counter = _SkippedParamCounter()
        logger.addFilter(counter)
        try:
            optim_wrapper = super().__call__(model)
        finally:
            logger.removeFilter(counter)
        if counter.counts:
            modules = ', '.join(f'{name}: {n}' for name, n in counter.counts.most_common())
            print_log(f'optimizer: {sum(counter.counts.values())} parameters with requires_grad=False left out '
                      f'({modules})', logger='current', level=logging.INFO)
        return optim_wrapper

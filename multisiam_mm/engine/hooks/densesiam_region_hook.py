"""DenseSiamRegionSimHook: switch DenseSiam's RegionSim on part-way through training (paper Sec. 5.4, Table 4vi).

RegionSim's masks are PixSim's pseudo-category predictions, which are meaningless early on: the paper starts
RegionSim at the middle of training (0.5; 0.4 collapses, 0.6 is worse). The flag is recomputed from
``runner.iter / runner.max_iters`` before every iteration, never counted, so a resumed run switches at the same
iteration as an uninterrupted one.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def region_sim_start_iter(start: float, max_iters: int) -> int:
    """First iteration (0-based) with RegionSim: ``round(start · max_iters)``; ``start = 1`` means never."""
    return round(start * max_iters)


@HOOKS.register_module()
class DenseSiamRegionSimHook(Hook):
    """Set ``model.use_region_sim`` to ``runner.iter >= round(start · max_iters)`` before each training iteration.

    Works for iteration- and epoch-based loops (``runner.max_iters`` is the total number of iterations of both).

    Args:
        start: fraction of training after which RegionSim is on, in [0, 1] (0.5, the paper's best).
    """

    priority = 'NORMAL'

    def __init__(self, start: float = 0.5) -> None:
        if not 0.0 <= start <= 1.0:
            raise ValueError(f'DenseSiamRegionSimHook.start must be in [0, 1], got {start}')
        self.start = start

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        active = runner.iter >= region_sim_start_iter(self.start, runner.max_iters)
        if active != model.use_region_sim:
            print_log(f'DenseSiamRegionSimHook: RegionSim {"on" if active else "off"} from iteration {runner.iter} '
                      f'(start = {self.start} of {runner.max_iters} iterations)', logger='current')
        model.use_region_sim = active

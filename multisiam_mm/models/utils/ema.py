"""The τ of a target network's EMA update, for logging (MultiSiam eq. 2, Odin's λξ, MoCo's key momentum).

mmpretrain's EMA classes store the online weight m (``momentum``) and compute τ = 1 - m on the fly without keeping
it; these functions recompute the τ of the update just made so that it can be logged beside the losses.
"""
from math import cos, pi
from typing import Dict

import torch
from mmengine.logging import MessageHub
from mmengine.model import ExponentialMovingAverage
from mmpretrain.models.utils import CosineEMA
from torch import Tensor


def cosine_ema_tau(step: int, max_iters: int, base_momentum: float, end_momentum: float = 0.) -> float:
    """The τ (the target's weight) of CosineEMA's update number ``step`` (0-based) of ``max_iters``.

    Same formula as mmpretrain's ``CosineEMA.avg_func``, which computes its momentum m (the online weight) without
    storing it: m = m_end - (m_end - m_base) * (cos(π k / K) + 1) / 2 and τ = 1 - m, so with m_base = 0.004 and
    m_end = 0, τ rises from 0.996 at k = 0 to 1 at k = K along a cosine.
    """
    cosine = (cos(pi * step / float(max_iters)) + 1) / 2
    return 1.0 - (end_momentum - (end_momentum - base_momentum) * cosine)


def ema_tau_log(ema: ExponentialMovingAverage, device: torch.device) -> Dict[str, Tensor]:
    """``{'ema_tau': τ}`` of the update ``ema`` just made, to merge into a loss dict ('ema_tau' has no 'loss' in its
    name, so mmengine logs it without adding it to the loss); ``{}`` when τ is unknown.

    A ``CosineEMA`` needs the run's ``max_iters`` from the current MessageHub (set inside a Runner; absent when
    ``loss`` is called on its own); a constant-momentum EMA has τ = 1 - momentum. The first update (``steps`` 1)
    is a plain copy in both, and is logged with the schedule's τ like the others. With an ``interval`` > 1 the τ
    is that of the last update made (every ``interval``-th call).
    """
    if isinstance(ema, CosineEMA):
        max_iters = MessageHub.get_current_instance().get_info('max_iters')
        if not max_iters:
            return {}
        last_update = (int(ema.steps) - 1) // ema.interval * ema.interval
        tau = cosine_ema_tau(last_update, max_iters, ema.momentum, ema.end_momentum)
    else:
        tau = 1.0 - ema.momentum
    return dict(ema_tau=torch.tensor(tau, device=device))

"""NonFiniteLossHook: stop training at the first NaN / Inf loss, before the optimizer step applies it.

Where it acts. mmengine's ``after_train_iter`` sees the outputs after ``optim_wrapper.update_params`` has already
back-propagated and stepped, i.e. after the weights (and the EMA target, the optimizer moments) are corrupted. So
in ``before_train`` the hook wraps the model's ``parse_losses`` (on the unwrapped model: ``BaseModel.train_step``
and ``MMDistributedDataParallel.train_step`` both call it between the forward pass and ``update_params``) with a
check of the summed loss. A non-finite loss raises :class:`NonFiniteLossError` naming the iteration (1-based, as
mmengine's ``Iter(train) [k/N]`` log line) and every non-finite entry of the loss dict, before backward and step.

The error propagates out of ``runner.train()``, so the iteration's ``after_train_iter`` hooks do not run: no
checkpoint is written at the failing iteration, and the last good checkpoint and ``last_checkpoint`` stay as they
were. In a distributed run each rank checks its own loss; the rank that raises exits and the launcher (torchrun,
slurm) stops the others. The check costs one host sync per iteration (``torch.isfinite(loss).item()``), which
mmengine's logging of the loss values already pays.
"""
import math
from typing import Callable, Dict, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf."""


def nonfinite_terms(log_vars: Dict[str, object]) -> Dict[str, float]:
    """The entries of a ``parse_losses`` log dict whose value is NaN or Inf, as floats."""
    bad = {}
    for name, value in log_vars.items():
        value = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(value):
            bad[name] = value
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when the training loss is NaN or Inf, before the optimizer step.

    See the module doc for where it acts and what is left on disk.
    """

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model.parse_losses, '_nonfinite_checked', False):  # already wrapped (train() called again)
            return
        model.parse_losses = self._checked(model.parse_losses, runner)

    @staticmethod
    def _checked(parse_losses: Callable, runner) -> Callable:
        def parse_and_check(losses: dict) -> Tuple[torch.Tensor, dict]:
            loss, log_vars = parse_losses(losses)
            if not torch.isfinite(loss).all():
                terms = ', '.join(f'{k}={v}' for k, v in nonfinite_terms(log_vars).items())
                raise NonFiniteLossError(
                    f'NonFiniteLossHook: non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch}), '
                    f'before the optimizer step: {terms}. Training stopped; no checkpoint was written for this '
                    f'iteration (resume from the last one, with a lower learning rate or gradient clipping).')
            return loss, log_vars

        parse_and_check._nonfinite_checked = True
        return parse_and_check

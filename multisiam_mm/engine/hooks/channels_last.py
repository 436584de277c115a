"""ChannelsLastHook: train in the channels_last (NHWC) memory format, the fast layout of tensor-core convolutions."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model's 4-D parameters and buffers to ``torch.channels_last`` before training, and each batch's
    image tensors before the forward pass.

    Convolutions then run in NHWC (on GPUs with tensor cores usually faster, above all under AMP); the results are
    the same as in NCHW up to float rounding (``tests/test_large_batch.py``). Enable it in a config with
    ``custom_hooks = [..., dict(type='ChannelsLastHook')]`` (keep the base's hooks in that list).
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.to(memory_format=torch.channels_last)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if isinstance(data_batch, dict) and isinstance(data_batch.get('inputs'), (list, tuple)):
            data_batch['inputs'] = [to_channels_last(x) for x in data_batch['inputs']]


def to_channels_last(x):
    """``x`` in channels_last if it is a 4-D tensor (a batch of images), else unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if torch.is_tensor(x) and x.dim() == 4 else x

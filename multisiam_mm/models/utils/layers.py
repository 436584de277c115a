"""Small layer factories shared by the necks and heads."""
from collections import OrderedDict

from torch import nn


def conv_mlp(in_channels: int, hid_channels: int, out_channels: int, with_bn: bool = True) -> nn.Sequential:
    """A 2-layer MLP as 1×1 convolutions, applied per cell: (B, in, H, W) -> (B, out, H, W).

    with_bn=True: BYOL's Linear-BN-ReLU-Linear (same parameters; on a 1×1 map it is exactly BYOL's MLP on the pooled
    vector). with_bn=False: MoCo v2 / DenseCL's Linear-ReLU-Linear. The BN is named ``bn0`` like mmpretrain's
    NonLinearNeck, so BYOL's optimiser exclusions (``custom_keys={'bn': ...}``: no weight decay, no LARS) apply.
    """
    if with_bn:
        hidden = [('conv0', nn.Conv2d(in_channels, hid_channels, 1, bias=False)), ('bn0', nn.BatchNorm2d(hid_channels))]
    else:
        hidden = [('conv0', nn.Conv2d(in_channels, hid_channels, 1))]
    return nn.Sequential(OrderedDict([*hidden, ('relu0', nn.ReLU(inplace=True)),
                                      ('conv1', nn.Conv2d(hid_channels, out_channels, 1))]))

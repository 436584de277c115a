"""Small layer factories shared by the necks and heads."""
from collections import OrderedDict

from torch import nn


def conv_mlp(in_channels: int, hid_channels: int, out_channels: int, with_bn: bool = True, with_bias: bool = False,
             with_last_bias: bool = True) -> nn.Sequential:
    """A 2-layer MLP as 1×1 convolutions, applied per cell: (B, in, H, W) -> (B, out, H, W).

    with_bn=True: Linear-BN-ReLU-Linear; with_bn=False: Linear-ReLU-Linear. ``with_bias`` / ``with_last_bias``: a bias
    in the first / last layer, named as in mmpretrain's NonLinearNeck. On a 1×1 map each layout is exactly the MLP it
    copies applied to the pooled vector:

    * mmpretrain's BYOL projector and predictor: ``with_bias=True, with_last_bias=False`` (NonLinearNeck with
      ``with_bias=True, with_last_bn=False``);
    * SimSiam's predictor: the defaults (NonLinearNeck with ``with_last_bn=False, with_last_bias=True``);
    * MoCo v2 / DenseCL: ``with_bn=False, with_bias=True, with_last_bias=True`` (MoCoV2Neck).

    The BN is named ``bn0`` like NonLinearNeck's, so BYOL's optimiser exclusions (``custom_keys={'bn': ...}``: no
    weight decay, no LARS) apply.
    """
    hidden = [('conv0', nn.Conv2d(in_channels, hid_channels, 1, bias=with_bias))]
    if with_bn:
        hidden.append(('bn0', nn.BatchNorm2d(hid_channels)))
    return nn.Sequential(OrderedDict([*hidden, ('relu0', nn.ReLU(inplace=True)),
                                      ('conv1', nn.Conv2d(hid_channels, out_channels, 1, bias=with_last_bias))]))

"""MultiSiam projector g(·): a 2-D (1×1-conv) projector on the backbone map F and a pooled 1-D projector.

MultiSiam (Chen et al., ICCV 2021), Sec. 3.2: "we discard the global pooling layers and maintain the final 2D
feature maps F, F' ... and replace the MLPs in the projectors and predictor with 1×1 convolution layers in order to
match the 2D structure while keeping the amount of parameters unchanged". The 1-D image-level branch (eq. 1, 11)
keeps BYOL's pooled MLP projector.

Whether the 1-D branch reuses the 2-D projector is not said: "keeping the amount of parameters unchanged" holds for a
1×1 conv replacing an MLP either way. By default the two are separate, so the 1-D branch is BYOL exactly (its BN
statistics over the B pooled vectors, never mixed with the B·H·W cells of the 2-D branch; the BYOL equivalence of
tests/test_reference_equivalence.py). ``shared_projector=True`` uses one projector g for both, z = g(avgpool(F)) and
G = g(F) (BYOL's projector parameter count; the BN running statistics then mix both branches).
"""
from typing import List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from ..utils.layers import conv_mlp


@MODELS.register_module()
class MultiSiamNeck(BaseModule):
    """Projector g(·) of MultiSiam: returns the 1-D projection z and the 2-D projected map G = g(F).

    Args:
        in_channels: channels C of the backbone map F (2048 for ResNet-50).
        hid_channels: hidden width (4096 in the paper, as BYOL).
        out_channels: projection width (256).
        with_1d: build the pooled 1-D projector for the image-level branch (eq. 1).
        with_2d: build the 2-D projector (1×1 convs) for the clustering branch (eq. 3-7).
        with_bn: True: mmpretrain's BYOL projector, Linear(bias)-BN-ReLU-Linear(no bias); False: MoCo v2 / DenseCL's
            Linear(bias)-ReLU-Linear(bias) (the MoCo-based variant). See ``conv_mlp``.
        shared_projector: one projector for both branches (``proj_1d`` is ``proj_2d``) instead of two; needs
            ``with_1d`` and ``with_2d``. See the module docstring.
    """

    def __init__(self, in_channels: int = 2048, hid_channels: int = 4096, out_channels: int = 256,
                 with_1d: bool = True, with_2d: bool = True, with_bn: bool = True, shared_projector: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg)
        if not (with_1d or with_2d):
            raise ValueError('MultiSiamNeck: at least one of with_1d / with_2d must be True')
        if shared_projector and not (with_1d and with_2d):
            raise ValueError('MultiSiamNeck: shared_projector=True needs both branches (with_1d and with_2d)')
        mlp = dict(with_bn=with_bn, with_bias=True, with_last_bias=not with_bn)
        self.proj_1d = conv_mlp(in_channels, hid_channels, out_channels, **mlp) if with_1d else None
        self.proj_2d = self.proj_1d if shared_projector else (
            conv_mlp(in_channels, hid_channels, out_channels, **mlp) if with_2d else None)

    def project_1d(self, F: Tensor) -> Tensor:
        """z = g_1D(avgpool(F)): (B, C, H, W) -> (B, out)."""
        return self.proj_1d(torch.mean(F, dim=(2, 3), keepdim=True)).flatten(1)

    def project_2d(self, F: Tensor) -> Tensor:
        """G = g(F), per cell: (B, C, H, W) -> (B, out, H, W)."""
        return self.proj_2d(F)

    def forward(self, feats: Tuple[Tensor, ...]) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """feats: backbone outputs, the last one F (B, C, H, W) -> (z (B, out) or None, G (B, out, H, W) or None)."""
        F = feats[-1]
        z = self.project_1d(F) if self.proj_1d is not None else None
        G = self.project_2d(F) if self.proj_2d is not None else None
        return z, G

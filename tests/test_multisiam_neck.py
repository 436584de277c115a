"""MultiSiamNeck's ``shared_projector`` switch: one projector g for the 1-D and 2-D branches, or two (default)."""
import pytest
import torch
from conftest import random_pair_batch, tiny_model
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from multisiam_mm.models.necks import MultiSiamNeck

init_default_scope('mmpretrain')


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_shared_projector_is_one_projector_for_both_branches():
    torch.manual_seed(0)
    separate, shared = MultiSiamNeck(8, 16, 4), MultiSiamNeck(8, 16, 4, shared_projector=True)
    assert separate.proj_1d is not separate.proj_2d and shared.proj_1d is shared.proj_2d
    assert n_params(shared) == n_params(separate.proj_2d) == n_params(separate) // 2
    F = torch.randn(3, 8, 5, 5)
    z, G = shared((F,))
    torch.testing.assert_close(z, shared.proj_2d(F.mean(dim=(2, 3), keepdim=True)).flatten(1))  # z = g(avgpool F)
    assert G.shape == (3, 4, 5, 5)
    with pytest.raises(ValueError, match='shared_projector'):
        MultiSiamNeck(8, 16, 4, with_2d=False, shared_projector=True)


@pytest.mark.parametrize('shared', [False, True])
def test_the_1d_loss_reaches_the_2d_projector_only_when_shared(shared):
    """loss_1d (eq. 1) trains g_2D only through a shared projector: what the switch claims, in a MultiSiam step."""
    torch.manual_seed(0)
    cfg = tiny_model()
    cfg['neck']['shared_projector'] = shared
    model = MODELS.build(cfg)
    losses = model(**model.data_preprocessor(random_pair_batch(), True), mode='loss')
    losses['loss_1d'].backward()
    grad = model.neck.proj_2d.conv0.weight.grad
    assert (grad is not None and grad.abs().sum() > 0) == shared

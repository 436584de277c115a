"""MultiSiam: neck, attention (eqs. 8-9), ClusterHead losses (eq. 10 and variants), alignment, gradients, training."""
import itertools

import pytest
import torch
import torch.nn.functional as nnf
from conftest import random_pair_batch, set_schedule, tiny_model, tiny_pipeline
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.models.necks import NonLinearNeck
from mmpretrain.registry import DATASETS, MODELS
from torch import nn

from multisiam_mm.models.heads.cluster_head import ClusterHead
from multisiam_mm.models.necks.multisiam_neck import MultiSiamNeck
from multisiam_mm.models.utils.alignment import align_pair
from multisiam_mm.models.utils.attention import propagate
from multisiam_mm.models.utils.geometry import cell_coords
from multisiam_mm.models.utils.kmeans import batched_kmeans

init_default_scope('mmpretrain')


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_2d_projector_has_byol_mlp_parameter_count():
    C, Hd, D = 64, 96, 16
    neck = MultiSiamNeck(C, Hd, D)
    byol_mlp = NonLinearNeck(C, Hd, D, with_bias=True, with_last_bn=False, with_avg_pool=False)  # mmpretrain's BYOL
    assert n_params(neck.proj_2d) == n_params(byol_mlp) == n_params(neck.proj_1d)
    z, G = neck((torch.randn(3, C, 5, 4),))
    assert z.shape == (3, D) and G.shape == (3, D, 5, 4)


def test_projector_on_pooled_map_equals_per_cell_linear_layers():
    """1×1 convs are BYOL's Linear layers applied to every cell: check against explicit matmuls (eval-mode BN)."""
    neck = MultiSiamNeck(8, 12, 4).eval()
    F = torch.randn(2, 8, 3, 3)
    conv1, bn, _, conv2 = neck.proj_2d
    assert conv2.bias is None  # mmpretrain's BYOL MLP: no bias in the last layer
    x = F.permute(0, 2, 3, 1) @ conv1.weight[:, :, 0, 0].T + conv1.bias
    x = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    expected = (x.relu() @ conv2.weight[:, :, 0, 0].T).permute(0, 3, 1, 2)
    torch.testing.assert_close(neck((F,))[1], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('residual', [False, True])
def test_self_attention_matches_equations_8_and_9(residual):
    g = torch.Generator().manual_seed(0)
    R, V = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 6, 3, 4, generator=g)
    Q = propagate(R, V, residual)
    Rf, Vf = R.flatten(2), V.flatten(2)
    for b, n in itertools.product(range(2), range(12)):
        expected = sum(nnf.cosine_similarity(Rf[b, :, n], Rf[b, :, m], dim=0).clamp(min=0) ** 2 * Vf[b, :, m]
                       for m in range(12))
        if residual:
            expected = expected + Vf[b, :, n]
        torch.testing.assert_close(Q.flatten(2)[b, :, n], expected, rtol=1e-5, atol=1e-5)


def head_without_attention(target: str) -> ClusterHead:
    torch.manual_seed(0)
    return ClusterHead(in_channels=8, hid_channels=16, out_channels=8, self_attention=False, num_clusters=3,
                       target=target).eval()


def test_cluster_loss_is_eq_10_against_the_assigned_centroid():
    head = head_without_attention('centroid')
    R, R_t = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    loss, stats = head.loss(R, R_t)
    Q = head.predictor(R).flatten(2).transpose(1, 2)
    km = batched_kmeans(R_t.flatten(2).transpose(1, 2), 3, num_iters=head.kmeans_iters, metric='cosine')
    centroid = torch.stack([km.centroids[b, km.assignment[b]] for b in range(2)])
    torch.testing.assert_close(loss, -nnf.cosine_similarity(Q, centroid, dim=-1).mean())
    assert set(stats) == {'kmeans_inertia', 'kmeans_max_cluster_frac', 'kmeans_empty_clusters'}


def test_dense_clustering_averages_cosine_over_the_cluster_members():
    head = head_without_attention('dense')
    R, R_t = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    loss, _ = head.loss(R, R_t)
    Q = head.predictor(R).flatten(2).transpose(1, 2)
    x = R_t.flatten(2).transpose(1, 2)
    a = batched_kmeans(x, 3, num_iters=head.kmeans_iters, metric='cosine').assignment
    per_cell = [torch.stack([-nnf.cosine_similarity(Q[b, n], x[b, m], dim=0) for m in range(9) if a[b, m] == a[b, n]])
                .mean() for b in range(2) for n in range(9)]
    torch.testing.assert_close(loss, torch.stack(per_cell).mean(), rtol=1e-5, atol=1e-6)


def test_no_kmeans_variant_is_per_cell_cosine():
    head = head_without_attention('pixel')
    R, R_t = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    loss, stats = head.loss(R, R_t)
    expected = -nnf.cosine_similarity(head.predictor(R), R_t, dim=1).mean()
    torch.testing.assert_close(loss, expected)
    assert stats == {}


def test_cluster_head_validates_its_config():
    with pytest.raises(ValueError, match='target'):
        ClusterHead(target='nearest')
    with pytest.raises(ValueError, match='num_clusters'):
        ClusterHead(num_clusters=0)
    with pytest.raises(ValueError, match='metric'):
        ClusterHead(metric='manhattan')


def views_and_coordinate_maps(H: int = 7, W: int = 7):
    """Two overlapping views (one flipped) and the coordinate maps (x, y) their feature maps would hold."""
    view = torch.tensor([[40., 30., 360., 270.], [10., 50., 200., 210.]])
    view_t = torch.tensor([[120., 60., 400., 300.], [60., 20., 250., 230.]])
    flip, flip_t = torch.tensor([True, False]), torch.tensor([False, True])
    return view, view_t, flip, flip_t, cell_coords(view, H, W, flip), cell_coords(view_t, H, W, flip_t)


def test_roi_alignment_maps_both_views_to_the_same_original_coordinates():
    view, view_t, flip, flip_t, G, G_t = views_and_coordinate_maps()
    R, R_t = align_pair(G, G_t, view, view_t, flip, flip_t, torch.tensor([[640., 480.]] * 2), 'roi')
    cell = torch.maximum((view[:, 2] - view[:, 0]) / 7, (view_t[:, 2] - view_t[:, 0]) / 7)
    err = (R - R_t).abs().amax(dim=(1, 2, 3))
    assert (err < 0.5 * cell).all(), err


@pytest.mark.parametrize('mode', ['offset', 'offset_nonorm'])
def test_offset_alignment_appends_the_true_normalised_displacement(mode):
    view, view_t, flip, flip_t, G, G_t = views_and_coordinate_maps(H=5, W=6)
    size = torch.tensor([[640., 480.], [300., 260.]])
    R, R_t = align_pair(G, G_t, view, view_t, flip, flip_t, size, mode)
    coords, coords_t, dC = R[:, :2], R_t, R[:, 2:]
    assert torch.allclose(coords, cell_coords(view, 5, 6))  # flipped back before the offsets are taken
    if mode == 'offset':  # eq. 5: divided by coord(G_HW) - coord(G_11)
        extent = coords[:, :, -1, -1] - coords[:, :, 0, 0]
    else:
        extent = size
    torch.testing.assert_close(dC, (coords_t - coords) / extent[:, :, None, None])


def test_no_alignment_only_flips_back():
    view, view_t, flip, flip_t, G, G_t = views_and_coordinate_maps()
    R, R_t = align_pair(G, G_t, view, view_t, flip, flip_t, torch.ones(2, 2), 'none')
    torch.testing.assert_close(R, cell_coords(view, 7, 7))
    torch.testing.assert_close(R_t, cell_coords(view_t, 7, 7))


@pytest.mark.parametrize('alignment', ['roi', 'offset', 'offset_nonorm', 'none'])
def test_gradients_reach_the_online_network_only(alignment):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model(alignment))
    set_schedule(0, 10)
    data = model.data_preprocessor(random_pair_batch(), True)
    losses = model(**data, mode='loss')
    assert {'loss_1d', 'loss_2d'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in model.target_net.parameters())
    for part in (model.backbone, model.neck.proj_1d, model.neck.proj_2d, model.head, model.cluster_head):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), part.__class__.__name__
        assert sum(g.abs().sum() for g in grads) > 0


def test_multisiam_validates_its_config():
    with pytest.raises(ValueError, match='alignment'):
        MODELS.build(tiny_model('roi_align'))
    with pytest.raises(ValueError, match='loss_lambda'):
        MODELS.build(dict(tiny_model(), loss_lambda=1.5))


VARIANTS = {
    'roi': ('roi', {}),
    'offset+attention': ('offset', {}),
    'offset_nonorm': ('offset_nonorm', {}),
    'none': ('none', {}),
    'roi+residual': ('roi', dict(residual=True)),
    'dense': ('roi', dict(target='dense')),
    'no-kmeans': ('offset', dict(target='pixel')),
    'euclidean': ('roi', dict(metric='euclidean', self_attention=False)),
}


@pytest.mark.slow
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_training_on_synthetic_scenes_decreases_the_loss(variant, tiny_streets):
    alignment, head_cfg = VARIANTS[variant]
    torch.manual_seed(0)
    model = MODELS.build(tiny_model(alignment, **head_cfg))
    dataset = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=tiny_streets, ann_file='train.txt',
                                  pipeline=tiny_pipeline()))
    import numpy as np
    np.random.seed(0)
    batches = [default_collate([dataset[i] for i in range(j, j + 8)]) for j in (0, 8)]
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    steps, history = 30, []
    for it in range(steps):
        set_schedule(it, steps)
        data = model.data_preprocessor(batches[it % 2], True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(loss)
        optim.zero_grad()
        loss.backward()
        optim.step()
        history.append(loss.item())
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert last < first - 0.05, history

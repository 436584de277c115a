"""DenseSiam: grid sampling (Sec. 3.2), losses (eqs. 1-6), stop-gradient, the RegionSim hook, configs, training; the
FPN encoder option and the unsupervised semantic segmentation mode (Sec. 4, eq. 8) with Hungarian-matched mIoU."""
import itertools
import os.path as osp
import shlex
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from conftest import (
    ROOT,
    apply_cfg_options,
    build_parts,
    config_value,
    random_pair_batch,
    tiny_pipeline,
    tiny_runner_cfg,
)
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmpretrain.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from multisiam_mm.engine.hooks.densesiam_region_hook import DenseSiamRegionSimHook, region_sim_start_iter
from multisiam_mm.evaluation.hungarian_miou import HungarianMIoU, confusion_matrix, hungarian_miou
from multisiam_mm.models.algorithms.densesiam import (
    PixSimHead,
    RegionSimHead,
    auto_loss_weights,
    class_balanced_cross_entropy,
    cross_entropy_similarity,
    negative_cosine,
    pseudo_label_cross_entropy,
    region_contrast,
    region_embeddings,
    sample_grid,
    symmetric_loss,
)
from multisiam_mm.models.utils.geometry import cell_coords, grid_points_in_intersection, intersection_box

init_default_scope('mmpretrain')
IN1K = osp.join(ROOT, 'configs', 'densesiam', 'densesiam_r50_8xb32-coslr-200e_in1k.py')
WAYMO = osp.join(ROOT, 'configs', 'densesiam', 'densesiam_r50_8xb32-coslr-200e_waymo.py')
USEG = osp.join(ROOT, 'configs', 'densesiam', 'densesiam-useg_r18_fpn_synthetic-streets.py')


def tiny_densesiam(**kwargs) -> dict:
    """DenseSiam on a ResNet-18 (64x64 views -> 2x2 map) with narrow heads: D = N = 16 regions, E = 16."""
    bn1d = dict(type='BN1d')
    return dict(dict(
        type='DenseSiam',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN')),
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=64, out_channels=64, num_layers=3,
                  with_last_bn_affine=False, norm_cfg=bn1d),
        head=dict(type='LatentPredictHead', loss=dict(type='CosineSimilarityLoss'),
                  predictor=dict(type='NonLinearNeck', in_channels=64, hid_channels=16, out_channels=64,
                                 with_avg_pool=False, with_last_bn=False, with_last_bias=True, norm_cfg=bn1d)),
        pix_head=dict(type='PixSimHead', in_channels=512, hid_channels=32, out_channels=16, pred_hid_channels=8),
        region_head=dict(type='RegionSimHead', in_channels=512, hid_channels=32, out_channels=16,
                         pred_hid_channels=8),
    ), **kwargs)


# ---------------------------------------------------------------------------------------------------------- grid


def two_views():
    """Two overlapping views of a 640x480 image, one of each pair flipped; the overlap covers >= 40 % of each side."""
    view_a = torch.tensor([[40., 30., 360., 270.], [10., 50., 200., 210.]])
    view_b = torch.tensor([[120., 60., 400., 300.], [60., 20., 250., 230.]])
    return view_a, view_b, torch.tensor([True, False]), torch.tensor([False, True])


@pytest.mark.parametrize('H', [56, 5])
def test_pixsim_grid_samples_the_same_original_coordinates_in_both_views(H):
    """Coordinate-encoding maps (x, y of the original image per cell, as displayed): sampled at the grid points,
    both views give the cell centres of a G x G grid over the intersection, in original pixels."""
    view_a, view_b, flip_a, flip_b = two_views()
    G = 7
    grid_a, grid_b = grid_points_in_intersection(view_a, view_b, flip_a, flip_b, G)
    coords_a = sample_grid(cell_coords(view_a, H, H, flip_a), grid_a).flatten(2)  # (B, 2, G²)
    coords_b = sample_grid(cell_coords(view_b, H, H, flip_b), grid_b).flatten(2)
    expected = cell_coords(intersection_box(view_a, view_b), G, G).flatten(2)
    if H == 56:  # every grid point lies between cell centres: bilinear interpolation of a linear map is exact
        torch.testing.assert_close(coords_a, expected)
        torch.testing.assert_close(coords_b, expected)
    else:  # coarse maps: exact inside, clamped to the edge value within half a cell of the border
        for coords, view in ((coords_a, view_a), (coords_b, view_b)):
            half_cell = ((view[:, 2:] - view[:, :2]) / (2 * H))[:, :, None]
            assert ((coords - expected).abs() <= half_cell + 1e-4).all()
            assert ((coords - expected).abs() > 1e-3).any()  # the clamp is real: this case is not trivially exact


def test_flipping_a_view_changes_where_the_grid_samples_but_not_what():
    view_a, view_b, _, _ = two_views()
    no_flip = torch.zeros(2, dtype=torch.bool)
    flip = torch.ones(2, dtype=torch.bool)
    grid_plain, _ = grid_points_in_intersection(view_a, view_b, no_flip, no_flip, 7)
    grid_flip, _ = grid_points_in_intersection(view_a, view_b, flip, no_flip, 7)
    torch.testing.assert_close(grid_flip[..., 0], -grid_plain[..., 0])  # x mirrored in the displayed map
    coords = sample_grid(cell_coords(view_a, 56, 56, flip), grid_flip)
    torch.testing.assert_close(coords, sample_grid(cell_coords(view_a, 56, 56), grid_plain))


@pytest.mark.parametrize('aligned', [True, False])
def test_grid_orders_agree_exactly_when_the_points_are_cell_centres(aligned):
    """In eval mode the projector and predictor act per pixel, so sampling before or after them (Table 4iv) gives the
    same result at cell centres, and different results between cells (bilinear interpolation is not commuted)."""
    torch.manual_seed(0)
    G = 4
    view = torch.tensor([[0., 0., 80., 80.]] * 2)
    other = view if aligned else torch.tensor([[5., 3., 85., 83.]] * 2)
    flip = torch.tensor([False, True])
    grid, _ = grid_points_in_intersection(view, other, flip, flip, G)
    F = torch.randn(2, 8, G, G)
    outs = {}
    for order in ('grid_proj_pred', 'proj_grid_pred', 'proj_pred_grid'):
        torch.manual_seed(1)
        head = PixSimHead(8, 12, 6, 4, grid_order=order).eval()
        outs[order] = head(F, grid)
        assert outs[order][0].shape == outs[order][1].shape == (2, 6, G * G)
    torch.testing.assert_close(outs['proj_grid_pred'][0], outs['proj_pred_grid'][0])  # both sample z = h(F)
    assert torch.allclose(outs['grid_proj_pred'][0], outs['proj_pred_grid'][0], atol=1e-5) == aligned
    for (_, p1), (_, p2) in itertools.combinations(outs.values(), 2):
        assert torch.allclose(p1, p2, atol=1e-5) == aligned


# -------------------------------------------------------------------------------------------------------- losses


def test_negative_cosine_is_eq_2_per_point():
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(2, 5, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    naive = [-(p[b, :, n] @ z[b, :, n]) / (p[b, :, n].norm() * z[b, :, n].norm()) for b in range(2) for n in range(6)]
    torch.testing.assert_close(negative_cosine(p, z), torch.stack(naive).mean())


def test_cross_entropy_similarity_is_eq_3_per_point():
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(2, 5, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    naive = []
    for b, n in itertools.product(range(2), range(6)):
        q = torch.exp(z[b, :, n]) / torch.exp(z[b, :, n]).sum()
        log_r = p[b, :, n] - torch.log(torch.exp(p[b, :, n]).sum())
        naive.append(-(q * log_r).sum())
    torch.testing.assert_close(cross_entropy_similarity(p, z), torch.stack(naive).mean())


def test_region_embeddings_are_eq_4_mask_weighted_sums():
    g = torch.Generator().manual_seed(0)
    z, F = torch.randn(2, 3, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    r = region_embeddings(z, F)
    assert r.shape == (2, 3, 4)
    for b, n, c in itertools.product(range(2), range(3), range(4)):
        masks = [torch.exp(z[b, n, g_]) / torch.exp(z[b, :, g_]).sum() for g_ in range(5)]
        torch.testing.assert_close(r[b, n, c], sum(m * F[b, c, g_] for g_, m in enumerate(masks)))


@pytest.mark.parametrize('temperature', [0.1, 1.0])
def test_region_contrast_is_eq_6_infonce_among_the_regions_of_each_image(temperature):
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(2, 4, 6, generator=g), torch.randn(2, 4, 6, generator=g)
    terms = []
    for b, n in itertools.product(range(2), range(4)):
        sims = torch.stack([nnf.cosine_similarity(p[b, n], z[b, m], dim=0) for m in range(4)]) / temperature
        terms.append(-torch.log(torch.exp(sims[n]) / torch.exp(sims).sum()))
    torch.testing.assert_close(region_contrast(p, z, temperature), torch.stack(terms).mean())


def test_symmetric_loss_is_eq_1():
    g = torch.Generator().manual_seed(0)
    p_a, z_a, p_b, z_b = (torch.randn(2, 5, 6, generator=g) for _ in range(4))
    expected = 0.5 * negative_cosine(p_a, z_b) + 0.5 * negative_cosine(p_b, z_a)
    torch.testing.assert_close(symmetric_loss(negative_cosine, p_a, z_a, p_b, z_b), expected)


# -------------------------------------------------------------------------------------------------- stop-gradient


def test_pixsim_gradient_reaches_z_only_through_its_prediction():
    """With p = W z (a linear predictor) the loss ½ D(p_a, sg z_b) + ½ D(p_b, sg z_a) has
    dL/dz_a = ½ Wᵀ dD(p_a, z_b)/dp_a, where d(-cos(p, z))/dp = -(ẑ - (p̂·ẑ) p̂) / |p| per point (mean over points).
    Without the stop-gradient the target path would add a second term (checked to differ)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 5, generator=g)
    z_a, z_b = (torch.randn(2, 5, 6, generator=g, requires_grad=True) for _ in range(2))
    p_a, p_b = (torch.einsum('dc,bcn->bdn', W, z) for z in (z_a, z_b))
    symmetric_loss(negative_cosine, p_a, z_a, p_b, z_b).backward()
    P, Z = p_a.detach(), z_b.detach()
    p_hat, z_hat = nnf.normalize(P, dim=1), nnf.normalize(Z, dim=1)
    dD_dp = -(z_hat - (p_hat * z_hat).sum(1, keepdim=True) * p_hat) / P.norm(dim=1, keepdim=True) / (2 * 6)
    expected = 0.5 * torch.einsum('dc,bdn->bcn', W, dD_dp)
    torch.testing.assert_close(z_a.grad, expected)

    z_a.grad = None
    no_sg = 0.5 * (negative_cosine(torch.einsum('dc,bcn->bdn', W, z_a), z_b)
                   + negative_cosine(torch.einsum('dc,bcn->bdn', W, z_b), z_a))
    no_sg.backward()
    assert not torch.allclose(z_a.grad, expected)


def test_region_loss_treats_the_other_views_projections_as_constants():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 6, generator=g)
    z_a, z_b = (torch.randn(2, 4, 6, generator=g, requires_grad=True) for _ in range(2))
    loss = symmetric_loss(lambda p, z: region_contrast(p, z, 0.1), z_a @ W.T, z_a, z_b @ W.T, z_b)
    grad_a, = torch.autograd.grad(loss, z_a)
    const_b = z_b.detach().clone()  # a plain constant: only the prediction path of z_a remains
    expected, = torch.autograd.grad(0.5 * region_contrast(z_a @ W.T, const_b, 0.1), z_a)
    torch.testing.assert_close(grad_a, expected)


@pytest.mark.parametrize('region', [False, True])
def test_every_branch_gets_gradients_and_regionsim_only_when_switched_on(region):
    torch.manual_seed(0)
    model = MODELS.build(tiny_densesiam())
    model.use_region_sim = region
    losses = model(**model.data_preprocessor(random_pair_batch(), True), mode='loss')
    assert set(losses) == {'loss_img', 'loss_pix', 'pix_z_std'} | ({'loss_region'} if region else set())
    assert not losses['pix_z_std'].requires_grad
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for part in (model.backbone, model.neck, model.head, model.pix_head):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, type(part).__name__
    region_grads = [p.grad for p in model.region_head.parameters()]
    assert all((g is not None) == region for g in region_grads)


def test_region_loss_flows_into_the_masks_and_the_encoder():
    torch.manual_seed(0)
    model = MODELS.build(tiny_densesiam())
    model.use_region_sim = True
    model(**model.data_preprocessor(random_pair_batch(), True), mode='loss')['loss_region'].backward()
    assert model.pix_head.projector[0].weight.grad.abs().sum() > 0  # eq. 4 masks are not detached
    assert model.backbone.layer4[1].conv2.weight.grad.abs().sum() > 0
    assert model.pix_head.predictor[0].weight.grad is None and model.head.predictor.fc0.weight.grad is None


@pytest.mark.parametrize('variant', [dict(pix_head=None, region_head=None), dict(global_region='intersection'),
                                     dict(global_region='intersection', pix_head=None, region_head=None)])
def test_simsiam_and_intersection_variants_run(variant):
    torch.manual_seed(0)
    model = MODELS.build(tiny_densesiam(**variant))
    losses = model(**model.data_preprocessor(random_pair_batch(), True), mode='loss')
    assert ('loss_pix' in losses) == (variant.get('pix_head', 1) is not None)
    assert all(torch.isfinite(v) for v in losses.values())


def test_densesiam_validates_its_config():
    with pytest.raises(ValueError, match='needs PixSim'):
        MODELS.build(tiny_densesiam(pix_head=None))
    with pytest.raises(ValueError, match='global_region'):
        MODELS.build(tiny_densesiam(global_region='overlap'))
    with pytest.raises(ValueError, match='grid_size'):
        MODELS.build(tiny_densesiam(grid_size=0))
    with pytest.raises(ValueError, match='grid_order'):
        PixSimHead(grid_order='pred_grid_proj')
    with pytest.raises(ValueError, match='similarity'):
        PixSimHead(similarity='l2')
    with pytest.raises(ValueError, match='temperature'):
        RegionSimHead(temperature=0)
    with pytest.raises(ValueError, match='start'):
        DenseSiamRegionSimHook(start=1.5)


# ------------------------------------------------------------------------------------------------------------ hook


def run_hook(hook: DenseSiamRegionSimHook, model, iters, max_iters: int) -> list:
    flags = []
    for it in iters:
        hook.before_train_iter(SimpleNamespace(iter=it, max_iters=max_iters, model=model), batch_idx=it)
        flags.append(model.use_region_sim)
    return flags


@pytest.mark.parametrize('start, max_iters, first_on', [(0.5, 10, 5), (0.6, 10, 6), (0.4, 7, 3), (0.0, 5, 0),
                                                        (1.0, 8, 8)])
def test_hook_switches_regionsim_on_at_the_start_fraction(start, max_iters, first_on):
    model = SimpleNamespace(use_region_sim=False)
    flags = run_hook(DenseSiamRegionSimHook(start), model, range(max_iters), max_iters)
    assert flags == [it >= first_on for it in range(max_iters)]
    assert region_sim_start_iter(start, max_iters) == first_on


def test_hook_state_after_resume_depends_on_the_iteration_only():
    """A fresh hook and model (flag False) resumed at iteration 7 of 10 switch RegionSim on at once; one resumed at 3
    keeps it off until 5, as the uninterrupted run."""
    for resume_at in (7, 3):
        model = SimpleNamespace(use_region_sim=False)
        flags = run_hook(DenseSiamRegionSimHook(0.5), model, range(resume_at, 10), 10)
        assert flags == [it >= 5 for it in range(resume_at, 10)]


def runner_cfg(data_root: str, work_dir: str, max_iters: int) -> dict:
    return dict(tiny_runner_cfg(data_root, work_dir, max_iters=max_iters, ckpt_interval=1, model=tiny_densesiam()),
                custom_hooks=[dict(type='DenseSiamRegionSimHook', start=0.5)])


def region_iters(runner) -> int:
    """How many logged iterations had a RegionSim loss."""
    hub = runner.message_hub
    return len(hub.get_scalar('train/loss_region').data[0]) if 'train/loss_region' in hub.log_scalars else 0


@pytest.mark.slow
def test_hook_in_a_runner_switches_at_the_same_iteration_after_resume(tiny_streets, tmp_path):
    work = str(tmp_path / 'work')
    runner = Runner.from_cfg(Config(runner_cfg(tiny_streets, work, max_iters=4)))
    runner.train()
    assert region_iters(runner) == 2  # iterations 2 and 3 of 4
    assert len(runner.message_hub.get_scalar('train/loss_pix').data[0]) == 4

    # resume after iteration 1: iteration 1 still without RegionSim, 2 and 3 with it, as the uninterrupted run
    cfg = dict(runner_cfg(tiny_streets, str(tmp_path / 'resumed'), max_iters=4), resume=True,
               load_from=osp.join(work, 'iter_1.pth'))
    resumed = Runner.from_cfg(Config(cfg))
    resumed.train()
    assert resumed.iter == 4 and region_iters(resumed) == 2


# --------------------------------------------------------------------------------------------------------- configs


def documented_switches() -> list:
    """(table, row, [key=value ...]) of the ablation table of docs/densesiam.md."""
    rows = []
    for line in open(osp.join(ROOT, 'docs', 'densesiam.md')):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 4 and cells[0][:1].isdigit() and (cells[3] == '(none)' or cells[3].startswith('`')):
            rows.append((cells[0], cells[1], shlex.split(cells[3].strip('`')) if cells[3] != '(none)' else []))
    return rows


def test_configs_carry_the_paper_setting():
    cfg = Config.fromfile(IN1K)
    assert cfg.model.type == 'DenseSiam' and cfg.model.backbone.depth == 50
    assert (cfg.model.grid_size, cfg.model.loss_pix_weight, cfg.model.loss_region_weight) == (7, 1.0, 0.1)
    assert cfg.model.pix_head.grid_order == 'proj_pred_grid' and cfg.model.pix_head.out_channels == 512
    assert cfg.model.region_head.out_channels == 512 and cfg.model.global_region == 'image'
    assert cfg.model.pix_head.similarity == 'cross_entropy'  # eq. 3 (Sec. 3.3)
    assert cfg.model.pix_head.pred_hid_channels == cfg.model.region_head.pred_hid_channels == 512  # Sec. 3.4
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'SGD' and opt.lr == pytest.approx(0.05 * cfg.train_dataloader.batch_size * 8 / 256)
    assert (opt.weight_decay, opt.momentum) == (1e-4, 0.9) and cfg.train_cfg.max_epochs == 200
    assert cfg.param_scheduler[0].type == 'CosineAnnealingLR'
    assert [h.type for h in cfg.custom_hooks] == ['SimSiamHook', 'DenseSiamRegionSimHook', 'NonFiniteLossHook',
                                                'PairCropStatsHook']
    assert cfg.custom_hooks[1].start == 0.5
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.type == 'IoUPairCrop' and 0 < crop.iou_thr <= 0.05 and tuple(crop.scale) == (0.2, 1.0)
    waymo = Config.fromfile(WAYMO)
    assert waymo.train_dataloader.dataset.data_root == 'data/waymo' and waymo.model == cfg.model


def test_pixsim_similarity_switch_is_eq_3_by_default_and_eq_2_when_cosine():
    """The paper's PixSim (Sec. 3.3: RegionSim's masks are softmax(z), which groups pixels when PixSim is trained
    with the cross-entropy of eq. 3) is the default of the head and of the pre-training configs; 'cosine' (eq. 2) is a
    switch and changes L_pix to the negative cosine."""
    assert PixSimHead().similarity == 'cross_entropy'
    assert Config.fromfile(IN1K).model.pix_head.similarity == 'cross_entropy'
    g = torch.Generator().manual_seed(0)
    p_a, z_a, p_b, z_b = (torch.randn(2, 6, 9, generator=g) for _ in range(4))
    heads = {sim: PixSimHead(8, 12, 6, 4, similarity=sim) for sim in ('cross_entropy', 'cosine')}
    ce, cos = (heads[s].loss(p_a, z_a, p_b, z_b) for s in ('cross_entropy', 'cosine'))
    torch.testing.assert_close(ce, 0.5 * (cross_entropy_similarity(p_a, z_b) + cross_entropy_similarity(p_b, z_a)))
    torch.testing.assert_close(cos, 0.5 * (negative_cosine(p_a, z_b) + negative_cosine(p_b, z_a)))
    assert not torch.allclose(ce, cos)


def predictor_widths(model) -> tuple:
    """Hidden widths of the PixSim predictor (1x1 conv) and of the RegionSim predictor (NonLinearNeck)."""
    return model.pix_head.predictor.conv0.out_channels, model.region_head.predictor.fc0.out_features


def test_dense_predictors_are_512_wide_as_sec_3_4_and_128_is_a_switch():
    """Sec. 3.4: "The numbers of channels in the projectors and predictors of PixSim and RegionSim are set to 512":
    the predictors' hidden layers too. SimSiam's 4x bottleneck (512 -> 128 -> 512) is the switch
    pred_hid_channels=128 of both heads."""
    cfg = Config.fromfile(IN1K)
    model = MODELS.build(cfg.model)
    assert predictor_widths(model) == (512, 512)
    assert model.pix_head.projector[0].out_channels == model.region_head.projector.fc0.out_features == 512
    cfg = apply_cfg_options(cfg, ['model.pix_head.pred_hid_channels=128', 'model.region_head.pred_hid_channels=128'])
    assert predictor_widths(MODELS.build(cfg.model)) == (128, 128)


def test_segmentation_mode_takes_the_released_values_where_sec_4_is_silent():
    """K = 128 auxiliary pseudo-categories, RegionSim from 80 % of training, a 128-wide region predictor: the
    authors' released COCO-Stuff config (Sec. 4 gives none of them). The former readings (K = 4 C = 32, start 0.5,
    width 32) are switches, and each changes what it names: λ_pix / λ_aux, the first RegionSim iteration, the width."""
    cfg = Config.fromfile(USEG)
    m = cfg.model
    assert (m.aux_head.out_channels, m.region_head.pred_hid_channels, m.pix_head.pred_hid_channels) == (128, 128, 128)
    assert cfg.custom_hooks[0].type == 'DenseSiamRegionSimHook' and cfg.custom_hooks[0].start == 0.8
    assert region_sim_start_iter(cfg.custom_hooks[0].start, cfg.train_cfg.max_iters) == 160
    released = MODELS.build(m)
    assert released.region_head.predictor.fc0.out_features == 128
    assert (released.loss_pix_weight, released.loss_aux_weight) == pytest.approx(auto_loss_weights(8, 128))
    old = apply_cfg_options(Config.fromfile(USEG), ['model.aux_head.out_channels=32',
                                                     'model.region_head.pred_hid_channels=32',
                                                     'custom_hooks.0.start=0.5'])
    former = MODELS.build(old.model)
    assert former.aux_head.projector[-2].out_channels == 32 and former.region_head.predictor.fc0.out_features == 32
    assert (former.loss_pix_weight, former.loss_aux_weight) == pytest.approx(auto_loss_weights(8, 32))
    assert former.loss_pix_weight != pytest.approx(released.loss_pix_weight)
    assert region_sim_start_iter(old.custom_hooks[0].start, old.train_cfg.max_iters) == 100


def test_docs_list_every_ablation_of_table_4():
    rows = documented_switches()
    assert {'4i', '4ii', '4iii', '4iv', '4v', '4vi'} <= {r[0] for r in rows} and len(rows) >= 25


@pytest.mark.slow
@pytest.mark.parametrize('row', documented_switches(), ids=lambda r: f'{r[0]}:{r[1][:30]}')
def test_documented_ablation_switch_builds_and_takes_effect(row):
    cfg = apply_cfg_options(Config.fromfile(IN1K), row[2])
    build_parts(cfg)
    for switch in row[2]:
        key, value = switch.split('=', 1)
        node = config_value(cfg, key)
        assert str(node) == value or node == float(value), (key, node, value)


# -------------------------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_on_synthetic_scenes_decreases_the_loss(tiny_streets):
    torch.manual_seed(0)
    np.random.seed(0)
    model = MODELS.build(tiny_densesiam())
    model.use_region_sim = True
    dataset = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=tiny_streets, ann_file='train.txt',
                                  pipeline=tiny_pipeline()))
    batches = [default_collate([dataset[i] for i in range(j, j + 8)]) for j in (0, 8)]
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    history = {k: [] for k in ('loss_img', 'loss_pix', 'loss_region')}
    for it in range(20):
        losses = model(**model.data_preprocessor(batches[it % 2], True), mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(loss)
        optim.zero_grad()
        loss.backward()
        optim.step()
        for k, values in history.items():
            values.append(losses[k].item())
    for k, values in history.items():  # every branch learns, and PixSim does not collapse (std ~ 1/sqrt(D) = 0.25)
        assert sum(values[-4:]) / 4 < sum(values[:4]) / 4 - 0.05, (k, values)
    assert losses['pix_z_std'] > 0.1


# ------------------------------------------------------------------------------------ Hungarian-matched mIoU


def test_confusion_matrix_counts_pixels_and_skips_ignored_ones():
    g = torch.Generator().manual_seed(0)
    gt, pred = torch.randint(0, 4, (2, 9, 7), generator=g), torch.randint(0, 5, (2, 9, 7), generator=g)
    gt[0, :2] = 255
    conf = confusion_matrix(pred, gt, num_preds=5, num_classes=4)
    naive = torch.zeros(4, 5, dtype=torch.long)
    for c, k in zip(gt.flatten().tolist(), pred.flatten().tolist()):
        if c != 255:
            naive[c, k] += 1
    assert torch.equal(conf, naive)


@pytest.mark.parametrize('C, K', [(4, 4), (3, 5), (5, 3)])
def test_hungarian_miou_equals_the_best_of_all_one_to_one_matchings(C, K):
    g = torch.Generator().manual_seed(C * 10 + K)
    conf = torch.randint(0, 50, (C, K), generator=g)
    best = None
    for preds in itertools.permutations(range(K), min(C, K)):  # class c (of the first min(C, K)) <- prediction
        for classes in itertools.permutations(range(C), min(C, K)):
            pixels = sum(conf[c, k] for c, k in zip(classes, preds))
            if best is None or pixels > best[0]:
                best = (pixels, dict(zip(classes, preds)))
    ious = []
    for c in range(C):
        if c in best[1]:
            k = best[1][c]
            tp = conf[c, k].item()
            ious.append(tp / (conf[c].sum().item() + conf[:, k].sum().item() - tp))
        else:
            ious.append(0.0)
    scores = hungarian_miou(conf)
    assert scores['mIoU'] == pytest.approx(100 * sum(ious) / C)
    assert scores['aAcc'] == pytest.approx(100 * best[0].item() / conf.sum().item())


def test_hungarian_miou_metric_scores_a_relabelled_perfect_prediction_100():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 4, (3, 1, 8, 8), generator=g)
    perm = torch.tensor([2, 0, 3, 1])
    metric = HungarianMIoU(num_classes=4, stuff_classes=[0, 1], thing_classes=[2, 3])
    metric.process({}, [dict(pred_sem_seg=dict(data=perm[x]), gt_sem_seg=dict(data=x)) for x in gt])
    assert metric.compute_metrics(metric.results) == pytest.approx(
        dict(mIoU=100.0, aAcc=100.0, mIoU_st=100.0, mIoU_th=100.0))


# ------------------------------------------------------------------------------------------------- FPN encoder

FPN_ENCODER = dict(
    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN')),
    encoder_neck=dict(type='mmdet.FPN', in_channels=[64, 128, 256, 512], out_channels=32, num_outs=4))


def tiny_densesiam_fpn(**kwargs) -> dict:
    """tiny_densesiam with an FPN (32 channels) on the four ResNet-18 stages: a 64x64 view -> 16x16 dense map F,
    2x2 C5 map for the global branch."""
    cfg = tiny_densesiam(**FPN_ENCODER, **kwargs)
    cfg['pix_head'] = dict(cfg['pix_head'], in_channels=32)
    cfg['region_head'] = dict(cfg['region_head'], in_channels=32)
    return cfg


@pytest.mark.parametrize('global_region', ['image', 'intersection'])
def test_fpn_encoder_feeds_pixsim_and_regionsim_and_the_global_branch_keeps_c5(global_region):
    torch.manual_seed(0)
    model = MODELS.build(tiny_densesiam_fpn(global_region=global_region))
    model.use_region_sim = True
    batch = model.data_preprocessor(random_pair_batch(), True)
    C5, F = model.encode(batch['inputs'][0])
    assert C5.shape == (4, 512, 2, 2) and F.shape == (4, 32, 16, 16)  # stride 32 and stride 4
    losses = model(**batch, mode='loss')
    assert set(losses) == {'loss_img', 'loss_pix', 'pix_z_std', 'loss_region'}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    used = (model.encoder_neck.lateral_convs[0], model.encoder_neck.fpn_convs[0], model.backbone.layer1,
            model.backbone.layer4, model.neck, model.pix_head, model.region_head)
    for part in used:
        assert all(p.grad is not None for p in part.parameters()), type(part).__name__
    assert model.encoder_neck.fpn_convs[3].conv.weight.grad is None  # coarser FPN outputs are not used


def test_pixsim_grid_lands_on_the_same_original_coordinates_with_the_fpn_map():
    """The model's grids (from the recorded view geometry) are resolution-independent: sampled from coordinate-encoding
    maps at the FPN's 16x16 resolution of each view, both give the cell centres of the G x G grid over v ∩ v'."""
    model = MODELS.build(tiny_densesiam_fpn())
    batch = model.data_preprocessor(random_pair_batch(), False)
    samples = batch['data_samples']
    boxes = torch.stack([ds.view_boxes for ds in samples])  # (B, 2, 4)
    flips = torch.stack([ds.view_flips for ds in samples])
    grids = model._grids(samples, torch.device('cpu'))
    expected = cell_coords(intersection_box(boxes[:, 0], boxes[:, 1]), 7, 7).flatten(2)
    for i, view in enumerate(batch['inputs']):
        H, W = model.encode(view)[1].shape[-2:]
        coords = sample_grid(cell_coords(boxes[:, i], H, W, flips[:, i]), grids[i]).flatten(2)
        torch.testing.assert_close(coords, expected)


# ---------------------------------------------------------------------- unsupervised semantic segmentation (Sec. 4)

def tiny_segmentor(**kwargs) -> dict:
    """DenseSiamSegmentor on ResNet-18 + FPN (32 channels): C = 4 classes, K = 12 over-clustering pseudo-categories."""
    return dict(dict(
        type='DenseSiamSegmentor',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        **FPN_ENCODER,
        pix_head=dict(type='PixSimHead', in_channels=32, hid_channels=32, out_channels=4, pred_hid_channels=16,
                      similarity='cross_entropy'),
        aux_head=dict(type='PixSimHead', in_channels=32, hid_channels=32, out_channels=12, pred_hid_channels=16,
                      similarity='cross_entropy'),
        region_head=dict(type='RegionSimHead', in_channels=32, hid_channels=32, out_channels=16, pred_hid_channels=8),
    ), **kwargs)


def test_class_balanced_cross_entropy_equals_a_per_class_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 9, generator=g)
    target = torch.randint(0, 4, (2, 9), generator=g)  # class 4 never occurs
    target[0, :6] = 1  # one frequent class
    per_class = []
    for k in range(5):
        terms = [-torch.log_softmax(logits[b, :, i], 0)[k] for b in range(2) for i in range(9) if target[b, i] == k]
        if terms:
            per_class.append(torch.stack(terms).mean())
    expected = torch.stack(per_class).mean()
    torch.testing.assert_close(class_balanced_cross_entropy(logits, target), expected)
    assert not torch.allclose(expected, nnf.cross_entropy(logits, target))  # differs from the plain mean
    torch.testing.assert_close(pseudo_label_cross_entropy(logits, nnf.one_hot(target, 5).movedim(-1, 1).float()),
                               expected)


def test_auto_loss_weights_balance_the_log_number_of_categories():
    lam_pix, lam_aux = auto_loss_weights(27, 128)  # COCO-Stuff's 27 classes, the authors' 128 aux categories
    assert lam_pix + lam_aux == pytest.approx(1.0)
    assert lam_pix == pytest.approx(np.log(128) / (np.log(27) + np.log(128))) and lam_aux < lam_pix
    model = MODELS.build(tiny_segmentor())
    assert (model.loss_pix_weight, model.loss_aux_weight) == pytest.approx(auto_loss_weights(4, 12))
    assert MODELS.build(tiny_segmentor(aux_head=None)).loss_pix_weight == 1.0


def class_map(coords: Tensor) -> Tensor:
    """Toy ground truth of the 120x100 original image: 4 classes split at x = 52 and y = 47, (B, 2, ...) -> (B, ...)."""
    return (coords[:, 0] > 52).long() + 2 * (coords[:, 1] > 47).long()


def test_pseudo_labels_come_from_the_other_view_at_the_same_original_locations():
    """Render each view's class scores from the toy ground truth at its own crop and flip; at the model's grid points
    the other view's argmax is the class of the same original location (away from the class boundaries, where the
    bilinear sampling blends), and L_ce is the class-balanced CE against exactly those labels."""
    model = MODELS.build(tiny_segmentor())
    samples = random_pair_batch()['data_samples']
    boxes = torch.stack([ds.view_boxes for ds in samples])
    flips = torch.stack([ds.view_flips for ds in samples])
    grids = model._grids(samples, torch.device('cpu'))
    z = [sample_grid(10. * nnf.one_hot(class_map(cell_coords(boxes[:, i], 32, 32, flips[:, i])), 4).movedim(-1, 1)
                     .float(), grids[i]).flatten(2) for i in range(2)]  # (B, C, G²) per view
    coords = cell_coords(intersection_box(boxes[:, 0], boxes[:, 1]), 7, 7).flatten(2)  # (B, 2, G²)
    away = ((coords[:, 0] - 52).abs() > 3) & ((coords[:, 1] - 47).abs() > 3)
    assert away.float().mean() > 0.7
    for i in range(2):
        assert torch.equal(z[i].argmax(1)[away], class_map(coords)[away])
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(z[0].shape, generator=g)
    torch.testing.assert_close(pseudo_label_cross_entropy(z_a, z[1]), class_balanced_cross_entropy(
        z_a, z[1].argmax(1)))


def test_segmentor_losses_are_eq_8_with_the_other_views_pseudo_labels_and_the_aux_head():
    torch.manual_seed(0)
    model = MODELS.build(tiny_segmentor())
    model.use_region_sim = True
    batch = model.data_preprocessor(random_pair_batch(), True)
    losses = model(**batch, mode='loss')
    assert set(losses) == {'loss_pix', 'pix_z_std', 'loss_ce', 'loss_aux', 'loss_region'}
    F = [model.encode(v)[1] for v in batch['inputs']]
    grids = model._grids(batch['data_samples'], torch.device('cpu'))
    (z_a, p_a), (z_b, p_b) = [model.pix_head(f, g) for f, g in zip(F, grids)]
    assert z_a.shape == (4, 4, 49)  # C = 4 class scores at the 7 x 7 points
    cross = 0.5 * (class_balanced_cross_entropy(z_a, z_b.argmax(1)) + class_balanced_cross_entropy(z_b, z_a.argmax(1)))
    same = 0.5 * (class_balanced_cross_entropy(z_a, z_a.argmax(1)) + class_balanced_cross_entropy(z_b, z_b.argmax(1)))
    torch.testing.assert_close(losses['loss_ce'], cross)
    assert not torch.allclose(losses['loss_ce'], same)
    (za_a, pa_a), (za_b, pa_b) = [model.aux_head(f, g) for f, g in zip(F, grids)]
    assert za_a.shape == (4, 12, 49)
    torch.testing.assert_close(losses['loss_aux'], model.loss_aux_weight * 0.5 * (
        cross_entropy_similarity(pa_a, za_b) + cross_entropy_similarity(pa_b, za_a)))
    torch.testing.assert_close(losses['loss_pix'], model.loss_pix_weight * 0.5 * (
        cross_entropy_similarity(p_a, z_b) + cross_entropy_similarity(p_b, z_a)))
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for part in (model.aux_head, model.pix_head, model.region_head, model.encoder_neck.lateral_convs[0]):
        assert all(p.grad is not None for p in part.parameters()), type(part).__name__
    assert not hasattr(model, 'head') or model.head is None  # no global branch in eq. 8


def test_segmentor_validates_its_config():
    with pytest.raises(ValueError, match='cross_entropy'):
        MODELS.build(tiny_segmentor(pix_head=dict(type='PixSimHead', in_channels=32, out_channels=4)))
    with pytest.raises(ValueError, match='more outputs'):
        MODELS.build(tiny_segmentor(aux_head=dict(type='PixSimHead', in_channels=32, out_channels=4,
                                                  similarity='cross_entropy')))


def toy_seg_sample(gt: Tensor) -> SegDataSample:
    ds = SegDataSample(metainfo=dict(ori_shape=tuple(gt.shape)))
    ds.gt_sem_seg = PixelData(data=gt[None])
    return ds


def test_predict_and_metric_give_the_hand_computed_hungarian_miou_on_a_toy_example(monkeypatch):
    """gt 0 0 0 0 1 1 1 1, predicted ids 1 1 1 0 0 0 0 0: ids 1 -> class 0 (3 px), 0 -> class 1 (4 px);
    IoU_0 = 3 / (3 + 1 FN) = 0.75, IoU_1 = 4 / (4 + 1 FP) = 0.8: mIoU 77.5, matched accuracy 7/8."""
    model = MODELS.build(tiny_segmentor()).eval()
    pred = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0]])
    scores = nnf.one_hot(pred, 4).movedim(-1, 0).float()[None]  # (1, C, 2, 4): the projector output
    monkeypatch.setattr(model, 'segment', lambda inputs: scores)
    sample = toy_seg_sample(torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]]))
    out = model(torch.zeros(1, 3, 2, 4), [sample], mode='predict')
    assert torch.equal(out[0].pred_sem_seg.data, pred[None])
    metric = HungarianMIoU(num_classes=2, num_preds=4)
    metric.process({}, [o.to_dict() for o in out])
    assert metric.compute_metrics(metric.results) == pytest.approx(dict(mIoU=77.5, aAcc=87.5))


def brute_force_miou(pred: Tensor, gt: Tensor, num_classes: int, num_preds: int) -> float:
    """mIoU (%) after the one-to-one class <- id assignment with most matched pixels, by enumeration; classes with no
    pixel in the ground truth nor in their matched prediction are skipped."""
    conf = confusion_matrix(pred, gt, num_preds, num_classes)
    best = max(itertools.permutations(range(num_classes), num_preds),
               key=lambda cls: sum(conf[c, k].item() for k, c in enumerate(cls)))
    ious = []
    for c in range(num_classes):
        k = best.index(c) if c in best else None
        tp = conf[c, k].item() if k is not None else 0
        union = conf[c].sum().item() + (conf[:, k].sum().item() if k is not None else 0) - tp
        if union:
            ious.append(tp / union)
    return 100 * sum(ious) / len(ious)


@pytest.mark.slow
def test_segmentor_predicts_label_maps_that_the_hungarian_metric_scores(tiny_streets):
    """Val images and label maps through mmseg's folder dataset, the model's predict mode and HungarianMIoU."""
    torch.manual_seed(0)
    cfg = Config.fromfile(USEG)
    dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=tiny_streets))
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    model = MODELS.build(tiny_segmentor()).eval()
    out = model.val_step(batch)
    gts = torch.stack([o.gt_sem_seg.data for o in out])
    preds = torch.stack([o.pred_sem_seg.data for o in out])
    assert preds.shape == gts.shape == (4, 1, 64, 96) and 0 <= preds.min() and preds.max() < 4
    metric = HungarianMIoU(num_classes=8, num_preds=4, stuff_classes=[0, 1, 2, 3, 4, 5], thing_classes=[6, 7])
    metric.process(batch, [o.to_dict() for o in out])
    scores = metric.compute_metrics(metric.results)
    assert 0 <= scores['mIoU'] <= 100 and {'mIoU_st', 'mIoU_th', 'aAcc'} <= set(scores)
    assert scores['mIoU'] == pytest.approx(brute_force_miou(preds, gts, 8, 4))


@pytest.mark.slow
def test_segmentor_training_on_synthetic_scenes_decreases_the_loss(tiny_streets):
    torch.manual_seed(0)
    np.random.seed(0)
    model = MODELS.build(tiny_segmentor())
    model.use_region_sim = True
    dataset = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=tiny_streets, ann_file='train.txt',
                                  pipeline=tiny_pipeline()))
    batches = [default_collate([dataset[i] for i in range(j, j + 8)]) for j in (0, 8)]
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    totals = []
    for it in range(24):
        losses = model(**model.data_preprocessor(batches[it % 2], True), mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(loss) and 'loss_aux' in losses
        optim.zero_grad()
        loss.backward()
        optim.step()
        totals.append(loss.item())
    assert sum(totals[-4:]) / 4 < sum(totals[:4]) / 4 - 0.05, totals


def test_segmentation_config_is_the_sec_4_setting():
    cfg = Config.fromfile(USEG)
    build_parts(cfg)
    m = cfg.model
    assert m.type == 'DenseSiamSegmentor' and m.encoder_neck.type == 'mmdet.FPN'
    assert tuple(m.backbone.out_indices) == (0, 1, 2, 3) and m.backbone.depth == 18
    assert m.pix_head.similarity == m.aux_head.similarity == 'cross_entropy'
    assert m.pix_head.out_channels == cfg.num_classes == 8 < m.aux_head.out_channels
    assert (m.loss_pix_weight, m.loss_ce_weight, m.loss_aux_weight, m.loss_region_weight) == ('auto', 1.0, 'auto', 0.1)
    assert cfg.val_evaluator.type == 'HungarianMIoU' and cfg.val_evaluator.num_classes == 8
    assert cfg.param_scheduler[0].type == 'ConstantLR'

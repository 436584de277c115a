"""Our components against outside implementations, number for number (issue 14).

Each model test builds our component from this repository's config and the reference from mmpretrain's own config
file (installed with the package), shrinks both identically (ResNet-18 of base width 16, narrow necks, 32 x 32
views, BN), copies our weights and buffers into the reference, and trains both side by side in float64 with SGD.
At every iteration it compares the loss, every parameter gradient, every parameter after the step, and every
parameter and buffer of the reference after the step (its target / key network after the EMA update, BN
statistics, MoCo's queue), to a relative tolerance of 1e-5:

* MultiSiam with the 2-D branch and cluster head off, λ = 1  vs  mmpretrain's ``BYOL``;
* the MoCo-based variant (supplement B.2), 2-D branch off, loss in one direction  vs  mmpretrain's ``MoCo`` (v2);
* DenseSiam's global branch (no PixSim, no RegionSim)  vs  mmpretrain's ``SimSiam``.

Losses that are defined differently are related exactly instead:

* Odin's mask-contrastive loss  vs  ``lightly.loss.DetConBLoss`` (docs/odin.md, "Odin's loss and DetConB");
* batched k-means from given centroids  vs  scikit-learn's ``KMeans(init=C, n_init=1)`` (Euclidean) and a NumPy
  spherical k-means (cosine), with this repository's empty-cluster rule.

The pipeline's IoU threshold (0 for plain BYOL) only changes which views are drawn; both models get the same views.
"""
import copy
import os.path as osp
from typing import Callable, Dict, List, Optional

import mmpretrain
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, random_pair_batch, set_schedule
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from multisiam_mm.models.algorithms.odin import object_contrastive_loss
from multisiam_mm.models.utils.kmeans import batched_kmeans

init_default_scope('mmpretrain')

MMPRETRAIN_CONFIGS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
BYOL_CONFIG = osp.join(MMPRETRAIN_CONFIGS, 'byol', 'byol_resnet50_16xb256-coslr-200e_in1k.py')
MOCOV2_CONFIG = osp.join(MMPRETRAIN_CONFIGS, 'mocov2', 'mocov2_resnet50_8xb32-coslr-200e_in1k.py')
SIMSIAM_CONFIG = osp.join(MMPRETRAIN_CONFIGS, 'simsiam', 'simsiam_resnet50_8xb32-coslr-100e_in1k.py')
RTOL = 1e-5
C5, HID, OUT = 128, 64, 32  # the last-stage channels of a ResNet-18 of base width 16; narrow neck widths
BATCH, ITERS, MAX_ITERS = 8, 3, 10  # 3 iterations: the first target update copies, the next two average
TINY_BACKBONE = dict(depth=18, stem_channels=16, base_channels=16, norm_cfg=dict(type='BN'))
BN1D = dict(type='BN1d')
Rename = Callable[[str], str]


def reference_model(path: str) -> Config:
    """The ``model`` of one of mmpretrain's own config files."""
    if not osp.isfile(path):
        pytest.fail(f'{path} is missing: this mmpretrain has no .mim/configs; reinstall it (scripts/setup_env.sh)')
    return copy.deepcopy(Config.fromfile(path).model)


def our_model(rel_path: str) -> Config:
    """The ``model`` of one of this repository's configs."""
    return copy.deepcopy(Config.fromfile(osp.join(ROOT, rel_path)).model)


def shrink_mlp(cfg: dict, in_channels: int, hid_channels: int, out_channels: int, **extra) -> None:
    """Narrow widths (and BN instead of SyncBN, the same on both sides) of a neck / predictor config, in place."""
    cfg.update(in_channels=in_channels, hid_channels=hid_channels, out_channels=out_channels, **extra)


def build_pair(ours_cfg: dict, ref_cfg: dict, rename: Rename) -> tuple[nn.Module, nn.Module]:
    """Both models in float64 and training mode, the reference holding our weights and buffers."""
    ours = MODELS.build(ours_cfg).double().train()
    ref = MODELS.build(ref_cfg).double().train()
    state = ours.state_dict()
    with torch.no_grad():
        for name, t in ref.state_dict().items():
            t.copy_(state[rename(name)].reshape(t.shape))  # 1×1 conv weights -> Linear weights
    return ours, ref


def batches(seed: int = 0) -> List[dict]:
    """ITERS batches of two 32 x 32 views (float64, roughly unit scale) with IoUPairCrop's geometry."""
    out = []
    for it in range(ITERS):
        b = random_pair_batch(B=BATCH, size=32, seed=seed + it)
        b['inputs'] = [(x / 255 - 0.5).double() for x in b['inputs']]
        out.append(b)
    return out


def assert_close(ours: Tensor, ref: Tensor, what: str) -> None:
    """Element-wise relative tolerance RTOL (atol only absorbs round-off around exact zeros)."""
    torch.testing.assert_close(ours, ref, rtol=RTOL, atol=1e-12, msg=lambda m: f'{what}: {m}')


def train_side_by_side(ours: nn.Module, ref: nn.Module, rename: Rename, loss_scale: float,
                       ref_target: Optional[str] = None) -> Dict[int, float]:
    """Train both for ITERS iterations and compare everything at each (see the module docstring).

    The reference's loss is ``loss_scale`` times ours (so are its gradients); our lr is ``loss_scale`` times the
    reference's, so that the two take the same steps. Our parameters that the reference lacks (the unused 2-D
    projector) must get no gradient. With ``ref_target`` (the reference's EMA attribute), the τ each target
    update of the reference applied is measured from its parameters, ``(ξ_new - θ) / (ξ_old - θ)``; our logged
    ``ema_tau`` must equal it. Returns those τ per iteration.
    """
    mine = dict(ours.named_parameters())
    pairs = [(name, mine[rename(name)], p) for name, p in ref.named_parameters()]
    paired = {id(p) for _, p, _ in pairs}
    extra = [p for p in ours.parameters() if p.requires_grad and id(p) not in paired]
    opt = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=0.05 * loss_scale, momentum=0.9)
    ref_opt = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    taus = {}
    for it, batch in enumerate(batches()):
        set_schedule(it, MAX_ITERS)
        before = copy.deepcopy(ref.state_dict()) if ref_target else None
        losses = ours.loss(**copy.deepcopy(batch))
        ref_losses = ref.loss(**copy.deepcopy(batch))
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        assert_close(loss_scale * loss, ref_losses['loss'], f'loss at iteration {it}')
        opt.zero_grad()
        ref_opt.zero_grad()
        loss.backward()
        ref_losses['loss'].backward()
        for name, p, q in pairs:
            if q.grad is None:
                assert p.grad is None or not p.grad.any(), f'{name}: a gradient the reference does not have'
                continue
            assert_close(loss_scale * p.grad.reshape(q.shape), q.grad, f'gradient of {name} at iteration {it}')
        assert all(p.grad is None or not p.grad.any() for p in extra), 'a parameter the reference lacks was trained'
        opt.step()
        ref_opt.step()
        state = ours.state_dict()
        for name, t in ref.state_dict().items():  # parameters, BN statistics, target network, queue
            if t.is_floating_point():
                assert_close(state[rename(name)].reshape(t.shape), t, f'{name} after iteration {it}')
            else:
                assert torch.equal(state[rename(name)].reshape(t.shape), t), f'{name} after iteration {it}'
        if ref_target and it > 0:
            taus[it] = applied_tau(before, ref.state_dict(), ref_target)
            assert float(losses['ema_tau']) == pytest.approx(taus[it], rel=RTOL), f'logged τ at iteration {it}'
    return taus


def applied_tau(before: dict, after: dict, target: str) -> float:
    """The τ of ξ <- τ ξ + (1 - τ) θ that turned the target's parameters ``before`` into ``after``.

    θ is the online network at the update (the parameters before this iteration's step). Least squares over all
    parameters: τ = <ξ_new - θ, ξ_old - θ> / |ξ_old - θ|².
    """
    num = den = 0.0
    prefix = f'{target}.module.'
    for name, xi_new in after.items():
        if not name.startswith(prefix) or 'running' in name or not xi_new.is_floating_point():
            continue
        online = name[len(prefix):]
        index, rest = online.split('.', 1)
        theta = before[{'0': 'backbone', '1': 'neck'}[index] + '.' + rest]
        d_old, d_new = before[name] - theta, xi_new - theta
        num, den = num + float((d_new * d_old).sum()), den + float((d_old * d_old).sum())
    assert den > 0, 'the target network equals the online one: nothing to measure'
    return num / den


# ---------------------------------------------------------------------------------------------------------------
# MultiSiam (BYOL-based) vs mmpretrain's BYOL

BYOL_NECK = {'fc0': 'proj_1d.conv0', 'bn0': 'proj_1d.bn0', 'fc1': 'proj_1d.conv1'}


def byol_rename(name: str) -> str:
    """mmpretrain BYOL's parameter names -> MultiSiam's (the pooled 1-D projector is MultiSiamNeck.proj_1d)."""
    for prefix in ('neck.', 'target_net.module.1.'):
        if name.startswith(prefix):
            layer, rest = name[len(prefix):].split('.', 1)
            return f'{prefix}{BYOL_NECK[layer]}.{rest}'
    return name


def multisiam_as_byol(base_momentum: float) -> tuple[nn.Module, nn.Module]:
    """The shipped MultiSiam config with the 2-D branch and cluster head off and λ = 1, and mmpretrain's BYOL."""
    ours = our_model('configs/_base_/models/multisiam_r50.py')
    ours.update(cluster_head=None, loss_lambda=1.0, base_momentum=base_momentum)
    ours.backbone.update(TINY_BACKBONE)
    shrink_mlp(ours.neck, C5, HID, OUT, with_2d=False)
    shrink_mlp(ours.head.predictor, OUT, HID, OUT, norm_cfg=BN1D)
    ref = reference_model(BYOL_CONFIG)
    ref.update(base_momentum=base_momentum)
    ref.backbone.update(TINY_BACKBONE)
    shrink_mlp(ref.neck, C5, HID, OUT, norm_cfg=BN1D)
    shrink_mlp(ref.head.predictor, OUT, HID, OUT, norm_cfg=BN1D)
    return build_pair(ours, ref, byol_rename)


def test_multisiam_1d_branch_is_mmpretrain_byol():
    """Loss, gradients, steps and the cosine EMA target over 3 iterations; mmpretrain's BYOL returns
    2 · (ℓ(v, v') + ℓ(v', v)) with ℓ = -cos, ours λ · (ℓ(v, v') + ℓ(v', v)) (eq. 11 with λ = 1)."""
    torch.manual_seed(0)
    ours, ref = multisiam_as_byol(base_momentum=0.2)  # τ from 0.8: the target moves visibly in 3 iterations
    taus = train_side_by_side(ours, ref, byol_rename, loss_scale=2.0, ref_target='target_net')
    assert taus[1] < taus[2] < 1  # τ rises along the cosine


# ---------------------------------------------------------------------------------------------------------------
# MultiSiam-MoCo (supplement B.2) vs mmpretrain's MoCo v2

QUEUE_LEN = 4 * BATCH  # mmpretrain's MoCo needs queue_len % batch == 0; 4 batches: the pointer wraps round
MOCO_NAMES = {'queue': 'queue_1d.keys', 'queue_ptr': 'queue_1d.ptr'}
MOCO_NECK = {'mlp.0': 'proj_1d.conv0', 'mlp.2': 'proj_1d.conv1'}


def moco_rename(name: str) -> str:
    """mmpretrain MoCo's names -> MultiSiamMoCo's (MoCoV2Neck.mlp is MultiSiamNeck.proj_1d; one key queue)."""
    if name in MOCO_NAMES:
        return MOCO_NAMES[name]
    name = name.replace('encoder_k.', 'target_net.', 1)
    for prefix in ('neck.', 'target_net.module.1.'):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            layer = rest[:5]
            return f'{prefix}{MOCO_NECK[layer]}{rest[5:]}'
    return name


def test_multisiam_moco_1d_branch_is_mmpretrain_moco_v2():
    """Same queue state, InfoNCE of view v's queries against view v' keys (one direction, 2-D branch off): loss,
    gradients, steps, key-encoder EMA and the queue (contents and pointer) over 3 iterations."""
    torch.manual_seed(0)
    ours = our_model('configs/multisiam/multisiam-moco_r50_8xb128-coslr-325e_waymo.py')
    ours.update(loss_lambda=1.0, loss_directions='one', queue_len=QUEUE_LEN, momentum=0.2)
    ours.backbone.update(TINY_BACKBONE)
    shrink_mlp(ours.neck, C5, HID, OUT)
    ref = reference_model(MOCOV2_CONFIG)
    ref.update(queue_len=QUEUE_LEN, feat_dim=OUT, momentum=0.2)
    ref.backbone.update(TINY_BACKBONE)
    shrink_mlp(ref.neck, C5, HID, OUT)
    ours, ref = build_pair(ours, ref, moco_rename)
    train_side_by_side(ours, ref, moco_rename, loss_scale=1.0, ref_target='encoder_k')
    assert int(ref.queue_ptr) == ITERS * BATCH % QUEUE_LEN


# ---------------------------------------------------------------------------------------------------------------
# DenseSiam's global branch vs mmpretrain's SimSiam


def test_densesiam_global_branch_is_mmpretrain_simsiam():
    """DenseSiam without PixSim and RegionSim (its SimSiam baseline, Table 4) from the shipped config: loss,
    gradients (stop-gradient on the target branch) and steps over 3 iterations; no target network."""
    torch.manual_seed(0)
    ours = our_model('configs/densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py')
    ours.update(pix_head=None, region_head=None)
    ref = reference_model(SIMSIAM_CONFIG)
    for cfg in (ours, ref):
        cfg.backbone.update(TINY_BACKBONE)
        shrink_mlp(cfg.neck, C5, HID, HID, norm_cfg=BN1D)
        shrink_mlp(cfg.head.predictor, HID, OUT // 2, HID, norm_cfg=BN1D)
    ours, ref = build_pair(ours, ref, lambda name: name)
    train_side_by_side(ours, ref, lambda name: name, loss_scale=1.0)


# ---------------------------------------------------------------------------------------------------------------
# The shipped predictors are mmpretrain's


def mlp_settings(cfg: dict) -> dict:
    """The structural settings of a NonLinearNeck config with NonLinearNeck's defaults filled in (no widths)."""
    defaults = dict(num_layers=2, with_bias=False, with_last_bn=True, with_last_bn_affine=True, with_last_bias=False,
                    with_avg_pool=True)
    return {k: cfg.get(k, v) for k, v in defaults.items()}


MULTISIAM_CONFIGS = ['configs/_base_/models/multisiam_r50.py', 'configs/multisiam_waymo.py',
                     'configs/multisiam/multisiam_r50_8xb128-coslr-200e_in1k.py',
                     'configs/multisiam/multisiam_r50_8xb128-coslr-55e_soda5m.py',
                     'configs/multisiam/ablations/multisiam_r50_8xb128-accum4-coslr-150e_waymo.py',
                     'configs/demo/multisiam_synthetic_demo.py', 'configs/benchmarks/quality/multisiam_r18_streets.py',
                     'configs/_base_/models/byol_r50.py', 'configs/byol/byol_r50_8xb128-coslr-325e_waymo.py']


@pytest.mark.parametrize('path', MULTISIAM_CONFIGS)
def test_shipped_byol_predictors_are_mmpretrain_byol(path):
    ref = reference_model(BYOL_CONFIG)
    model = our_model(path)
    assert model.head.type == ref.head.type == 'LatentPredictHead'
    assert mlp_settings(model.head.predictor) == mlp_settings(ref.head.predictor)
    if model.type == 'BYOL':
        assert mlp_settings(model.neck) == mlp_settings(ref.neck)


@pytest.mark.parametrize('path', ['configs/densesiam/densesiam_r50_8xb32-coslr-200e_waymo.py',
                                  'configs/benchmarks/quality/densesiam_r18_streets.py'])
def test_shipped_densesiam_global_branch_is_mmpretrain_simsiam(path):
    ref, model = reference_model(SIMSIAM_CONFIG), our_model(path)
    assert mlp_settings(model.neck) == mlp_settings(ref.neck)
    assert mlp_settings(model.head.predictor) == mlp_settings(ref.head.predictor)
    assert model.head.loss == ref.head.loss


# ---------------------------------------------------------------------------------------------------------------
# Odin's loss vs lightly's DetConBLoss

def pad_zero_keys(x: Tensor, keys: Tensor, valid_x: Tensor, valid_keys: Tensor,
                  num_zero: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Odin-loss inputs (B, K, D) with ``num_zero`` more valid keys of similarity exactly 0 to every query.

    A (D + 1)-th coordinate, zero in ``x`` and ``keys``, holds the unit extra keys; the extra images' queries are
    marked invalid, so they are not anchors.
    """
    B, K, D = x.shape
    extra = -(-num_zero // K)  # extra images
    unit = torch.zeros(extra, K, D + 1, dtype=x.dtype)
    unit[..., D] = 1
    x = torch.cat([F.pad(x, (0, 1)), torch.zeros_like(unit)])
    keys = torch.cat([F.pad(keys, (0, 1)), unit])
    valid_x = torch.cat([valid_x, torch.zeros(extra, K, dtype=torch.bool)])
    valid_extra = (torch.arange(extra * K) < num_zero).view(extra, K)
    return x, keys, valid_x, torch.cat([valid_keys, valid_extra])


@pytest.mark.parametrize('empty_fraction', [0.0, 0.3])
def test_odin_loss_is_detconb_without_same_view_negatives(empty_fraction):
    """The exact relation between Odin's loss (eqs. 2-4) and lightly's DetConBLoss, values and gradients.

    Same: the similarity cos(q, z) / α with the same α; the positive (mask k of the same image in the other view);
    the negatives of the other view (every other mask of every image). Different: (1) DetConB also takes the
    same-view targets of every other (image, mask) as negatives; (2) it averages over all B·K mask slots (an anchor
    weighs 1 / the number of slots of its view sharing its id, 1 here), where Odin averages over the n masks valid
    in both views; (3) it works on mask ids (an id
    without a match in the other view is no anchor, its key stays a negative), where Odin drops an empty mask as
    anchor and as key. Placing view 1's queries and view 2's targets in one coordinate block and view 2's queries
    and view 1's targets in another makes every same-view similarity exactly 0, so each same-view negative adds
    exp(0) = 1 to a denominator; an empty mask gets a zero key (also exp(0)) and an id of its own. Odin's loss
    with as many extra zero-similarity keys then satisfies, exactly,
        L_DetConB = n / (B K) · (L_Odin(1 -> 2) + L_Odin(2 -> 1)).
    """
    lightly_loss = pytest.importorskip('lightly.loss', reason='lightly is a test dependency (scripts/setup_env.sh)')
    B, K, D, alpha = 4, 5, 6, 0.1
    g = torch.Generator().manual_seed(0)
    q = [torch.randn(B, K, D, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    z = [torch.randn(B, K, D, generator=g, dtype=torch.float64) for _ in range(2)]
    valid = [torch.rand(B, K, generator=g) >= empty_fraction for _ in range(2)]
    both = int((valid[0] & valid[1]).sum())
    assert both > 0 and (empty_fraction == 0) == bool(valid[0].all() and valid[1].all())

    zeros = torch.zeros(B, K, D, dtype=torch.float64)
    first, second = (lambda x: torch.cat([x, zeros], -1)), (lambda x: torch.cat([zeros, x], -1))
    ids = [torch.where(v, torch.arange(K), (i + 1) * K + torch.arange(K)) for i, v in enumerate(valid)]
    keys = [z[i] * valid[i][..., None] for i in range(2)]  # an empty mask has no feature: a zero key
    detcon = lightly_loss.DetConBLoss(temperature=alpha, gather_distributed=False)(
        first(q[0]), second(q[1]), second(keys[0]), first(keys[1]), ids[0], ids[1])

    odin = 0
    for a, b in ((0, 1), (1, 0)):
        num_zero = B * K - 1 + int((~valid[b]).sum())  # same-view negatives + empty keys of view b
        odin = odin + object_contrastive_loss(*pad_zero_keys(q[a], z[b], valid[a], valid[b], num_zero), alpha)
    scale = both / (B * K)
    torch.testing.assert_close(scale * odin, detcon, rtol=RTOL, atol=0)
    grads = torch.autograd.grad(scale * odin, q, retain_graph=True)
    ref_grads = torch.autograd.grad(detcon, q)
    for view in range(2):
        assert_close(grads[view], ref_grads[view], f'gradient of view {view + 1} predictions')


# ---------------------------------------------------------------------------------------------------------------
# Batched k-means vs scikit-learn and a NumPy spherical k-means

def nearest(x: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    """Index of the nearest centroid (cosine: highest dot product with unit centroids); ties: the lowest index."""
    if metric == 'cosine':
        return np.argmax(x @ centroids.T, axis=1)
    return np.argmin(((x[:, None] - centroids[None]) ** 2).sum(-1), axis=1)


def reference_lloyd(x: np.ndarray, init: np.ndarray, num_iters: int, metric: str) -> tuple[np.ndarray, bool]:
    """Textbook Lloyd iterations on one image's points x (N, D) from centroids init (K, D), float64.

    Euclidean: a centroid is the mean of its points. Cosine (spherical k-means): on L2-normalised points, a centroid
    is the normalised sum of its points. This repository's empty-cluster rule: a cluster with no point (or, cosine,
    a sum of norm <= 1e-6) keeps its centroid. Returns the final assignment and whether any cluster was empty.
    """
    centroids, emptied = init.copy(), False
    for _ in range(num_iters):
        labels = nearest(x, centroids, metric)
        for k in range(len(centroids)):
            members = x[labels == k]
            emptied |= len(members) == 0
            if metric == 'euclidean' and len(members):
                centroids[k] = members.mean(0)
            elif metric == 'cosine' and np.linalg.norm(members.sum(0)) > 1e-6:
                centroids[k] = members.sum(0) / np.linalg.norm(members.sum(0))
    return nearest(x, centroids, metric), emptied


def kmeans_problems(seed: int = 0) -> tuple[Tensor, Tensor]:
    """100 images of N = 16 points in 3-D and K = 5 initial point indices; the last 40 repeat an index, so one
    cluster starts empty (ties go to the lowest index)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(100, 16, 3, generator=g)
    init = torch.stack([torch.randperm(16, generator=g)[:5] for _ in range(100)])
    init[60:, 4] = init[60:, 0]
    return x, init


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_kmeans_matches_references_from_the_same_centroids(metric):
    """Per-image assignments equal the reference's on 100 images. Euclidean: scikit-learn's KMeans(init=C,
    n_init=1) wherever no cluster empties (scikit-learn then moves the empty centre to the farthest point instead:
    the rules differ, and do differ on some of these images), and the NumPy reference with our rule everywhere."""
    num_iters = 10
    x, init = kmeans_problems()
    ours = batched_kmeans(x, 5, num_iters=num_iters, metric=metric, init_indices=init).assignment.numpy()
    points = x.double().numpy()
    if metric == 'cosine':
        points = points / np.linalg.norm(points, axis=-1, keepdims=True)
    emptied = []
    for b in range(len(x)):
        labels, empty = reference_lloyd(points[b], points[b][init[b].numpy()], num_iters, metric)
        np.testing.assert_array_equal(ours[b], labels, err_msg=f'image {b} ({metric}, empty cluster: {empty})')
        emptied.append(empty)
    emptied = np.array(emptied)
    assert emptied[60:].all() and 20 <= (~emptied).sum(), 'both regimes must be exercised'
    if metric == 'cosine':
        return
    kmeans = pytest.importorskip('sklearn.cluster').KMeans
    differ = 0
    for b in range(len(x)):
        km = kmeans(5, init=points[b][init[b].numpy()], n_init=1, max_iter=num_iters, tol=0, algorithm='lloyd')
        labels = km.fit(points[b]).labels_
        if emptied[b]:
            differ += not np.array_equal(labels, ours[b])
        else:
            np.testing.assert_array_equal(ours[b], labels, err_msg=f'image {b} vs scikit-learn')
    assert differ > 0, 'scikit-learn relocates empty clusters: expected it to differ on some image'

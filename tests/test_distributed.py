"""Distributed training is one process with the global batch (issue 7).

Two CPU processes (gloo) of MultiSiam, DenseSiam (RegionSim on) and Odin, each with half of a global batch of 4
images, make the first training step under mmengine's DDP wrapper; one process makes it with the 4 images. The
logged losses (averaged over the ranks), every gradient (after DDP's all-reduce), the whole state after the SGD step
(parameters, BN running statistics, the EMA target and Odin's discovery network) and the EMA networks after the next
step's momentum update must agree. This needs synchronised BN everywhere (``AnyDeviceSyncBatchNorm``, Odin's masked
BN), Odin's negatives gathered from every process and its loss normalised by the global number of anchors.
``pix_z_std`` (DenseSiam's collapse monitor, a standard deviation over the local batch) is the one logged value that
is per process by design.

Tolerances are float32 rounding: the gradients agree to ~1e-4 of their norm (two single-process runs with 1 and 2
threads: ~1e-5; the same comparison in float64 agrees to 1e-11, so the equality is exact up to rounding). Later
steps are not compared: these tiny models (BN over 4 pooled vectors or 2x2 maps) amplify rounding, and a 1e-7
relative change of the initial weights alone moves the second step's gradients by 5 %.

Run: ``.venv/bin/python -m pytest tests/test_distributed.py`` (the file is also the workers' script, see ``main``).
"""
import argparse
import copy
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List

import pytest
import torch
from conftest import random_pair_batch, set_schedule
from mmcv.cnn import build_norm_layer
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from multisiam_mm.models.utils import AnyDeviceSyncBatchNorm, convert_any_device_sync_bn
from multisiam_mm.models.utils.masked_mlp import MaskedBatchNorm1d

init_default_scope('mmpretrain')

WORLD = 2
GLOBAL_BATCH = 4
MAX_ITERS = 10
TIMEOUT_S = 300
PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                    to_rgb=True)
# ResNet-18 at a quarter of its width: 64x64 views -> (B, 128, 2, 2) maps, a 128x128 spanning view -> 4x4
BACKBONE = dict(type='ResNet', depth=18, stem_channels=16, base_channels=16, norm_cfg=dict(type='BN'))
C = 128
PER_RANK_LOGS = {'pix_z_std'}  # statistics of the local batch, not means over images
TOL = dict(rtol=1e-3, atol=1e-6)  # |a - b| <= rtol |b| + atol, norms over each tensor (observed: rtol 1e-4)


def tiny_config(name: str) -> dict:
    """A narrow MultiSiam, DenseSiam or Odin (all their BNs in training mode)."""
    bn1d = dict(type='BN1d')
    if name == 'multisiam':
        return dict(
            type='MultiSiam', data_preprocessor=PREPROCESSOR, backbone=BACKBONE,
            neck=dict(type='MultiSiamNeck', in_channels=C, hid_channels=32, out_channels=16),
            head=dict(type='LatentPredictHead',
                      loss=dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0),
                      predictor=dict(type='NonLinearNeck', in_channels=16, hid_channels=32, out_channels=16,
                                     with_avg_pool=False)),
            cluster_head=dict(type='ClusterHead', in_channels=16, hid_channels=32, out_channels=16, num_clusters=3))
    if name == 'densesiam':
        return dict(
            type='DenseSiam', data_preprocessor=PREPROCESSOR, backbone=BACKBONE,
            neck=dict(type='NonLinearNeck', in_channels=C, hid_channels=32, out_channels=32, num_layers=3,
                      with_last_bn_affine=False, norm_cfg=bn1d),
            head=dict(type='LatentPredictHead', loss=dict(type='CosineSimilarityLoss'),
                      predictor=dict(type='NonLinearNeck', in_channels=32, hid_channels=8, out_channels=32,
                                     with_avg_pool=False, with_last_bn=False, with_last_bias=True, norm_cfg=bn1d)),
            pix_head=dict(type='PixSimHead', in_channels=C, hid_channels=32, out_channels=16, pred_hid_channels=8),
            region_head=dict(type='RegionSimHead', in_channels=C, hid_channels=32, out_channels=16,
                             pred_hid_channels=8),
            grid_size=3)
    return dict(type='Odin', num_clusters=4, data_preprocessor=PREPROCESSOR, backbone=BACKBONE,
                projector=dict(in_channels=C, hid_channels=32, out_channels=16),
                predictor=dict(in_channels=16, hid_channels=32, out_channels=16))


NAMES = ('multisiam', 'densesiam', 'odin')


def global_batch(name: str) -> dict:
    """The same 4 images in every process: random pixels, and view boxes that differ from image to image."""
    batch = random_pair_batch(B=GLOBAL_BATCH, size=64, span_size=128 if name == 'odin' else 0)
    for i, ds in enumerate(batch['data_samples']):
        shift = torch.tensor([3. * i, 2. * i])
        ds.view_boxes = ds.view_boxes + shift.repeat(2)
        if name == 'odin':
            ds.span_box = torch.tensor([0., 0., 100., 90.]) + torch.cat([torch.zeros(2), shift])
    return batch


def local_batch(batch: dict, rank: int, world: int) -> dict:
    """Process ``rank``'s consecutive share of a batch."""
    n = len(batch['data_samples']) // world
    part = slice(rank * n, (rank + 1) * n)
    return dict(inputs=[x[part] for x in batch['inputs']], data_samples=batch['data_samples'][part])


def first_step(name: str, rank: int, world: int) -> dict:
    """The first training step of a tiny model on this process' share of the global batch, as the Runner makes it
    (preprocessor, DDP forward in 'loss' mode, parse_losses, backward, SGD step), then the second step's forward
    without gradients, for its EMA updates (MultiSiam's and Odin's targets: the first update is a plain copy).

    Returns ``log_vars`` and ``grads`` ({name: value}) of the first step, ``state`` (the state dict after its SGD
    step) and ``ema`` (the EMA networks' state after the second update).
    """
    torch.manual_seed(0)
    model = convert_any_device_sync_bn(MODELS.build(tiny_config(name)))
    if name == 'densesiam':
        model.use_region_sim = True
    wrapped = MMDistributedDataParallel(module=model) if world > 1 else model
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    batch = model.data_preprocessor(local_batch(global_batch(name), rank, world), True)
    set_schedule(0, MAX_ITERS)
    loss, log_vars = model.parse_losses(wrapped(**batch, mode='loss'))
    optim_wrapper.backward(loss)
    out = dict(log_vars={k: float(v.detach()) for k, v in log_vars.items()},
               grads={k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad})
    optim_wrapper.step()
    out['state'] = copy.deepcopy(model.state_dict())
    set_schedule(1, MAX_ITERS)
    with torch.no_grad():
        wrapped(**batch, mode='loss')
    out['ema'] = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(('target_net', 'discovery_net'))}
    return out


def sync_bn_layers(rank: int, world: int) -> dict:
    """AnyDeviceSyncBatchNorm on a 4-D map and MaskedBatchNorm1d with a different number of valid rows per process:
    outputs, input gradients and running statistics for this process' share of a fixed global batch."""
    g = torch.Generator().manual_seed(1)
    x4 = torch.randn(6, 3, 5, 5, generator=g) * 2 + 1
    x2 = torch.randn(8, 4, generator=g) - 3
    valid = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0], dtype=torch.bool)  # 1 valid row on rank 0, 3 on rank 1
    bn4, bn2 = AnyDeviceSyncBatchNorm(3, momentum=None), MaskedBatchNorm1d(4)
    n4, n2 = len(x4) // world, len(x2) // world
    x4 = x4[rank * n4:(rank + 1) * n4].requires_grad_()
    x2 = x2[rank * n2:(rank + 1) * n2].requires_grad_()
    valid = valid[rank * n2:(rank + 1) * n2]
    y4, y2 = bn4(x4), bn2(x2, valid)
    # a loss that is not invariant to the normalisation, summed over the processes by the gradients' all-reduce
    ((y4 * torch.arange(3.).view(1, 3, 1, 1)).square().sum() + (y2[valid] * torch.arange(4.)).sum()).backward()
    return dict(y4=y4.detach(), y2=y2.detach(), grad4=x4.grad, grad2=x2.grad,
                state={**{f'bn4.{k}': v for k, v in bn4.state_dict().items()},
                       **{f'bn2.{k}': v for k, v in bn2.state_dict().items()}})


def odin_copy_mode_with_uneven_caches(rank: int, world: int) -> dict:
    """Odin's cached ('copy') discovery when only the other process has images to segment: rank 0's cache already
    holds its images, rank 1's does not. Rank 1's discovery network synchronises its BatchNorm, so rank 0 must join
    those collectives (Odin.discover_masks does, with a discarded dummy image) or both processes hang."""
    torch.manual_seed(0)
    model = convert_any_device_sync_bn(MODELS.build(dict(tiny_config('odin'), discovery_update='copy')))
    model.train()
    batch = model.data_preprocessor(local_batch(global_batch('odin'), rank, world), True)
    span, samples = batch['inputs'][2], batch['data_samples']
    if rank == 0:
        for ds in samples:
            cached = torch.full((4, 4), 7, dtype=torch.uint8)
            model._mask_cache[int(ds.sample_idx)] = (int(model.discovery_version), cached, torch.as_tensor(ds.span_box))
    labels, _ = model.discover_masks(span, samples)
    return dict(labels=labels)


def main() -> None:
    """One worker process: ``python tests/test_distributed.py RANK WORLD PORT OUT_DIR`` (gloo over TCP)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('rank', type=int)
    parser.add_argument('world', type=int)
    parser.add_argument('port', type=int)
    parser.add_argument('out_dir')
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{args.port}', rank=args.rank,
                                         world_size=args.world)
    results = dict(layers=sync_bn_layers(args.rank, args.world))
    results.update({name: first_step(name, args.rank, args.world) for name in NAMES})
    results['odin_copy'] = odin_copy_mode_with_uneven_caches(args.rank, args.world)
    torch.save(results, osp.join(args.out_dir, f'rank{args.rank}.pt'))
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def distributed_results() -> List[dict]:
    """The workers' results, one dict per rank (both processes run all the models, once per test session)."""
    with tempfile.TemporaryDirectory() as out_dir:
        port = free_port()
        env = dict(os.environ, OMP_NUM_THREADS='1')
        procs = [subprocess.Popen([sys.executable, osp.abspath(__file__), str(r), str(WORLD), str(port), out_dir],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for r in range(WORLD)]
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=TIMEOUT_S))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                outputs.append(p.communicate())
        failed = [(r, p.returncode, err) for r, (p, (_, err)) in enumerate(zip(procs, outputs)) if p.returncode != 0]
        if failed:
            pytest.fail('\n'.join(f'rank {r} exited with {rc}:\n{err[-3000:]}' for r, rc, err in failed))
        return [torch.load(osp.join(out_dir, f'rank{r}.pt'), weights_only=False) for r in range(WORLD)]


def single_threaded(fn: Callable[..., dict], *args) -> dict:
    """``fn(*args)`` on one thread, as each worker runs (2 threads on 2 busy cores are many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


def assert_close_all(actual: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor], what: str, rtol: float,
                     atol: float) -> None:
    """Same keys; integer tensors equal, float ones within ``rtol`` of their norm plus ``atol``."""
    assert actual.keys() == expected.keys(), what
    for k, b in expected.items():
        a = actual[k]
        if not b.is_floating_point():
            assert torch.equal(a, b), f'{what} {k}: {a} != {b}'
            continue
        err, norm = torch.linalg.vector_norm(a - b).item(), torch.linalg.vector_norm(b).item()
        assert err <= rtol * norm + atol, f'{what} {k}: |difference| {err:.3g}, |expected| {norm:.3g}'


# ---------------------------------------------------------------- one process: exactly torch's BN


@pytest.mark.parametrize('shape', [(6, 3), (6, 3, 5), (6, 3, 4, 5)])
@pytest.mark.parametrize('momentum', [0.1, None])
def test_sync_bn_is_torch_bn_in_one_process(shape, momentum):
    torch.manual_seed(0)
    ref = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(3, momentum=momentum)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 2)
        ref.bias.normal_()
    bn = AnyDeviceSyncBatchNorm(3, momentum=momentum)
    bn.load_state_dict(ref.state_dict())
    for training in (True, True, False):
        x = (torch.randn(shape) * 3 + 2).requires_grad_()
        bn.train(training), ref.train(training)
        y, y_ref = bn(x), ref(x)
        assert torch.equal(y, y_ref)
        assert torch.equal(*[torch.autograd.grad(out.square().sum(), x)[0] for out in (y, y_ref)])
    for k, v in ref.state_dict().items():
        assert torch.equal(bn.state_dict()[k], v), k


def test_conversion_shares_every_tensor_and_the_registry_builds_the_layer():
    model = MODELS.build(tiny_config('multisiam'))  # BN2d, torch's SyncBN (the predictor's), the EMA copies
    tensors = model.state_dict(keep_vars=True)
    num_bn = sum(isinstance(m, _BatchNorm) for m in model.modules())
    assert convert_any_device_sync_bn(model) is model
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert len(bns) == num_bn and all(type(m) is AnyDeviceSyncBatchNorm for m in bns)
    converted = model.state_dict(keep_vars=True)
    assert converted.keys() == tensors.keys() and all(converted[k] is v for k, v in tensors.items())
    assert not any(p.requires_grad for p in model.target_net.parameters())  # still frozen

    odin = convert_any_device_sync_bn(MODELS.build(tiny_config('odin')))
    assert type(odin.projector.bn) is MaskedBatchNorm1d and type(odin.backbone.bn1) is AnyDeviceSyncBatchNorm
    name, layer = build_norm_layer(dict(type='AnyDeviceSyncBN', momentum=0.01), 8)
    assert name == 'bn' and type(layer) is AnyDeviceSyncBatchNorm and layer.momentum == 0.01
    torch_sync = convert_any_device_sync_bn(nn.Sequential(nn.SyncBatchNorm(4)))  # CUDA-only -> any device
    assert type(torch_sync[0]) is AnyDeviceSyncBatchNorm and torch_sync(torch.randn(3, 4, 2)).shape == (3, 4, 2)


# ---------------------------------------------------------------- two processes = one process with both batches


@pytest.mark.slow
def test_sync_bn_layers_in_two_processes_equal_one_process(distributed_results):
    ref = single_threaded(sync_bn_layers, 0, 1)
    for key in ('y4', 'y2', 'grad4', 'grad2'):
        torch.testing.assert_close(torch.cat([r['layers'][key] for r in distributed_results]), ref[key],
                                   rtol=1e-5, atol=1e-5)
    for r in distributed_results:
        assert_close_all(r['layers']['state'], ref['state'], 'state', rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_first_step_in_two_processes_equals_one_process_with_the_global_batch(name, distributed_results):
    ref = single_threaded(first_step, name, 0, 1)
    ranks = [r[name] for r in distributed_results]
    expected = {k: v for k, v in ref['log_vars'].items() if k not in PER_RANK_LOGS}
    assert {k: sum(r['log_vars'][k] for r in ranks) / WORLD for k in expected} == pytest.approx(
        expected, rel=1e-5, abs=1e-5)
    for rank, r in enumerate(ranks):
        assert_close_all(r['grads'], ref['grads'], f'rank {rank}: gradient of', **TOL)
        assert_close_all(r['state'], ref['state'], f'rank {rank}: after the SGD step,', **TOL)
        assert_close_all(r['ema'], ref['ema'], f'rank {rank}: after the next EMA update,', **TOL)
    assert ref['ema'] or name == 'densesiam'  # DenseSiam has no EMA network


def test_odin_cached_discovery_with_uneven_caches_does_not_hang(distributed_results):
    cached, fresh = (r['odin_copy']['labels'] for r in distributed_results)
    assert (cached == 7).all()  # rank 0 took its cache, and its dummy discovery did not overwrite it
    assert fresh.shape == (GLOBAL_BATCH // WORLD, 4, 4) and fresh.max() < 4  # rank 1 segmented its images


if __name__ == '__main__':
    main()

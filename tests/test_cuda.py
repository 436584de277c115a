"""The GPU paths (issue 18, item 5), marked ``cuda`` and skipped where torch sees no CUDA device: batched k-means on
CUDA equals the CPU result, a bf16 AMP step is finite and matches fp32, channels_last gives the NCHW losses, and a
1-process NCCL group trains with SyncBN as plain BN does, and GPU JPEG decoding gives the CPU decode path's views.
``bash benchmarks/gpu_check.sh`` runs them on one GPU."""
import copy
import socket

import pytest
import torch
import torch.distributed as dist
from conftest import random_pair_batch, set_schedule, tiny_model
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from multisiam_mm.engine.hooks.channels_last import to_channels_last
from multisiam_mm.models.utils.kmeans import batched_kmeans

DEVICE = 'cuda'
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device (torch.cuda.is_available() '
                                                                       'is False): run bash benchmarks/gpu_check.sh '
                                                                       'on a GPU machine')]
init_default_scope('mmpretrain')


def _model(eval_bn: bool = True) -> torch.nn.Module:
    """The tiny MultiSiam on ``DEVICE``; BN on running statistics when ``eval_bn`` (per-sample losses)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(tiny_model(), ema_interval=1)).to(DEVICE).train()
    for m in model.modules():
        if eval_bn and isinstance(m, _BatchNorm):
            m.eval()
    return model


def _batch(model: torch.nn.Module) -> dict:
    set_schedule(0, 10)
    batch = random_pair_batch(B=4)
    batch['inputs'] = [v.to(DEVICE) for v in batch['inputs']]
    return model.data_preprocessor(batch, True)


def _blobs(batch: int, points: int, dim: int, clusters: int) -> torch.Tensor:
    """``(B, N, D)`` well separated clusters: no near ties, so the assignment is the same on every device."""
    g = torch.Generator().manual_seed(0)
    centres = 10 * torch.randn(batch, clusters, dim, generator=g)
    labels = torch.arange(points).remainder(clusters).expand(batch, points)
    return centres[torch.arange(batch)[:, None], labels] + 0.1 * torch.randn(batch, points, dim, generator=g)


@pytest.mark.parametrize('metric', ['cosine', 'euclidean'])
def test_kmeans_on_cuda_equals_cpu(metric):
    x = _blobs(16, 49, 64, 3)
    cpu = batched_kmeans(x, 3, metric=metric)
    gpu = batched_kmeans(x.to(DEVICE), 3, metric=metric)
    assert gpu.centroids.device.type == torch.device(DEVICE).type
    assert torch.equal(gpu.assignment.cpu(), cpu.assignment)
    torch.testing.assert_close(gpu.centroids.cpu(), cpu.centroids, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.inertia.cpu(), cpu.inertia, rtol=1e-3, atol=1e-3)


def test_bf16_amp_step_is_finite_and_matches_fp32():
    model = _model()
    data = _batch(model)
    reference = model(**copy.deepcopy(data), mode='loss')
    with torch.autocast(device_type=torch.device(DEVICE).type, dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    for name in ('loss_1d', 'loss_2d'):
        assert losses[name].dtype == torch.float32 and torch.isfinite(losses[name]), name
        torch.testing.assert_close(losses[name], reference[name], rtol=5e-2, atol=5e-2)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_channels_last_gives_the_same_losses():
    model = _model()
    data = _batch(model)
    reference = model(**copy.deepcopy(data), mode='loss')
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    data_cl = dict(data, inputs=[to_channels_last(v) for v in data['inputs']])
    assert data_cl['inputs'][0].is_contiguous(memory_format=torch.channels_last)
    losses = model_cl(**data_cl, mode='loss')
    for name in ('loss_1d', 'loss_2d'):
        torch.testing.assert_close(losses[name], reference[name], rtol=1e-3, atol=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_nccl_available(), reason='this torch build has no NCCL')
def test_one_process_nccl_group_trains_syncbn_as_bn():
    """In a group of one, SyncBN's batch statistics are the local ones (torch takes plain BN's path when the group has
    one process): the losses and gradients equal plain BN's, and the NCCL group answers an all_reduce."""
    model_bn = _model(eval_bn=False)
    data = _batch(model_bn)
    model_sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model_bn))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model_sync.modules())
    reference = model_bn(**copy.deepcopy(data), mode='loss')
    dist.init_process_group('nccl', init_method=f'tcp://127.0.0.1:{_free_port()}', rank=0, world_size=1)
    try:
        losses = model_sync(**data, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        total.backward()
        summed = total.detach().clone()
        dist.all_reduce(summed)  # the group really communicates
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(summed, total.detach())
    for name in ('loss_1d', 'loss_2d'):
        torch.testing.assert_close(losses[name], reference[name], rtol=1e-3, atol=1e-4)
    sum(v for k, v in reference.items() if 'loss' in k).backward()
    for (name, p_sync), p_bn in zip(model_sync.named_parameters(), model_bn.parameters()):
        if p_bn.grad is not None:
            torch.testing.assert_close(p_sync.grad, p_bn.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_device_decode_on_cuda_equals_the_cpu_decode_path(tmp_path):
    """DevicePairPreprocessor with nvJPEG gives the views it gives with torchvision's CPU decoder (issue 18, item
    4): the same boxes, flips and T / T' draws, pixel values within the decoders' rounding."""
    from mmengine.dataset import pseudo_collate
    from test_device_decode import pipelines, seeded, street_like, write_jpeg
    path = write_jpeg(tmp_path / 'frame.jpg', street_like(300, 420))
    _, dev = pipelines()
    samples = [seeded(dev, path, s) for s in range(4)]
    common = dict(mean=[0., 0., 0.], std=[1., 1., 1.], to_rgb=True)
    views = []
    for where in ('cuda', 'cpu'):
        pre = MODELS.build(dict(type='DevicePairPreprocessor', decode_device=where, **common)).to(where)
        views.append([v.cpu() for v in pre(pseudo_collate(copy.deepcopy(samples)))['inputs']])
    for gpu, cpu in zip(*views):
        diff = (gpu - cpu).abs()
        assert diff.mean() < 1.0 and diff.max() <= 32, (diff.mean(), diff.max())

"""Batched k-means (MultiSiam's per-image clustering) against per-image scikit-learn and fast-pytorch-kmeans.

B independent problems of N points in D dimensions (default: 256 images of 7x7 cells, 256 channels, K = 3) are
clustered by each method; the table gives the time per batch and the mean per-image inertia. Every inertia is
recomputed the same way from the method's labels (cluster means, L2-normalised in cosine mode, on the same
normalised features), so the column compares partitions, not each library's own bookkeeping. scikit-learn runs one
KMeans per image (n_init=10, the best-of-10 reference of the quality test, and n_init=1, what its default
n_init='auto' means with k-means++ init; lloyd, random_state=0) on the features (L2-normalised in cosine mode).
fast-pytorch-kmeans runs one MultiKMeans on the whole batch (its defaults: random init, up to 100
iterations, stops when the centroids move less than tol=1e-4).
The torch rows are interleaved over --repeats rounds (median shown) so that drift in machine speed hits all alike;
scikit-learn loops run once.

    python benchmarks/kmeans_bench.py [--metric euclidean|cosine] [--data relu|gaussian|blobs] [--compile]
                                      [--threads N] [--device cpu|cuda]
"""
import argparse
import os
import statistics
import time
import warnings
from typing import Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from multisiam_mm.models.utils.kmeans import batched_kmeans


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch', type=int, default=256, help='B: problems (images) per batch')
    parser.add_argument('--points', type=int, default=49, help='N: points (feature-map cells) per problem')
    parser.add_argument('--dim', type=int, default=256, help='D: feature channels')
    parser.add_argument('--clusters', type=int, default=3, help='K')
    parser.add_argument('--metric', choices=('euclidean', 'cosine'), default='euclidean')
    parser.add_argument('--data', choices=('relu', 'gaussian', 'blobs'), default='relu',
                        help='relu: smooth non-negative feature maps; gaussian: unclustered; blobs: 2-5 clusters')
    parser.add_argument('--device', default='cpu',
                        help='device of the torch rows (e.g. cuda); scikit-learn always runs on the CPU')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch and BLAS/OpenMP threads (1 is robust on a machine shared with other jobs)')
    parser.add_argument('--repeats', type=int, default=30, help='timed rounds of the torch rows')
    parser.add_argument('--compile', action='store_true', help='add a torch.compile(fullgraph=True) row')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def make_data(kind: str, batch: int, points: int, dim: int, seed: int) -> torch.Tensor:
    """Synthetic ``(B, N, D)`` problems; ``relu`` needs a square ``N`` (a feature map)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == 'gaussian':
        return torch.randn(batch, points, dim, generator=gen)
    if kind == 'blobs':
        centres = 2 * torch.randn(batch, 5, dim, generator=gen)
        labels = (torch.rand(batch, points, generator=gen) * torch.randint(2, 6, (batch, 1), generator=gen)).long()
        return centres[torch.arange(batch)[:, None], labels] + torch.randn(batch, points, dim, generator=gen)
    side = round(points ** 0.5)
    if side * side != points:
        raise ValueError(f'--data relu needs a square number of points, got {points}')
    coarse = F.interpolate(torch.randn(batch, dim, 3, 3, generator=gen), size=(side, side), mode='bilinear')
    maps = (coarse + 0.5 * torch.randn(batch, dim, side, side, generator=gen)).relu()
    return maps.flatten(2).transpose(1, 2).contiguous()


def partition_inertia(x: torch.Tensor, labels: torch.Tensor, clusters: int, metric: str) -> torch.Tensor:
    """Per-problem inertia ``(B,)`` of the partition ``labels (B, N)`` of ``x (B, N, D)`` (see module doc)."""
    x = F.normalize(x, dim=-1) if metric == 'cosine' else x
    one_hot = F.one_hot(labels.long(), clusters).double()  # (B, N, K)
    sums = one_hot.transpose(1, 2) @ x.double()
    centres = F.normalize(sums, dim=-1) if metric == 'cosine' else sums / one_hot.sum(1).clamp_min(1)[..., None]
    return (x.double() - one_hot @ centres).square().sum((1, 2))


def sklearn_labels(x: torch.Tensor, clusters: int, n_init: int, threads: int) -> torch.Tensor:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # ConvergenceWarning on duplicate points
        labels = [KMeans(clusters, n_init=n_init, random_state=0).fit(p).labels_ for p in x.numpy()]
    return torch.from_numpy(np.stack(labels))


def fast_pytorch_kmeans_fn(clusters: int, metric: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from fast_pytorch_kmeans import MultiKMeans
    return lambda x: MultiKMeans(clusters, mode=metric).fit_predict(x)


def time_interleaved(fns: Dict[str, Callable[[], torch.Tensor]], repeats: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Seconds of each call over ``repeats`` rounds, each round calling every function once, after a warm-up.

    On a GPU each call is timed up to the end of its kernels (synchronised before and after).
    """
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # fast-pytorch-kmeans draws its initial centroids from the global generator
    device = torch.device(args.device)
    x = make_data(args.data, args.batch, args.points, args.dim, args.seed)
    features = F.normalize(x, dim=-1) if args.metric == 'cosine' else x
    x_dev, features_dev = x.to(device), features.to(device)
    k = args.clusters

    torch_fns: Dict[str, Callable[[], torch.Tensor]] = {
        'batched_kmeans (eager, defaults)': lambda: batched_kmeans(x_dev, k, metric=args.metric).assignment,
        'batched_kmeans (eager, num_inits=1)': lambda: batched_kmeans(x_dev, k, metric=args.metric,
                                                                       num_inits=1).assignment,
        'batched_kmeans (eager, 8 runs, 3 of 10 iterations)': lambda: batched_kmeans(
            x_dev, k, metric=args.metric, num_inits=8, select_after=3, num_iters=10).assignment,
    }
    if args.compile:
        compiled = torch.compile(batched_kmeans, fullgraph=True, dynamic=False)
        torch_fns['batched_kmeans (torch.compile, defaults)'] = lambda: compiled(
            x_dev, k, metric=args.metric).assignment
    unavailable: Dict[str, str] = {}
    library = 'fast-pytorch-kmeans MultiKMeans'
    try:
        fpk = fast_pytorch_kmeans_fn(k, args.metric)
        fpk(features_dev)  # fails here if it does not run
        torch_fns[library] = lambda: fpk(features_dev)
    except Exception as exc:  # any failure (import or run) makes the row unavailable, with the reason
        unavailable[library] = f'{type(exc).__name__}: {exc}'.splitlines()[0]

    times = {name: statistics.median(ts) for name, ts in time_interleaved(torch_fns, args.repeats, device).items()}
    labels = {name: fn().cpu() for name, fn in torch_fns.items()}
    for n_init in (10, 1):
        name = f'scikit-learn KMeans(n_init={n_init}), per-image loop'
        start = time.perf_counter()
        labels[name] = sklearn_labels(features, k, n_init, args.threads)
        times[name] = time.perf_counter() - start

    inertia = {name: partition_inertia(x, lab, k, args.metric).mean().item() for name, lab in labels.items()}
    reference = inertia['scikit-learn KMeans(n_init=10), per-image loop']
    ours = times['batched_kmeans (eager, defaults)']
    print(f'B={args.batch} problems of N={args.points} points, D={args.dim}, K={k}, metric={args.metric}, '
          f'data={args.data}, torch {torch.__version__}, torch rows on {device}, torch threads={args.threads} of '
          f'{os.cpu_count()} CPUs\n')
    print('| method | time per batch (ms) | batched_kmeans (defaults) speedup | mean inertia | vs sklearn n_init=10 |')
    print('|---|---:|---:|---:|---:|')
    for name in sorted(times, key=times.get):
        print(f'| {name} | {times[name] * 1e3:,.1f} | {times[name] / ours:,.1f}x | {inertia[name]:.4f} | '
              f'{(inertia[name] / reference - 1) * 100:+.2f}% |')
    for name, reason in unavailable.items():
        print(f'| {name} | unavailable: {reason} | | | |')


if __name__ == '__main__':
    main()

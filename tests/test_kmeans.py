"""Batched k-means (multisiam_mm.models.utils.kmeans): quality vs scikit-learn, determinism, compile, edge cases."""
import warnings
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multisiam_mm.models.utils.kmeans import KMeansResult, assign_to_centroids, batched_kmeans, gather_assigned

K = 3
N = 49  # a 7x7 feature map


def gaussian(batch: int, dim: int, seed: int) -> torch.Tensor:
    """Unclustered data: (batch, N, dim) standard normal."""
    return torch.randn(batch, N, dim, generator=torch.Generator().manual_seed(seed))


def blobs(batch: int, dim: int, seed: int, spread: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered data: per image 2..5 Gaussian blobs of unit noise around centres of scale ``spread``; with labels."""
    gen = torch.Generator().manual_seed(seed)
    num_blobs = torch.randint(2, 6, (batch, 1), generator=gen)
    centres = spread * torch.randn(batch, 5, dim, generator=gen)
    labels = (torch.rand(batch, N, generator=gen) * num_blobs).long()
    return gather_assigned(centres, labels) + torch.randn(batch, N, dim, generator=gen), labels


def relu_maps(batch: int, dim: int, seed: int) -> torch.Tensor:
    """Feature-map-like data: spatially smooth, non-negative 7x7 maps (upsampled 3x3 noise + noise, ReLU)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.randn(batch, dim, 3, 3, generator=gen), size=(7, 7), mode='bilinear')
    return (coarse + 0.5 * torch.randn(batch, dim, 7, 7, generator=gen)).relu().flatten(2).transpose(1, 2)


DATA: dict[str, Callable[[], torch.Tensor]] = {
    'blobs-d16': lambda: blobs(64, 16, seed=0)[0],
    'gaussian-d64': lambda: gaussian(64, 64, seed=1),
    'relu-maps-d32': lambda: relu_maps(64, 32, seed=2),
}


def inertia_from_labels(x: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """Inertia of a partition of ``x (N, D)``: cluster means (normalised in cosine mode, on normalised ``x``)."""
    if metric == 'cosine':
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    total = 0.0
    for k in np.unique(labels):
        members = x[labels == k]
        centre = members.mean(0)
        if metric == 'cosine':
            centre = centre / max(np.linalg.norm(centre), 1e-12)
        total += float(((members - centre) ** 2).sum())
    return total


def sklearn_best_of_10(x: torch.Tensor, metric: str) -> np.ndarray:
    """Per-image inertia ``(B,)`` of scikit-learn's KMeans(n_init=10) partition (on normalised x in cosine mode)."""
    kmeans = pytest.importorskip('sklearn.cluster').KMeans
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    points = (F.normalize(x, dim=-1) if metric == 'cosine' else x).double().numpy()
    # One OpenMP thread: tiny fits gain nothing from more, and spin-waiting threads crawl on a busy machine.
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # ConvergenceWarning on duplicate points
        labels = [kmeans(n_clusters=K, n_init=10, random_state=0).fit(p).labels_ for p in points]
    return np.array([inertia_from_labels(p, lab, metric) for p, lab in zip(points, labels)])


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
@pytest.mark.parametrize('data', sorted(DATA))
def test_inertia_within_1_percent_of_sklearn(data: str, metric: str) -> None:
    x = DATA[data]()
    result = batched_kmeans(x, K, metric=metric)
    ours = np.array([inertia_from_labels(p, lab, metric) for p, lab in zip(x.double().numpy(),
                                                                             result.assignment.numpy())])
    reference = sklearn_best_of_10(x, metric)
    assert ours.mean() <= 1.01 * reference.mean(), (ours.mean(), reference.mean())
    # The reported inertia is that of (centroids, assignment), never below the best for the same partition.
    np.testing.assert_array_less(ours - 1e-3, result.inertia.double().numpy())
    np.testing.assert_allclose(result.inertia.double().numpy(), ours, rtol=1e-3, atol=1e-4)


def test_separated_blobs_are_recovered_exactly() -> None:
    x, labels = blobs(32, 16, seed=3, spread=20.0)
    three = (labels.unsqueeze(-1) == torch.arange(3)).any(1).all(-1) & (labels < 3).all(-1)
    x, labels = x[three], labels[three]  # images with exactly three blobs
    assert len(x) >= 3
    for metric in ('euclidean', 'cosine'):
        assignment = batched_kmeans(x, K, metric=metric).assignment
        # Same partition up to relabelling: two points share a cluster iff they share a blob.
        same_ours = assignment.unsqueeze(1) == assignment.unsqueeze(2)
        same_true = labels.unsqueeze(1) == labels.unsqueeze(2)
        assert torch.equal(same_ours, same_true), metric


def test_result_is_consistent() -> None:
    x = relu_maps(16, 24, seed=4)
    for metric in ('euclidean', 'cosine'):
        result = batched_kmeans(x, K, metric=metric)
        assert isinstance(result, KMeansResult)
        assert result.centroids.shape == (16, K, 24) and result.centroids.dtype == torch.float32
        assert result.assignment.shape == (16, N) and result.assignment.dtype == torch.long
        assert result.inertia.shape == (16,)
        assert torch.equal(assign_to_centroids(x, result.centroids, metric), result.assignment)
        points = F.normalize(x, dim=-1) if metric == 'cosine' else x
        assigned = gather_assigned(result.centroids, result.assignment)
        assert assigned.shape == (16, N, 24)
        assert torch.equal(assigned[3, 10], result.centroids[3, result.assignment[3, 10]])
        torch.testing.assert_close(result.inertia, (points - assigned).square().sum((1, 2)))
    norms = batched_kmeans(x, K, metric='cosine').centroids.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_invariant_to_batch_order(metric: str) -> None:
    x = torch.cat([blobs(24, 32, seed=5)[0], gaussian(24, 32, seed=6)])
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(7))
    full = batched_kmeans(x, K, metric=metric)
    permuted = batched_kmeans(x[perm], K, metric=metric)
    assert torch.equal(permuted.assignment, full.assignment[perm])
    torch.testing.assert_close(permuted.centroids, full.centroids[perm], rtol=0, atol=1e-6)
    torch.testing.assert_close(permuted.inertia, full.inertia[perm], rtol=1e-6, atol=1e-6)
    alone = batched_kmeans(x[5:6], K, metric=metric)  # an image's result depends on that image only
    assert torch.equal(alone.assignment, full.assignment[5:6])
    torch.testing.assert_close(alone.centroids, full.centroids[5:6], rtol=0, atol=1e-6)


def test_more_runs_and_iterations_lower_the_inertia() -> None:
    x = gaussian(64, 16, seed=8)

    def inertia(**kwargs) -> torch.Tensor:
        return batched_kmeans(x, K, metric='euclidean', **kwargs).inertia

    one_run = inertia(num_inits=1)
    all_runs = inertia(num_inits=8, select_after=10)  # best of 8 full runs, run 0 being the single run above
    assert (all_runs <= one_run * (1 + 1e-6)).all()
    default = inertia()  # 6 runs, the best after 2 iterations goes on
    assert default.mean() < 0.995 * one_run.mean()
    assert default.mean() < 0.95 * inertia(num_iters=0).mean()


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
@pytest.mark.parametrize('data', sorted(DATA))
def test_default_iterations_have_converged(data: str, metric: str) -> None:
    """The default iteration count (6) gives the partition that 30 iterations give (Lloyd has converged)."""
    x = DATA[data]()
    converged = batched_kmeans(x, K, metric=metric, num_iters=30).assignment
    assert torch.equal(batched_kmeans(x, K, metric=metric).assignment, converged)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_input(dtype: torch.dtype) -> None:
    x = relu_maps(8, 32, seed=9).to(dtype)
    result = batched_kmeans(x, K)
    reference = batched_kmeans(x.float(), K)
    assert result.centroids.dtype == torch.float32 and result.inertia.dtype == torch.float32
    assert torch.equal(result.assignment, reference.assignment)
    torch.testing.assert_close(result.centroids, reference.centroids)


def test_no_grad_needed_or_propagated() -> None:
    x = gaussian(4, 8, seed=10).requires_grad_()
    result = batched_kmeans(x, K)
    assert not (result.centroids.requires_grad or result.inertia.requires_grad)


def assert_finite(result: KMeansResult, num_points: int) -> None:
    assert torch.isfinite(result.centroids).all() and torch.isfinite(result.inertia).all()
    assert (result.inertia >= 0).all()
    assert ((result.assignment >= 0) & (result.assignment < K)).all() and result.assignment.shape[1] == num_points


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_degenerate_inputs_are_finite(metric: str) -> None:
    constant = torch.full((2, N, 8), 0.5)
    result = batched_kmeans(constant, K, metric=metric)
    assert_finite(result, N)
    torch.testing.assert_close(result.inertia, torch.zeros(2))
    expected = F.normalize(constant[:, :1], dim=-1) if metric == 'cosine' else constant[:, :1]
    torch.testing.assert_close(result.centroids, expected.expand(-1, K, -1))

    two_points = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # K > N
    result = batched_kmeans(two_points, K, metric=metric, num_inits=8)
    assert_finite(result, 2)
    assert result.assignment[0, 0] != result.assignment[0, 1]
    torch.testing.assert_close(result.inertia, torch.zeros(1))

    duplicates = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 3.0]] * 5).unsqueeze(0)  # two distinct points: an empty cluster
    result = batched_kmeans(duplicates, K, metric=metric)
    assert_finite(result, 10)
    assert len(set(result.assignment[0].tolist())) == 2
    torch.testing.assert_close(result.inertia, torch.zeros(1))

    zeros = torch.zeros(1, N, 8)
    with_zero_rows = gaussian(1, 8, seed=11)
    with_zero_rows[0, ::3] = 0
    result = batched_kmeans(torch.cat([zeros, with_zero_rows]), K, metric=metric)
    assert_finite(result, N)
    assert result.inertia[0] == 0


def test_invalid_arguments() -> None:
    x = gaussian(2, 4, seed=12)
    with pytest.raises(ValueError, match='metric'):
        batched_kmeans(x, K, metric='manhattan')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r'\(B, N, D\)'):
        batched_kmeans(x[0], K)
    with pytest.raises(ValueError, match='num_clusters'):
        batched_kmeans(x, 0)


@pytest.mark.slow
def test_compiles_fullgraph_and_matches_eager() -> None:
    torch._dynamo.reset()
    x = torch.cat([blobs(16, 32, seed=13)[0], relu_maps(16, 32, seed=14)])
    for metric in ('cosine', 'euclidean'):
        compiled = torch.compile(batched_kmeans, fullgraph=True, dynamic=False)
        got = compiled(x, K, metric=metric)
        expected = batched_kmeans(x, K, metric=metric)
        assert torch.equal(got.assignment, expected.assignment), metric
        torch.testing.assert_close(got.centroids, expected.centroids, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got.inertia, expected.inertia, rtol=1e-4, atol=1e-4)

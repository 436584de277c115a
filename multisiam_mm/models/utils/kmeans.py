"""Batched k-means for many small, independent clustering problems.

MultiSiam (Sec. 3.3) runs k-means (K = 3, cosine) on the aligned 7x7 target feature map of *every* image in a batch
and regresses each online cell onto the centroid its target cell was assigned to. That is ``B`` independent problems
of ``N = H * W`` points in ``D`` dimensions, which this module solves all at once with a fixed amount of tensor work:

* no host synchronisation (no ``.item()``, no data-dependent Python control flow, no boolean-mask indexing), so it
  runs unchanged on GPU and compiles with ``torch.compile(..., fullgraph=True)``;
* every image's result depends only on that image's points: the initialisation is deterministic, so permuting the
  batch permutes the results;
* the computation is in float32 whatever the input dtype, and nothing is differentiated (the input is detached:
  k-means targets sit behind MultiSiam's stop-gradient).

Shapes used throughout: ``B`` problems (images), ``N`` points per problem (feature-map cells), ``D`` feature
channels, ``K`` clusters, ``R`` deterministic initialisations per problem.

Metrics
    ``'euclidean'``: standard k-means; the inertia is the sum of squared distances of the points to their centroids.
    ``'cosine'``: spherical k-means. Points are L2-normalised, each is assigned to the centroid of highest cosine
    similarity, and a centroid is the L2-normalised mean (equivalently sum) of its points. The inertia is the sum of
    squared distances between normalised points and their unit centroids, i.e. ``2 * (1 - cos)`` per point. A zero
    feature vector stays zero after normalisation and adds 1 to the inertia (0 if its centroid is zero too).

Algorithm
    Because a centroid is always a weighted sum of the problem's own points, Lloyd's iterations run on the ``N x N``
    Gram matrix with centroids kept as weights ``(K, N)`` over the points; the ``D``-dimensional centroids are formed
    once at the end. Each iteration costs ``O(B * R * K * N^2)`` independent of ``D`` (7x7 maps have
    ``N = 49 <= D``). Memory is ``O(B * R * N^2)``, so the module targets small ``N`` (up to a few hundred).

Initialisation (deterministic, ``R = num_inits`` runs per problem, all batched, the lowest-inertia run kept)
    Run ``r`` starts from the ``r``-th point nearest to the problem's mean (the ``r``-th smallest sum of squared
    distances to all points; run 0 starts at the most central point). It then adds, one at a time, the point that
    minimises the resulting k-means potential (sum over points of the squared distance to the nearest chosen
    centre), searched over *all* ``N`` candidates: greedy k-means++ without sampling, i.e. the BUILD step of PAM
    (k-medoids) with squared distances, at ``O(R * K * N^2)`` per problem. Unlike random seeding it is reproducible
    and order-invariant without a generator; unlike maximin (farthest-point) seeding it does not chase outliers.

Degenerate inputs give finite results: constant features, ``K > N`` (centres repeat; the extra clusters stay
empty), zero vectors in cosine mode, and empty clusters (which keep their previous centroid).
"""
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

Metric = Literal['cosine', 'euclidean']

# Below this norm the (normalised) sum of a cosine cluster is taken as zero, so the cluster keeps its centroid.
_COSINE_EPS = 1e-6


class KMeansResult(NamedTuple):
    """Result of :func:`batched_kmeans`, in float32 / int64.

    Attributes:
        centroids: ``(B, K, D)`` cluster centres (unit-norm in cosine mode, unless a cluster only held zero vectors).
        assignment: ``(B, N)`` index in ``[0, K)`` of the centroid nearest to each point.
        inertia: ``(B,)`` sum over the points of the squared distance to their assigned centroid (see module doc).
    """

    centroids: Tensor
    assignment: Tensor
    inertia: Tensor


def _prepare(x: Tensor, metric: Metric) -> Tensor:
    """Detach and cast ``x`` to float32; L2-normalise the last dimension in cosine mode (zero vectors stay zero)."""
    x = x.detach().float()
    return F.normalize(x, dim=-1) if metric == 'cosine' else x


def _sq_dists(x: Tensor, centroids: Tensor) -> Tensor:
    """Squared Euclidean distances ``(B, N, K)`` between points ``(B, N, D)`` and centroids ``(B, K, D)``."""
    cross = x @ centroids.transpose(1, 2)
    return (x.square().sum(-1, keepdim=True) - 2 * cross + centroids.square().sum(-1).unsqueeze(1)).clamp_min(0)


def _gram_sq_dists(gram: Tensor) -> Tensor:
    """Pairwise squared distances ``(B, N, N)`` from the Gram matrix ``(B, N, N)`` of the points."""
    sq_norms = gram.diagonal(dim1=1, dim2=2)
    return (sq_norms.unsqueeze(-1) + sq_norms.unsqueeze(-2) - 2 * gram).clamp_min(0)


def _rows(dists: Tensor, idx: Tensor) -> Tensor:
    """Rows ``dists[b, idx[b, r]]`` of a ``(B, N, N)`` matrix for indices ``(B, R)``: ``(B, R, N)``."""
    return dists.gather(1, idx.unsqueeze(-1).expand(-1, -1, dists.shape[-1]))


def _seed_indices(dists: Tensor, num_inits: int) -> Tensor:
    """First centre of each run: the ``min(num_inits, N)`` most central points ``(B, R)``, most central first."""
    return dists.sum(-1).topk(min(num_inits, dists.shape[-1]), dim=-1, largest=False).indices


def _next_centre(dists: Tensor, closest: Tensor) -> Tensor:
    """Point ``(B, R)`` minimising the potential ``sum_n min(closest[n], dists[c, n])`` over all candidates ``c``."""
    return torch.minimum(closest.unsqueeze(2), dists.unsqueeze(1)).sum(-1).argmin(-1)


def _init_indices(dists: Tensor, seeds: Tensor, num_clusters: int) -> Tensor:
    """Indices ``(B, R, K)`` of the greedy initial centres of every run, grown from ``seeds`` ``(B, R)``."""
    chosen = [seeds]
    closest = _rows(dists, seeds)  # (B, R, N): squared distance of each point to its nearest chosen centre
    for _ in range(num_clusters - 1):
        idx = _next_centre(dists, closest)
        chosen.append(idx)
        closest = torch.minimum(closest, _rows(dists, idx))
    return torch.stack(chosen, -1)


def _kernel_sq_dists(gram: Tensor, weights: Tensor) -> Tensor:
    """Squared distances ``(B, M, N)`` from centroids given as weights ``(B, M, N)`` over the points to the points."""
    cross = weights @ gram  # (B, M, N): <c_m, x_n>, as the Gram matrix is symmetric
    centroid_sq_norms = (weights * cross).sum(-1, keepdim=True)  # (B, M, 1)
    return gram.diagonal(dim1=1, dim2=2).unsqueeze(1) - 2 * cross + centroid_sq_norms


def _memberships(assignment: Tensor, num_clusters: int) -> Tensor:
    """Float32 one-hot ``(B, R * K, N)`` of ``assignment (B, R, N)`` in ``[0, K)`` (no host check, unlike F.one_hot)."""
    clusters = torch.arange(num_clusters, device=assignment.device).unsqueeze(-1)  # (K, 1)
    return (assignment.unsqueeze(2) == clusters).flatten(1, 2).float()


def _point_weights(indices: Tensor, num_points: int) -> Tensor:
    """Weights ``(B, M, N)`` of centroids that are the points ``indices (B, M)``: one-hot rows."""
    return (indices.unsqueeze(-1) == torch.arange(num_points, device=indices.device)).float()


def _update_weights(gram: Tensor, members: Tensor, weights: Tensor, metric: Metric) -> Tensor:
    """One Lloyd update of centroid weights ``(B, M, N)`` from cluster memberships ``members (B, M, N)`` in {0, 1}.

    Euclidean centroids are cluster means; cosine centroids are normalised cluster sums. Empty clusters (and cosine
    clusters whose sum vanishes) keep their previous weights.
    """
    if metric == 'cosine':
        sum_norm = (members * (members @ gram)).sum(-1, keepdim=True).clamp_min(0).sqrt()
        return torch.where(sum_norm > _COSINE_EPS, members / sum_norm.clamp_min(_COSINE_EPS), weights)
    counts = members.sum(-1, keepdim=True)
    return torch.where(counts > 0, members / counts.clamp_min(1), weights)


def _run_dists(gram: Tensor, weights: Tensor, num_clusters: int) -> Tensor:
    """Squared distances ``(B, R, K, N)`` from the ``K`` centroids of each of ``R`` runs ``(B, R * K, N)``."""
    return _kernel_sq_dists(gram, weights).unflatten(1, (-1, num_clusters))


def _lloyd(gram: Tensor, weights: Tensor, num_clusters: int, num_iters: int, metric: Metric) -> Tensor:
    """``num_iters`` Lloyd iterations on centroid weights ``(B, R * K, N)`` of ``R`` independent runs."""
    for _ in range(num_iters):
        assignment = _run_dists(gram, weights, num_clusters).argmin(2)  # (B, R, N)
        weights = _update_weights(gram, _memberships(assignment, num_clusters), weights, metric)
    return weights


def _best_run(gram: Tensor, weights: Tensor, num_clusters: int) -> Tensor:
    """Centroid weights ``(B, K, N)`` of the lowest-inertia run among ``R`` runs ``(B, R * K, N)``."""
    best = _run_dists(gram, weights, num_clusters).amin(2).sum(-1).argmin(-1)  # (B,); ties: the earliest run
    runs = weights.unflatten(1, (-1, num_clusters))  # (B, R, K, N)
    return runs.gather(1, best.view(-1, 1, 1, 1).expand(-1, 1, *runs.shape[2:])).squeeze(1)


def _nearest(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Assignment ``(B, N)`` of prepared points to their nearest centroid and the inertia ``(B,)``."""
    assignment = _sq_dists(x, centroids).argmin(-1)
    inertia = (x - gather_assigned(centroids, assignment)).square().sum((1, 2))
    return assignment, inertia


def _check_args(x: Tensor, num_clusters: int, num_iters: int, metric: str, num_inits: int) -> None:
    """Raise ``ValueError`` for arguments outside the documented ranges (static checks only)."""
    if x.dim() != 3:
        raise ValueError(f'x must be (B, N, D), got shape {tuple(x.shape)}')
    if metric not in ('cosine', 'euclidean'):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if num_clusters < 1 or num_iters < 0 or num_inits < 1:
        raise ValueError(f'need num_clusters >= 1, num_iters >= 0, num_inits >= 1, got {num_clusters}, '
                         f'{num_iters}, {num_inits}')


def batched_kmeans(x: Tensor,
                   num_clusters: int,
                   num_iters: int = 10,
                   metric: Metric = 'cosine',
                   num_inits: int = 8) -> KMeansResult:
    """Cluster each of ``B`` point sets independently into ``K`` clusters with a fixed number of Lloyd iterations.

    Args:
        x: ``(B, N, D)`` points, any floating dtype (computed in float32, not differentiated).
        num_clusters: ``K``, the number of clusters per problem (may exceed ``N``: extra clusters stay empty).
        num_iters: Lloyd iterations per run (fixed, no early stop; 10 converges for ``N = 49, K = 3``).
        metric: ``'cosine'`` (spherical k-means) or ``'euclidean'``; see the module docstring.
        num_inits: ``R``, deterministic runs per problem (capped at ``N``); the lowest-inertia run is returned.

    Returns:
        :class:`KMeansResult` with ``centroids (B, K, D)`` float32, ``assignment (B, N)`` int64 (each point's nearest
        final centroid) and ``inertia (B,)`` float32 of that assignment.
    """
    _check_args(x, num_clusters, num_iters, metric, num_inits)
    points = _prepare(x, metric)
    gram = points @ points.transpose(1, 2)
    dists = _gram_sq_dists(gram)
    start = _init_indices(dists, _seed_indices(dists, num_inits), num_clusters)  # (B, R, K)
    weights = _point_weights(start.flatten(1), points.shape[1])  # (B, R * K, N)
    weights = _lloyd(gram, weights, num_clusters, num_iters, metric)
    centroids = _prepare(_best_run(gram, weights, num_clusters) @ points, metric)
    return KMeansResult(centroids, *_nearest(points, centroids))


def assign_to_centroids(x: Tensor, centroids: Tensor, metric: Metric = 'cosine') -> Tensor:
    """Index ``(B, N)`` int64 of the nearest centroid ``(B, K, D)`` to each point ``(B, N, D)``.

    In cosine mode both points and centroids are L2-normalised first, so this is the highest cosine similarity.
    """
    return _sq_dists(_prepare(x, metric), _prepare(centroids, metric)).argmin(-1)


def gather_assigned(centroids: Tensor, assignment: Tensor) -> Tensor:
    """Centroid ``(B, N, D)`` assigned to each point, from ``centroids (B, K, D)`` and ``assignment (B, N)``."""
    return centroids.gather(1, assignment.unsqueeze(-1).expand(-1, -1, centroids.shape[-1]))

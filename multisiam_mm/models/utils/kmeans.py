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
channels, ``K`` clusters, ``R`` deterministically initialised runs per problem.

Metrics
    ``'euclidean'``: standard k-means; the inertia is the sum of squared distances of the points to their centroids.
    ``'cosine'``: spherical k-means. Points are L2-normalised, each is assigned to the centroid of highest cosine
    similarity, and a centroid is the L2-normalised mean (equivalently sum) of its points. The inertia is the sum of
    squared distances between normalised points and their unit centroids, i.e. ``2 * (1 - cos)`` per point. A zero
    feature vector stays zero after normalisation and adds 1 to the inertia (0 if its centroid is zero too).

Algorithm
    A centroid is always a weighted sum of its problem's points, so Lloyd's iterations run on the ``N x N`` Gram
    matrix, with the centroids kept as weights over the points (plus their inner products with the points); the
    ``D``-dimensional centroids are formed once, at the end. After the ``O(B * N^2 * D)`` Gram matrix an iteration
    costs ``O(B * R * K * N^2)``, independent of ``D`` (7x7 maps have ``N = 49 < D``); memory is ``O(B * R * N^2)``,
    so the module targets small ``N`` (up to a few hundred).

Initialisation and runs (deterministic; ``R = num_inits`` runs per problem, batched)
    Run ``r`` starts from the ``r``-th most central point (the ``r``-th smallest sum of squared distances to the
    other points). It then adds, one at a time, the point that minimises the resulting k-means potential (sum over
    the points of the squared distance to their nearest chosen centre), searched over *all* ``N`` points: greedy
    k-means++ without sampling, i.e. the BUILD step of PAM (k-medoids) with squared distances, at ``O(R * K * N^2)``
    per problem. Unlike random seeding it is reproducible and order-invariant without a generator; unlike maximin
    (farthest-point) seeding it does not chase outliers. All ``R`` runs make ``select_after`` Lloyd iterations, then
    only each problem's lowest-inertia run carries on to ``num_iters`` (the inertia ranking of runs settles within a
    few iterations, and the single run is ``R`` times cheaper). With the defaults (``R = 6``, selection after 2 of
    6 iterations) the mean inertia on 7x7 maps is within 1% of scikit-learn's best of 10 k-means++ runs, and 6
    iterations already give the assignment that 30 give (tests/test_kmeans.py). On 256 problems of 7x7 cells and
    256 channels this is 1.2-1.3x faster than ``R = 8``, selection after 3 of 10 (docs/benchmarks.md).

Given initial centroids
    ``init_indices (B, K)`` names the points that are the initial centroids of a single run (indices may repeat),
    in place of the deterministic initialisation. From there the iterations are plain Lloyd iterations: the same
    assignments as scikit-learn's ``KMeans(init=C, n_init=1)`` (Euclidean) and as a textbook spherical k-means
    (cosine) whenever no cluster empties (tests/test_reference_equivalence.py).

Empty clusters
    A cluster that receives no point keeps its previous centroid (and so does a cosine cluster whose sum of points
    vanishes); it can win points back in a later iteration. scikit-learn instead moves an empty cluster's centre to
    the point farthest from its own centre, so on runs where a cluster empties the two can differ; the test checks
    this keep-the-centroid rule against a NumPy reference.

Degenerate inputs give finite results: constant features, ``K > N`` (centres repeat; the extra clusters stay
empty), zero vectors in cosine mode, and empty clusters.
"""
from typing import Literal, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

Metric = Literal['cosine', 'euclidean']

# A cosine cluster whose sum of (normalised) points is shorter than this has no direction: it keeps its centroid.
_COSINE_EPS = 1e-6


class KMeansResult(NamedTuple):
    """Result of :func:`batched_kmeans`, in float32 / int64.

    Attributes:
        centroids: ``(B, K, D)`` cluster centres (unit-norm in cosine mode, unless a cluster only held zero vectors).
        assignment: ``(B, N)`` index in ``[0, K)`` of the centroid nearest to each point (ties: the lowest index).
        inertia: ``(B,)`` sum over the points of the squared distance to their assigned centroid (see module doc).
    """

    centroids: Tensor
    assignment: Tensor
    inertia: Tensor


def _prepare(x: Tensor, metric: Metric) -> Tensor:
    """Detach and cast ``x`` to float32; L2-normalise the last dimension in cosine mode (zero vectors stay zero)."""
    x = x.detach().float()
    return F.normalize(x, dim=-1) if metric == 'cosine' else x


def _gram(points: Tensor, metric: Metric) -> tuple[Tensor, Optional[Tensor]]:
    """Gram matrix ``(B, N, N)`` of the (in cosine mode: L2-normalised) points, and the factors ``(B, N)`` that
    normalise ``points (B, N, D)`` (``None`` in Euclidean mode).

    Cosine mode normalises the ``N x N`` Gram matrix of the raw points instead of the ``N x D`` points: the same
    numbers as ``F.normalize`` (zero vectors stay zero), at ``O(N^2)`` instead of ``O(N * D)`` per problem.
    """
    gram = points @ points.transpose(1, 2)
    if metric != 'cosine':
        return gram, None
    inv_norms = gram.diagonal(dim1=1, dim2=2).sqrt().clamp_min(1e-12).reciprocal()  # F.normalize's eps
    return gram * inv_norms.unsqueeze(-1) * inv_norms.unsqueeze(-2), inv_norms


def _sq_dists(x: Tensor, centroids: Tensor) -> Tensor:
    """Squared Euclidean distances ``(B, N, K)`` between points ``(B, N, D)`` and centroids ``(B, K, D)``."""
    cross = x @ centroids.transpose(1, 2)
    return (x.square().sum(-1, keepdim=True) - 2 * cross + centroids.square().sum(-1).unsqueeze(1)).clamp_min(0)


def _gram_sq_dists(gram: Tensor) -> Tensor:
    """Pairwise squared distances ``(B, N, N)`` from the Gram matrix ``(B, N, N)`` of the points."""
    sq_norms = gram.diagonal(dim1=1, dim2=2)
    return (sq_norms.unsqueeze(-1) + sq_norms.unsqueeze(-2) - 2 * gram).clamp_min(0)


def _batch_index(x: Tensor) -> Tensor:
    """``arange(B)`` for per-problem advanced indexing of ``x (B, ...)`` (faster than ``gather`` on CPU)."""
    return torch.arange(x.shape[0], device=x.device)


def _rows(dists: Tensor, idx: Tensor) -> Tensor:
    """Rows ``dists[b, idx[b, r]]`` ``(B, R, N)`` of a ``(B, N, N)`` matrix for indices ``(B, R)``."""
    return dists[_batch_index(dists).unsqueeze(-1), idx]


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


def _point_weights(indices: Tensor, num_points: int) -> Tensor:
    """Weights ``(B, M, N)`` of centroids that are the points ``indices (B, M)``: one-hot rows."""
    return (indices.unsqueeze(-1) == torch.arange(num_points, device=indices.device)).float()


def _first_min_one_hot(dists: Tensor) -> Tensor:
    """Float32 one-hot ``(B, K, R, N)`` of the first minimum over the clusters (dim 1) of ``dists (B, K, R, N)``.

    The one-hot of ``dists.argmin(1)`` (ties go to the lowest index), built from element-wise ops, which are far
    faster on CPU than ``argmin`` over a non-innermost dimension.
    """
    is_min = dists == dists.amin(1, keepdim=True)
    taken = is_min[:, 0]
    one_hot = [taken]
    for k in range(1, dists.shape[1]):
        first = is_min[:, k] & ~taken
        one_hot.append(first)
        taken = taken | first
    return torch.stack(one_hot, 1).float()


def _scores(weights: Tensor, cross: Tensor, num_clusters: int) -> Tensor:
    """``|c|^2 - 2 <c, x_n>`` ``(B, K, R, N)``: squared distances less ``|x_n|^2``, from the Lloyd state.

    ``weights (B, K * R, N)`` are the centroids as weights over the points (cluster-major: row ``k * R + r`` is
    cluster ``k`` of run ``r``) and ``cross = weights @ gram`` their inner products with the points.
    """
    centroid_sq_norms = (weights * cross).sum(-1, keepdim=True)
    return torch.add(centroid_sq_norms, cross, alpha=-2).unflatten(1, (num_clusters, -1))


def _centroid_scale(members: Tensor, members_gram: Tensor, metric: Metric) -> tuple[Tensor, Tensor]:
    """Per-cluster ``(scale, stale)`` ``(B, M, 1)`` turning memberships ``(B, M, N)`` into centroid weights.

    ``scale`` is 1 / count (Euclidean mean) or 1 / |sum| (cosine: normalised sum, the norm read off the Gram matrix
    via ``members_gram = members @ gram``). ``stale`` is 1 for clusters that keep their previous centroid (empty, or
    a cosine sum that vanishes), where ``members * scale`` is 0, and 0 elsewhere.
    """
    if metric == 'cosine':
        norm = (members * members_gram).sum(-1, keepdim=True).clamp_min(0).sqrt()
        stale = (norm <= _COSINE_EPS).float()
        return (1 - stale) / norm.clamp_min(_COSINE_EPS), stale
    counts = members.sum(-1, keepdim=True)
    return 1 / counts.clamp_min(1), (counts == 0).float()


def _lloyd(gram: Tensor, weights: Tensor, cross: Tensor, num_clusters: int, num_iters: int,
           metric: Metric) -> tuple[Tensor, Tensor]:
    """``num_iters`` Lloyd iterations of ``R`` runs at once on the state ``weights``, ``cross`` (see :func:`_scores`).

    Carrying ``cross = weights @ gram`` along costs one ``(B, K * R, N) @ (B, N, N)`` product per iteration.
    """
    for _ in range(num_iters):
        members = _first_min_one_hot(_scores(weights, cross, num_clusters)).flatten(1, 2)  # (B, K * R, N)
        members_gram = members @ gram
        scale, stale = _centroid_scale(members, members_gram, metric)
        weights = torch.addcmul(members * scale, weights, stale)  # the new centroid, or the old one where stale
        cross = torch.addcmul(members_gram * scale, cross, stale)
    return weights, cross


def _pick_run(state: Tensor, best: Tensor, num_clusters: int) -> Tensor:
    """Run ``best[b]`` ``(B, K, N)`` of a Lloyd state ``(B, K * R, N)`` (cluster-major, see :func:`_scores`)."""
    return state.unflatten(1, (num_clusters, -1))[_batch_index(state), :, best]


def _run_sq_dists(gram: Tensor, weights: Tensor, cross: Tensor, num_clusters: int) -> Tensor:
    """Squared distances ``(B, K, R, N)`` from the centroids of every run to the points."""
    sq_norms = gram.diagonal(dim1=1, dim2=2)[:, None, None]  # (B, 1, 1, N)
    return (_scores(weights, cross, num_clusters) + sq_norms).clamp_min(0)


def _keep_best_run(gram: Tensor, weights: Tensor, cross: Tensor, num_clusters: int) -> tuple[Tensor, Tensor]:
    """Lloyd state ``weights, cross`` ``(B, K, N)`` (one run) of each problem's lowest-inertia run."""
    best = _run_sq_dists(gram, weights, cross, num_clusters).amin(1).sum(-1).argmin(-1)  # (B,); ties: earliest run
    return _pick_run(weights, best, num_clusters), _pick_run(cross, best, num_clusters)


def _check_args(x: Tensor, num_clusters: int, num_iters: int, metric: str, num_inits: int, select_after: int,
                init_indices: Optional[Tensor]) -> None:
    """Raise ``ValueError`` for arguments outside the documented ranges (static checks only)."""
    if x.dim() != 3:
        raise ValueError(f'x must be (B, N, D), got shape {tuple(x.shape)}')
    if metric not in ('cosine', 'euclidean'):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if num_clusters < 1 or num_iters < 0 or num_inits < 1 or select_after < 0:
        raise ValueError(f'need num_clusters >= 1 and num_inits >= 1, num_iters >= 0 and select_after >= 0, got '
                         f'{num_clusters}, {num_inits}, {num_iters}, {select_after}')
    if init_indices is not None and (tuple(init_indices.shape) != (x.shape[0], num_clusters)
                                     or init_indices.is_floating_point()):
        raise ValueError(f'init_indices must be integer point indices of shape (B, K) = {(x.shape[0], num_clusters)}, '
                         f'got {init_indices.dtype} {tuple(init_indices.shape)}')


def batched_kmeans(x: Tensor,
                   num_clusters: int,
                   num_iters: int = 6,
                   metric: Metric = 'cosine',
                   num_inits: int = 6,
                   select_after: int = 2,
                   init_indices: Optional[Tensor] = None) -> KMeansResult:
    """Cluster each of ``B`` point sets independently into ``K`` clusters with a fixed number of Lloyd iterations.

    Args:
        x: ``(B, N, D)`` points, any floating dtype (computed in float32, not differentiated).
        num_clusters: ``K``, the number of clusters per problem (may exceed ``N``: extra clusters stay empty).
        num_iters: Lloyd iterations (fixed, no early stop).
        metric: ``'cosine'`` (spherical k-means) or ``'euclidean'``; see the module docstring.
        num_inits: ``R``, deterministic runs per problem (capped at ``N``), see the module docstring.
        select_after: Lloyd iterations that all ``R`` runs make; then only each problem's lowest-inertia run goes on
            for the remaining ``num_iters - select_after`` iterations (``select_after >= num_iters``: all runs make
            every iteration and the best is returned).
        init_indices: optional ``(B, K)`` int64 indices in ``[0, N)`` of the points that are the initial centroids
            (one run; ``num_inits`` and ``select_after`` are then unused).

    Returns:
        :class:`KMeansResult` with ``centroids (B, K, D)`` float32, ``assignment (B, N)`` int64 (each point's nearest
        final centroid) and ``inertia (B,)`` float32 of that assignment.
    """
    _check_args(x, num_clusters, num_iters, metric, num_inits, select_after, init_indices)
    if init_indices is not None:
        num_inits, select_after = 1, 0
    with torch.autocast(device_type=x.device.type, enabled=False):  # float32 under AMP too (bf16 / fp16 Gram)
        return _kmeans_fp32(x.detach().float(), num_clusters, num_iters, metric, num_inits, select_after, init_indices)


def _kmeans_fp32(points: Tensor, num_clusters: int, num_iters: int, metric: Metric, num_inits: int,
                 select_after: int, init_indices: Optional[Tensor]) -> KMeansResult:
    """:func:`batched_kmeans` on float32 points ``(B, N, D)``, autocast off."""
    gram, inv_norms = _gram(points, metric)  # (B, N, N), (B, N)
    if init_indices is None:
        dists = _gram_sq_dists(gram)
        start = _init_indices(dists, _seed_indices(dists, num_inits), num_clusters)  # (B, R, K)
        start = start.transpose(1, 2).flatten(1)  # (B, K * R), cluster-major
    else:
        start = init_indices.to(points.device, torch.long)  # (B, K): R = 1
    weights, cross = _point_weights(start, points.shape[1]), _rows(gram, start)
    weights, cross = _lloyd(gram, weights, cross, num_clusters, min(select_after, num_iters), metric)
    weights, cross = _keep_best_run(gram, weights, cross, num_clusters)
    weights, cross = _lloyd(gram, weights, cross, num_clusters, max(num_iters - select_after, 0), metric)
    point_dists, assignment = _run_sq_dists(gram, weights, cross, num_clusters).squeeze(2).min(1)
    if inv_norms is not None:  # centroids of the normalised points
        weights = weights * inv_norms.unsqueeze(1)
    return KMeansResult(weights @ points, assignment, point_dists.sum(-1))


def assign_to_centroids(x: Tensor, centroids: Tensor, metric: Metric = 'cosine') -> Tensor:
    """Index ``(B, N)`` int64 of the nearest centroid ``(B, K, D)`` to each point ``(B, N, D)``.

    In cosine mode both points and centroids are L2-normalised first, so this is the highest cosine similarity.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _sq_dists(_prepare(x, metric), _prepare(centroids, metric)).argmin(-1)


def gather_assigned(centroids: Tensor, assignment: Tensor) -> Tensor:
    """Centroid ``(B, N, D)`` assigned to each point, from ``centroids (B, K, D)`` and ``assignment (B, N)``."""
    return centroids.gather(1, assignment.unsqueeze(-1).expand(-1, -1, centroids.shape[-1]))

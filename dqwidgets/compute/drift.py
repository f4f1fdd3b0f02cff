"""Drift between splits and non-IID row order, tested on the kNN graph.

Both tests follow the kNN approach of Cummings, Chen, Mueller et al., "Detecting Dataset Drift and
Non-IID Sampling via k-Nearest Neighbors" (DMLR workshop at ICML 2023): if samples are exchangeable,
a sample's nearest neighbours carry no information about *which split* it came from or *where in
the file* it sits. The statistic is computed on the kNN graph that the analysis already has, and the
p-value comes from a permutation test (relabelling the nodes at random), which is exact whatever the
dependence between overlapping neighbourhoods.

- :func:`knn_group_test` — the share of kNN edges that join two samples of the same group (a
  Schilling 1986 / Henze 1988 nearest-neighbour two-sample statistic), reported as its excess over
  what random mixing predicts.
- :func:`knn_order_test` — the Kolmogorov–Smirnov distance between the distribution of row-index
  gaps ``|i - j|`` over kNN edges and the gap distribution of random pairs.

For large graphs both use the edges of a random subset of ``max_nodes`` samples; the observed
statistic and its permutation null are computed on the same subset.
"""

from __future__ import annotations

import numpy as np


def _edges(neighbors: np.ndarray, keep_nodes: np.ndarray, max_nodes: int, rng: np.random.Generator):
    """Directed kNN edges (source, target) among ``keep_nodes``, from at most ``max_nodes`` sources."""
    neighbors = np.asarray(neighbors)
    if neighbors.ndim != 2 or not np.issubdtype(neighbors.dtype, np.integer):
        raise ValueError(
            f"neighbors must be an N x k integer array of neighbour indices, got shape {neighbors.shape} "
            f"dtype {neighbors.dtype}; pass KnnGraph.indices"
        )
    n, k = neighbors.shape
    sources = np.flatnonzero(keep_nodes)
    if sources.size > max_nodes:
        sources = np.sort(rng.choice(sources, size=max_nodes, replace=False))
    src = np.repeat(sources, k)
    dst = neighbors[sources].reshape(-1).astype(np.int64)
    ok = (dst >= 0) & (dst < n) & (dst != src)
    src, dst = src[ok], dst[ok]
    ok = keep_nodes[dst]
    return src[ok], dst[ok]


def _p_value(observed: float, null: np.ndarray) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def knn_group_test(
    neighbors: np.ndarray,
    groups: np.ndarray,
    n_permutations: int = 200,
    seed: int = 0,
    max_nodes: int = 20_000,
) -> tuple[float, float]:
    """Are the groups (splits) mixed in the kNN graph as chance predicts? (Cummings et al. 2023)

    ``groups`` holds a group code per sample (-1 = no group, left out). Returns
    ``(statistic, p_value)``: statistic = (s - e) / (1 - e), where s is the share of kNN edges
    joining two samples of the same group and e its expectation under random group assignment;
    0 = mixed as chance predicts, 1 = no edge crosses groups. The one-sided permutation p-value is
    small when the groups are more separated than chance (drift, or a split that is not random).
    NaN, NaN when fewer than two groups are present.
    """
    groups = np.asarray(groups, dtype=np.int64)
    if groups.shape != (np.asarray(neighbors).shape[0],):
        raise ValueError(
            f"knn_group_test: groups has shape {groups.shape} but the graph has {np.asarray(neighbors).shape[0]} "
            "rows; pass one group code per sample"
        )
    keep = groups >= 0
    if np.unique(groups[keep]).size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    src, dst = _edges(neighbors, keep, max_nodes, rng)
    if src.size == 0:
        return float("nan"), float("nan")
    counts = np.bincount(groups[keep]).astype(np.float64)
    m = counts.sum()
    expected = float(np.sum(counts * (counts - 1)) / (m * (m - 1)))

    nodes, local = np.unique(np.concatenate([src, dst]), return_inverse=True)
    local_src, local_dst = local[: src.size], local[src.size :]
    observed = float(np.mean(groups[src] == groups[dst]))
    null = np.empty(n_permutations)
    codes = np.arange(counts.size)
    for b in range(n_permutations):
        # under the null the groups of the nodes involved are a draw without replacement from all
        # groups: multivariate hypergeometric counts, in random order (O(nodes), not O(N))
        drawn = rng.permutation(np.repeat(codes, rng.multivariate_hypergeometric(counts.astype(np.int64), nodes.size)))
        null[b] = np.mean(drawn[local_src] == drawn[local_dst])
    statistic = (observed - expected) / (1.0 - expected) if expected < 1 else 0.0
    return float(statistic), _p_value(observed, null)


def _gap_ks(gaps: np.ndarray, n: int, grid: int = 4096) -> float:
    """KS distance between the empirical CDF of row gaps and the gap CDF of a uniform random pair,
    F(d) = (2 n d - d (d + 1)) / (n (n - 1)) for d = 1..n-1. Both are step functions on the
    integers, so the supremum is reached at an integer; it is taken over every integer when
    n <= grid, else over ``grid`` evenly spaced gaps (the same points for the observed graph and
    its permutations, so the test stays exact), with one cumulative count."""
    bins = min(grid, n - 1)
    which = ((gaps - 1) * bins) // (n - 1)  # gaps 1..n-1 -> bins 0..bins-1, in order
    ecdf = np.cumsum(np.bincount(which, minlength=bins)[:bins]) / gaps.size
    top = ((np.arange(1, bins + 1) * (n - 1) - 1) // bins + 1).astype(np.float64)  # largest gap in each bin
    null_cdf = (2.0 * n * top - top * (top + 1.0)) / (n * (n - 1.0))
    return float(np.max(np.abs(ecdf - null_cdf)))


def knn_order_test(
    neighbors: np.ndarray, n_permutations: int = 200, seed: int = 0, max_nodes: int = 20_000
) -> tuple[float, float]:
    """Non-IID row order: are kNN neighbours also close in row order more than chance?
    (Cummings et al. 2023)

    Returns ``(statistic, p_value)``: the KS distance in [0, 1] between the row-gap distribution of
    kNN edges and that of random pairs (near 0 for a shuffled file, large when the file is sorted or
    grouped by something the embedding sees), and its permutation p-value (rows relabelled at random).
    NaN, NaN for fewer than 3 rows.
    """
    neighbors = np.asarray(neighbors)
    n = neighbors.shape[0] if neighbors.ndim == 2 else 0
    if n < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    src, dst = _edges(neighbors, np.ones(n, dtype=bool), max_nodes, rng)
    if src.size == 0:
        return float("nan"), float("nan")
    observed = _gap_ks(np.abs(src - dst), n)
    nodes, local = np.unique(np.concatenate([src, dst]), return_inverse=True)
    local_src, local_dst = local[: src.size], local[src.size :]
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        position = rng.choice(n, size=nodes.size, replace=False)
        null[b] = _gap_ks(np.abs(position[local_src] - position[local_dst]), n)
    return observed, _p_value(observed, null)

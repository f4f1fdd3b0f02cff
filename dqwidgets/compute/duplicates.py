"""Exact and near duplicates from content hashes and the kNN graph.

Near duplicates follow the radius rule of cleanlab's near-duplicate check and of SemDeDup
(Abbas, Tirumala, Simig, Ganguli & Morcos, "SemDeDup: Data-efficient learning at web-scale through
semantic deduplication", 2023): two samples are near copies when their embeddings are much closer
than a typical sample is to its nearest neighbour. Pairs are read off the one kNN graph (no second
search) and joined into groups by connected components.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# A pair is a near copy when it is closer than (1 - threshold) x the sample's k-th neighbour distance.
DEFAULT_THRESHOLD = 0.87  # the fixed radius (13% of the typical distance); the floor of the data-driven default
MAX_RADIUS = 0.5  # never call a pair at more than half the typical neighbour distance a near copy
Z_COPY = 4.0  # near copies lie this many robust standard deviations below the typical log distance


def default_threshold(closeness: np.ndarray) -> float:
    """The default closeness threshold from the distribution of every sample's nearest-neighbour
    closeness (``near_duplicate_score(...)[:, 0]``): near copies are outliers *below* the typical
    nearest-neighbour distance. On the log of the distance ratio ``r = 1 - closeness``, a normal is
    fitted to the left half of the bulk (centre = median, scale = median - 15.9th percentile; the
    copies, a small share, do not move either), and pairs more than ``Z_COPY`` of its standard
    deviations below the centre are near copies; the radius is kept between the fixed 13% of the
    scale (cleanlab's near-duplicate radius) and half of it."""
    c = np.asarray(closeness, dtype=np.float64)
    c = c[np.isfinite(c)]
    if len(c) < 20:
        return DEFAULT_THRESHOLD
    log_r = np.log(np.maximum(1.0 - c, 1e-6))
    med = float(np.median(log_r))
    sd = float(med - np.quantile(log_r, 0.15866))
    if not sd > 0:
        return DEFAULT_THRESHOLD
    radius = float(np.clip(np.exp(med - Z_COPY * sd), 1.0 - DEFAULT_THRESHOLD, MAX_RADIUS))
    return float(np.clip(1.0 - radius, 0.0, DEFAULT_THRESHOLD))


def _euclidean_scale(distances: np.ndarray, metric: str) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float64)
    return np.sqrt(np.maximum(2.0 * d, 0.0)) if metric == "cosine" else d  # |a-b| of unit vectors


def near_duplicate_score(distances: np.ndarray, metric: str = "cosine", typical: float | None = None) -> np.ndarray:
    """Per-edge closeness in [0, 1], clipped; 1 = identical.

    By default on the sample's own scale: ``1 - d_ij / d_ik``, the edge's distance over the distance to
    the sample's k-th (farthest listed) neighbour. In a dense region every distance is small, so a
    global scale would call its distinct samples copies of each other (a tight cluster of 40
    different samples became 40 "duplicates"); relative to its own neighbourhood a near copy is
    still close to 0 and a distinct neighbour is not. ``typical``: scale by this one distance
    (euclidean scale) instead, e.g. the median nearest-neighbour distance of a reference."""
    d = _euclidean_scale(distances, metric)
    if typical is not None:
        return np.clip(1.0 - d / typical, 0.0, 1.0).astype(np.float32)
    scale = d[:, -1:] if d.ndim == 2 and d.shape[1] > 1 else np.full((len(d), 1), typical_nn_distance(distances, metric))
    with np.errstate(divide="ignore", invalid="ignore"):
        close = np.where(d <= 0, 1.0, 1.0 - d / np.maximum(scale, 1e-12))
    return np.clip(close, 0.0, 1.0).astype(np.float32)


def typical_nn_distance(distances: np.ndarray, metric: str = "cosine") -> float:
    d1 = _euclidean_scale(distances[:, 0], metric)
    med = float(np.median(d1)) if len(d1) else 0.0
    return med if med > 0 else float(d1.max() if len(d1) and d1.max() > 0 else 1.0)


def duplicate_groups(neighbors: np.ndarray, edge_score: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                     content_hashes: np.ndarray | None = None, n_total: int | None = None,
                     node_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(duplicate_group, is_duplicate)`` over ``n_total`` samples.

    ``neighbors``/``edge_score`` are the graph rows of the samples ``node_ids`` (positions in 0..n_total-1,
    default all); graph entries are positions in ``node_ids``. Every edge with score >= ``threshold``
    and every pair with equal non-empty ``content_hashes`` joins a group. Groups of one get id -1; in
    each group every member but the first (lowest position) is flagged."""
    n_graph = len(neighbors)
    n_total = n_graph if n_total is None else n_total
    node_ids = np.arange(n_graph) if node_ids is None else np.asarray(node_ids)
    rows, cols = [], []
    mask = edge_score >= threshold
    r, c = np.nonzero(mask)
    rows.append(node_ids[r])
    cols.append(node_ids[neighbors[r, c]])
    if content_hashes is not None:
        h = np.asarray(content_hashes, dtype=object)
        present = np.flatnonzero(np.array([x is not None and x == x and x != "" for x in h], dtype=bool))
        if len(present):
            _, first, inv = np.unique(h[present].astype(str), return_index=True, return_inverse=True)
            leaders = present[first]  # the first member of each hash class links the others
            rows.append(present)
            cols.append(leaders[inv])
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    adj = coo_matrix((np.ones(len(rows_a), dtype=np.int8), (rows_a, cols_a)), shape=(n_total, n_total))
    _, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp)
    in_group = sizes[comp] > 1
    # renumber groups 0..G-1 in order of their first member
    group = np.full(n_total, -1, dtype=np.int64)
    members = np.flatnonzero(in_group)
    _, first_pos, inv = np.unique(comp[members], return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(members[first_pos]))
    group[members] = rank[inv]
    is_dup = np.zeros(n_total, dtype=bool)
    is_dup[members] = True
    is_dup[members[first_pos]] = False
    return group, is_dup


def cross_split_groups(group: np.ndarray, split_codes: np.ndarray) -> np.ndarray:
    """Ids of duplicate groups whose members lie in more than one split (train/test leakage)."""
    m = group >= 0
    if not m.any():
        return np.zeros(0, dtype=np.int64)
    g, s = group[m], split_codes[m]
    pairs = np.unique(np.stack([g, s], 1), axis=0)
    counts = np.bincount(pairs[:, 0])
    return np.flatnonzero(counts > 1)

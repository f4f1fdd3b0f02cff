"""2-D layouts of the samples: an instant PCA map, then UMAP on the analysis' own kNN graph.

UMAP: McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection for Dimension
Reduction", 2018 (the ``umap-learn`` package; cuML's GPU UMAP when it is installed and a GPU is
used). The graph from ``knn_graph`` is handed to UMAP's fuzzy simplicial set directly, so no second
neighbour search runs, and the optimisation starts from the PCA layout, which it therefore refines.
"""

from __future__ import annotations

import numpy as np
import torch

from dqwidgets.compute.knn import KnnGraph


def pca_layout(X, seed: int = 0) -> np.ndarray:
    """N x 2 float32: the first two principal components of ``X`` (randomised SVD in torch),
    scaled to [-10, 10] along the wider axis."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if len(X_t) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    X_t = X_t - X_t.mean(0)
    q = min(2, X_t.shape[1])
    torch.manual_seed(seed)
    if min(X_t.shape) > 10:
        _, _, V = torch.pca_lowrank(X_t, q=q + 4, center=False, niter=3)
        Y = X_t @ V[:, :q]
    else:
        _, _, Vh = torch.linalg.svd(X_t, full_matrices=False)
        Y = X_t @ Vh[:q].T
    Y = Y.numpy()
    if q < 2:
        Y = np.hstack([Y, np.zeros((len(Y), 2 - q), dtype=Y.dtype)])
    span = np.abs(Y).max()
    return (Y * (10.0 / span if span > 0 else 1.0)).astype(np.float32)


def umap_epochs(n: int) -> int:
    """Optimisation epochs: umap-learn's defaults (500 below 10k samples, 200 above), fewer for large
    N, where the PCA start and the many edges per epoch make more passes change little."""
    if n <= 10_000:
        return 500
    if n <= 50_000:
        return 200
    return int(max(60, 200 * 50_000 / n))


_NUMBA_OPTIONS = ("parallel", "fastmath", "nogil", "boundscheck", "error_model")


def _with_disk_cache(module, name: str) -> None:
    """Recompile ``module.name`` (a numba function) with numba's on-disk cache, same options."""
    import numba

    fn = getattr(module, name, None)
    if fn is None or not hasattr(fn, "py_func") or fn.targetoptions.get("cache"):
        return
    opts = {k: v for k, v in fn.targetoptions.items() if k in _NUMBA_OPTIONS}
    setattr(module, name, numba.njit(fn.py_func, locals=dict(getattr(fn, "locals", {}) or {}), cache=True, **opts))


def _cache_umap_kernels():
    """umap-learn compiles its graph and SGD kernels without numba's disk cache, i.e. again in every
    process (20-40 s on 2 cores). Compiling the same functions with ``cache=True`` lets every later
    process load them from disk; the computation itself is umap-learn's, unchanged."""
    import umap.layouts as layouts
    import umap.umap_ as umap_

    if getattr(layouts, "_dqwidgets_cached", False):
        return
    try:
        fn = layouts._optimize_layout_euclidean_single_epoch
        import numba

        layouts._nb_optimize_layout_euclidean_single_epoch_parallel = numba.njit(
            fn, fastmath=True, parallel=True, cache=True)
        layouts._nb_optimize_layout_euclidean_single_epoch = numba.njit(fn, fastmath=True, parallel=False,
                                                                        cache=True)
        for name in ("smooth_knn_dist", "compute_membership_strengths"):
            _with_disk_cache(umap_, name)
    except Exception:  # another umap-learn layout: keep its own kernels
        return
    layouts._dqwidgets_cached = True


def umap_layout(graph: KnnGraph, init: np.ndarray | None = None, n_neighbors: int | None = None,
                min_dist: float = 0.1, n_epochs: int | None = None, seed: int = 0,
                features=None, prefer_gpu: bool = False) -> np.ndarray:
    """N x 2 float32 UMAP layout from a kNN graph (self excluded, nearest first)."""
    n = len(graph)
    if prefer_gpu and features is not None:
        gpu = _cuml_layout(features, graph, min_dist, seed)
        if gpu is not None:
            return gpu
    from umap.umap_ import find_ab_params, fuzzy_simplicial_set, simplicial_set_embedding

    _cache_umap_kernels()

    k = graph.k if n_neighbors is None else min(n_neighbors - 1, graph.k)
    idx = np.hstack([np.arange(n, dtype=np.int64)[:, None], graph.indices[:, :k]]).astype(np.int32)
    dist = graph.distances[:, :k].astype(np.float32)
    if graph.metric == "cosine":  # euclidean distance between unit vectors: a metric, like UMAP expects
        dist = np.sqrt(np.maximum(2.0 * dist, 0.0))
    dist = np.hstack([np.zeros((n, 1), dtype=np.float32), dist])
    rng = np.random.RandomState(seed)
    fuzzy, _, _ = fuzzy_simplicial_set(np.empty((n, 0), dtype=np.float32), k + 1, rng, "euclidean",
                                       knn_indices=idx, knn_dists=dist)
    a, b = find_ab_params(1.0, min_dist)
    if init is None:
        init = pca_layout(features, seed) if features is not None else "random"
    elif np.unique(init, axis=0).shape[0] < n:  # umap-learn needs a KD-tree for ties; jitter instead
        init = init + np.random.default_rng(seed).normal(scale=1e-3, size=init.shape).astype(np.float32)
    emb, _ = simplicial_set_embedding(
        None, fuzzy, 2, 1.0, a, b, 1.0, 5, umap_epochs(n) if n_epochs is None else n_epochs, init, rng,
        "euclidean", {}, False, {}, False, parallel=True, verbose=False)
    return np.asarray(emb, dtype=np.float32)


def _cuml_layout(features, graph: KnnGraph, min_dist: float, seed: int):
    try:
        from cuml.manifold import UMAP as CumlUMAP  # noqa: N811
        from scipy.sparse import csr_matrix
    except ImportError:
        return None
    n, k = graph.indices.shape
    knn = csr_matrix((graph.distances.ravel().astype(np.float32),
                      (np.repeat(np.arange(n), k), graph.indices.ravel())), shape=(n, n))
    model = CumlUMAP(n_neighbors=k, min_dist=min_dist, random_state=seed)
    return np.asarray(model.fit_transform(np.asarray(features, dtype=np.float32), knn_graph=knn), dtype=np.float32)

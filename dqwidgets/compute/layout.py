"""2-D layouts of the samples: an instant PCA map, then UMAP on the analysis' own kNN graph.

UMAP: McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection for Dimension
Reduction", 2018. Two optimisers of the same objective on the same graph:

- ``umap_layout``: the ``umap-learn`` package (``final_layout`` uses cuML's GPU UMAP instead when it
  is installed and a GPU is used, else on a GPU the torch optimiser below). The graph from ``knn_graph`` is handed to UMAP's fuzzy simplicial set directly, so no second
  neighbour search runs, and the optimisation starts from the PCA layout, which it therefore refines.
- ``umap_torch_layout``: the same fuzzy simplicial set (section 3.1 of the paper: per-sample ``rho``
  and ``sigma`` by bisection, fuzzy union ``A + A^T - A * A^T``) and the same edge-sampled SGD with
  negative sampling (section 4.2; gradient clipping at 4, learning rate falling linearly to 0), written
  as whole-epoch tensor operations in torch: every sampled edge of an epoch moves its two ends at once
  from the epoch's start positions (as cuML does on a GPU) instead of one edge after another. Nothing
  is compiled, so it starts at once, and it runs on a GPU when the analysis does.

How close each layout keeps the data's neighbourhoods (trustworthiness@15, 15-NN preservation) beside
umap-learn's default ``fit_transform``: bench/results/bench_speed.md.
"""

from __future__ import annotations

import numpy as np
import torch

from dqwidgets.compute.device import cpu_threads_for
from dqwidgets.compute.knn import KnnGraph

PCA_COVARIANCE_MAX_D = 512  # pca_layout: an exact D x D eigendecomposition up to this many features

def pca_layout(X, seed: int = 0) -> np.ndarray:
    """N x 2 float32: the first two principal components of ``X`` (up to 512 features: eigenvectors
    of the D x D covariance, one pass over the rows; wider: randomised SVD in torch), scaled to
    [-10, 10] along the wider axis; each axis' sign is fixed (its largest loading positive)."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if len(X_t) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    X_t = X_t - X_t.mean(0)
    q = min(2, X_t.shape[1])
    torch.manual_seed(seed)
    if len(X_t) > 10 and 10 < X_t.shape[1] <= PCA_COVARIANCE_MAX_D:
        with cpu_threads_for(X_t.shape[0] * X_t.shape[1] ** 2, X_t.device):
            cov = (X_t.T @ X_t).double()
        V = torch.linalg.eigh(cov)[1][:, -q:].flip(1)
        V = V * torch.sign(V.gather(0, V.abs().argmax(0, keepdim=True)))
        Y = X_t @ V.float()
    elif min(X_t.shape) > 10:
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
    """Optimisation epochs: 300 up to 10k samples (umap-learn's default is 500 there; from the PCA
    start 300 keep Fashion-MNIST's 5k neighbourhoods as well: trustworthiness@15 0.9833 vs 0.9836,
    15-NN kept 0.376 vs 0.381, umap-learn's default fit_transform 0.9839 / 0.382, for 0.6x the SGD
    time), umap-learn's 200 up to 50k, fewer for large N, where the PCA start and the many edges per
    epoch make more passes change little."""
    if n <= 10_000:
        return 300
    if n <= 50_000:
        return 200
    return int(max(60, 200 * 50_000 / n))


def fuzzy_graph(graph: KnnGraph, device=None):
    """UMAP's fuzzy simplicial set of a kNN graph as ``(rows, cols, weights)`` torch tensors (each
    undirected edge once per direction, weights in (0, 1])."""
    n, k = graph.indices.shape
    dev = torch.device("cpu") if device is None else torch.device(device)
    d = torch.as_tensor(_metric_distances(graph), device=dev)
    positive = torch.where(d > 0, d, torch.full_like(d, float("inf")))
    rho = positive.min(1).values
    rho = torch.where(torch.isfinite(rho), rho, torch.zeros_like(rho))      # all neighbours at distance 0
    excess = (d - rho[:, None]).clamp_min(0)
    target = float(np.log2(k + 1))            # umap-learn counts the sample itself among its k + 1
    lo, hi = torch.zeros(n, device=dev), torch.full((n,), float("inf"), device=dev)
    sigma = torch.ones(n, device=dev)
    for _ in range(64):                       # bisection on sigma: sum_j exp(-excess_ij / sigma) = target
        over = torch.exp(-excess / sigma[:, None]).sum(1) > target
        hi = torch.where(over, sigma, hi)
        lo = torch.where(over, lo, sigma)
        sigma = torch.where(torch.isinf(hi), sigma * 2, (lo + hi) / 2)
    sigma = torch.maximum(sigma, 1e-3 * d.mean(1).clamp_min(1e-12))
    w = torch.exp(-excess / sigma[:, None]).flatten().cpu().numpy()
    from scipy.sparse import coo_matrix

    rows = np.repeat(np.arange(n), k)
    A = coo_matrix((w, (rows, graph.indices.ravel())), shape=(n, n)).tocsr()
    A.sum_duplicates()
    At = A.T.tocsr()
    U = (A + At - A.multiply(At)).tocoo()
    keep = U.data > 0
    return (torch.as_tensor(U.row[keep].astype(np.int64), device=dev),
            torch.as_tensor(U.col[keep].astype(np.int64), device=dev),
            torch.as_tensor(U.data[keep].astype(np.float32), device=dev))


def _metric_distances(graph: KnnGraph) -> np.ndarray:
    d = graph.distances.astype(np.float32)
    if graph.metric == "cosine":  # euclidean distance between unit vectors: a metric, like UMAP expects
        d = np.sqrt(np.maximum(2.0 * d, 0.0))
    return d


def curve_ab(min_dist: float = 0.1, spread: float = 1.0) -> tuple[float, float]:
    """``a, b`` of the low-dimensional similarity ``1 / (1 + a d^(2b))``, least-squares fitted to the
    offset exponential that is 1 up to ``min_dist`` (section 4.1 of the UMAP paper)."""
    from scipy.optimize import curve_fit

    x = np.linspace(0, spread * 3, 300)
    y = np.where(x < min_dist, 1.0, np.exp(-(x - min_dist) / spread))
    (a, b), _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), x, y)
    return float(a), float(b)


def umap_torch_layout(graph: KnnGraph, init: np.ndarray | None = None, min_dist: float = 0.1,
                      n_epochs: int | None = None, seed: int = 0, features=None, device=None,
                      negative_rate: int = 5) -> np.ndarray:
    """N x 2 float32 UMAP layout from a kNN graph, optimised in torch (see the module docstring)."""
    n = len(graph)
    dev = torch.device("cpu") if device is None else torch.device(device)
    with cpu_threads_for(n * graph.k * 64, dev):     # many small operations: one thread on a busy CPU
        return _umap_torch(graph, init, min_dist, umap_epochs(n) if n_epochs is None else int(n_epochs),
                           seed, features, dev, negative_rate)


def _umap_torch(graph, init, min_dist, epochs, seed, features, dev, negative_rate):
    n = len(graph)
    rows, cols, w = fuzzy_graph(graph, dev)
    keep = w >= w.max() / epochs                # as umap-learn: edges sampled less than once are dropped
    rows, cols, w = rows[keep], cols[keep], w[keep]
    p = w / w.max()                             # an edge is sampled w / max(w) times per epoch
    if init is None:
        init = pca_layout(features, seed) if features is not None else \
            np.random.default_rng(seed).uniform(-10, 10, (n, 2)).astype(np.float32)
    Y = torch.as_tensor(np.asarray(init, dtype=np.float32), device=dev).clone()
    span = (Y.max(0).values - Y.min(0).values).clamp_min(1e-12)
    Y = 10.0 * (Y - Y.min(0).values) / span      # umap-learn rescales its start to [0, 10] too
    a, b = curve_ab(min_dist)
    gen = torch.Generator(device=dev).manual_seed(seed)
    _sgd(Y, rows, cols, p, a, b, epochs, negative_rate, gen)
    return Y.cpu().numpy().astype(np.float32)


def _sgd(Y, rows, cols, p, a, b, epochs, negative_rate, gen):
    n, dev = len(Y), Y.device
    for epoch in range(epochs):
        alpha = 1.0 - epoch / epochs
        pick = torch.rand(len(p), generator=gen, device=dev) < p
        i, j = rows[pick], cols[pick]
        diff = Y[i] - Y[j]
        d2 = (diff * diff).sum(1, keepdim=True)
        coef = (-2.0 * a * b) * d2.clamp_min(1e-12).pow(b - 1.0) / (a * d2.pow(b) + 1.0)
        step = (coef * diff).clamp_(-4.0, 4.0).mul_(alpha)
        Y.index_add_(0, i, step).index_add_(0, j, -step)
        ii = i.repeat_interleave(negative_rate)
        kk = torch.randint(0, n, (len(ii),), generator=gen, device=dev)
        diff = Y[ii] - Y[kk]
        d2 = (diff * diff).sum(1, keepdim=True)
        coef = (2.0 * b) / ((1e-3 + d2) * (a * d2.pow(b) + 1.0))
        step = torch.where(d2 > 0, (coef * diff).clamp_(-4.0, 4.0), torch.zeros_like(diff)).mul_(alpha)
        Y.index_add_(0, ii, step)


FINAL_LAYOUTS = ("umap", "umap-learn", "umap-torch")
# On a GPU without cuML, layout="umap" runs the torch SGD with this many times umap-learn's epochs: on
# Fashion-MNIST's 128 PCs its trustworthiness@15 / 15-NN kept (cosine) come within 0.01 of umap-learn's
# on our graph at 2x, not at 1x (bench/results/bench_layout_epochs.md: 20k, 15-NN kept 0.2389 / 0.2374
# at 2x on two seeds, 0.2295 / 0.2280 at 1x, umap-learn 0.2431); on an H200 the 1M x 512 layout took
# 2.8 s at 1x against 44.5 s for umap-learn on 16 CPU cores (bench/results/gpu-nvidia-h200.md).
GPU_TORCH_EPOCH_FACTOR = 2


def final_layout(method: str, graph: KnnGraph, init=None, seed: int = 0, features=None,
                 device=None) -> np.ndarray:
    """The map's final layout: ``"umap"`` (cuML on a GPU when installed, else on a GPU the torch SGD at
    ``GPU_TORCH_EPOCH_FACTOR`` x umap-learn's epochs, on a CPU umap-learn), ``"umap-learn"`` (umap-learn
    wherever the analysis runs) or ``"umap-torch"`` (``umap_torch_layout`` at umap-learn's epochs, on
    ``device``)."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    if method == "umap":
        if dev.type == "cuda":
            gpu = _cuml_layout(features, graph, 0.1, seed) if features is not None else None
            if gpu is not None:
                return gpu
            return umap_torch_layout(graph, init=init, seed=seed, features=features, device=dev,
                                     n_epochs=GPU_TORCH_EPOCH_FACTOR * umap_epochs(len(graph)))
        return umap_layout(graph, init=init, seed=seed, features=features)
    if method == "umap-learn":
        return umap_layout(graph, init=init, seed=seed, features=features)
    if method == "umap-torch":
        return umap_torch_layout(graph, init=init, seed=seed, features=features, device=dev)
    raise ValueError(f"layout must be one of {FINAL_LAYOUTS}, got {method!r}")


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
                features=None) -> np.ndarray:
    """N x 2 float32 UMAP layout from a kNN graph (self excluded, nearest first)."""
    n = len(graph)
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

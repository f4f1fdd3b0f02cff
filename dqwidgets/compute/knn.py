"""The one k-nearest-neighbour graph every score and the layout reuse.

Exact search is a chunked matrix product + ``topk`` in torch (never N x N in memory). For large N
on a CPU two approximate graphs are available:

- ``"ivf"`` (the default there): an inverted-file index (Jegou, Douze & Schmid, "Product
  quantization for nearest neighbor search", TPAMI 2011, section 4; the IVF-Flat of faiss): spherical
  k-means cells, and each cell's members searched exactly among the members of the ``nprobe`` cells
  nearest to it. Plain torch, so nothing is compiled at first use.
- ``"nndescent"``: NN-descent (Dong, Moses & Li, "Efficient k-nearest neighbor graph construction
  for generic similarity measures", WWW 2011; the ``pynndescent`` package umap-learn brings). Its
  numba kernels compile on first use in a process (about 100 s on 2 cores), which is why it is not the
  default (measured: bench/results/bench_analyze.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dqwidgets.compute.device import cpu_parallel_map, resolve_device

METRICS = ("cosine", "euclidean")
# Below this many samples the exact product beats NN-descent on a CPU (measured: bench/results/knn_crossover.md).
EXACT_CPU_MAX_N = 60_000
_CHUNK_ELEMENTS = 1 << 25  # similarities held at once per chunk (128 MiB of float32)


@dataclass
class KnnGraph:
    """``indices[i]`` are the k nearest other samples of row i, nearest first; ``distances`` match
    (cosine distance 1 - cos in [0, 2], or euclidean). Self is never among them."""

    indices: np.ndarray  # int64 N x k
    distances: np.ndarray  # float32 N x k
    metric: str = "cosine"
    method: str = "exact"

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def __len__(self) -> int:
        return self.indices.shape[0]


def _check(X, k, metric):
    if metric not in METRICS:
        raise ValueError(f"knn_graph: metric must be one of {METRICS}, got {metric!r}")
    if X.ndim != 2:
        raise ValueError(f"knn_graph: X must be N x D, got shape {tuple(X.shape)}")
    if k < 1:
        raise ValueError(f"knn_graph: k must be >= 1, got {k}")


def _prepare(X: torch.Tensor, metric: str) -> torch.Tensor:
    X = X.float()
    if metric == "cosine":
        X = torch.nn.functional.normalize(X, dim=1)
    return X


def _low_precision(device: torch.device, metric: str):
    """The dtype of the candidate product on ``device``: float16 on a GPU for the cosine metric (unit
    rows, so no overflow; tensor cores run it ~15x faster than float32), else None (float32 only)."""
    return torch.float16 if device.type == "cuda" and metric == "cosine" else None


def _chunk_elements(device: torch.device, itemsize: int) -> int:
    """Similarities held at once: 128 MiB on a CPU (cache-sized blocks); on a GPU up to an eighth of
    the free memory (large blocks keep the matmul and top-k kernels busy; 1M x 1M at 128 MiB would
    be 31,250 launches of each)."""
    if device.type != "cuda":
        return _CHUNK_ELEMENTS
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(_CHUNK_ELEMENTS, min(1 << 31, free // 8 // itemsize)))


# candidates kept from the low-precision product for the exact re-ranking: k + RERANK_EXTRA
RERANK_EXTRA = 16


def _search(Q: torch.Tensor, R: torch.Tensor, k: int, metric: str, self_offset: int | None,
            low_precision: torch.dtype | None | str = "auto"):
    """Top-k of prepared queries Q against prepared reference R; ``self_offset`` = index in R of
    Q's first row when Q is a slice of R (its own row is then excluded).

    ``low_precision`` (``"auto"``: float16 for cosine on a GPU, see ``_low_precision``): the product
    runs in that dtype and keeps the ``k + RERANK_EXTRA`` best candidates of each query, which are
    then re-ranked in float32, so the distances are float32 ones and the neighbours those of the
    float32 product except where similarities tie within the low precision's resolution (~1e-3 for
    float16)."""
    if low_precision == "auto":
        low_precision = _low_precision(Q.device, metric)
    n, m = Q.shape[0], R.shape[0]
    kk = min(m - (self_offset is not None), k + RERANK_EXTRA) if low_precision is not None else k
    if low_precision is not None and kk <= k:
        low_precision, kk = None, k
    elements = _chunk_elements(Q.device, 2 if low_precision is not None else 4)
    chunk = max(1, min(n, elements // max(m, 1)))
    if low_precision is not None:  # the gathered candidates (chunk x kk x D float32) stay within budget too
        chunk = max(1, min(chunk, elements // max(kk * R.shape[1], 1)))
    out_i = torch.empty((n, k), dtype=torch.int64, device=Q.device)
    out_d = torch.empty((n, k), dtype=torch.float32, device=Q.device)
    r_sq = (R * R).sum(1) if metric == "euclidean" else None
    R_low = R.to(low_precision) if low_precision is not None else None
    for s in range(0, n, chunk):
        q = Q[s:s + chunk]
        sim = q.to(low_precision) @ R_low.T if low_precision is not None else q @ R.T  # chunk x m
        if metric == "euclidean":
            sim.mul_(2).sub_(r_sq)  # 2 q.r - |r|^2 : larger = nearer (|q|^2 added back below)
        if self_offset is not None:
            rows = torch.arange(q.shape[0], device=Q.device)
            sim[rows, rows + self_offset + s] = -float("inf")
        if low_precision is not None:
            cand = torch.topk(sim, kk, dim=1).indices
            del sim
            exact = torch.bmm(R[cand], q.unsqueeze(2)).squeeze(2)  # chunk x kk, float32
            if metric == "euclidean":
                exact = exact.mul_(2).sub_(r_sq[cand])
            val, j = torch.topk(exact, k, dim=1)
            idx = cand.gather(1, j)
        else:
            val, idx = torch.topk(sim, k, dim=1)
        if metric == "cosine":
            dist = (1.0 - val).clamp_(0.0, 2.0)
        else:
            dist = ((q * q).sum(1, keepdim=True) - val).clamp_(min=0.0).sqrt_()
        out_i[s:s + chunk] = idx
        out_d[s:s + chunk] = dist
    return out_i, out_d


def knn_graph(X, k: int = 15, metric: str = "cosine", device="auto", method: str = "auto",
              seed: int = 0) -> KnnGraph:
    """The k nearest neighbours of every row of ``X`` (N x D) among the other rows.

    ``method``: ``"exact"`` (chunked torch matmul + topk), ``"ivf"`` (inverted file, torch),
    ``"nndescent"`` (pynndescent), or ``"auto"``: exact on a GPU or when N <= ``EXACT_CPU_MAX_N``,
    IVF otherwise."""
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32) if not torch.is_tensor(X) else X)
    _check(X_t, k, metric)
    n = X_t.shape[0]
    if n <= k:
        raise ValueError(f"knn_graph: {n} samples but k={k} neighbours asked; use k < N (k={max(1, n - 1)} at most)")
    dev = resolve_device(device)
    if method == "auto":
        method = "exact" if dev.type == "cuda" or n <= EXACT_CPU_MAX_N else "ivf"
    if method == "exact":
        P = _prepare(X_t.to(dev), metric)
        idx, dist = _search(P, P, k, metric, self_offset=0)
        return KnnGraph(idx.cpu().numpy(), dist.cpu().numpy(), metric, "exact")
    if method == "ivf":
        idx, dist = _ivf(_prepare(X_t.to(dev), metric), k, metric, seed)
        return KnnGraph(idx.cpu().numpy(), dist.cpu().numpy(), metric, "ivf")
    if method == "nndescent":
        return _nndescent(X_t.cpu().numpy(), k, metric, seed)
    raise ValueError(f"knn_graph: method must be 'auto', 'exact', 'ivf' or 'nndescent', got {method!r}")


def _kmeans(P: torch.Tensor, n_cells: int, seed: int, iters: int = 8) -> torch.Tensor:
    """Centroids of (spherical, for unit rows) k-means on a sample of the prepared rows."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    sample = P[torch.randperm(len(P), generator=g)[: min(len(P), 48 * n_cells)].to(P.device)]
    C = sample[:n_cells].clone()
    for _ in range(iters):
        # in blocks: a 100k sample x 2,500 cells would be a 1 GB product at once
        assign = torch.cat([(sample[s:s + 8192] @ C.T).argmax(1) for s in range(0, len(sample), 8192)])
        sums = torch.zeros_like(C).index_add_(0, assign, sample)
        counts = torch.bincount(assign, minlength=n_cells)
        C = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None].to(sums.dtype), C)
        C = torch.nn.functional.normalize(C, dim=1)
    return C


def ivf_parameters(n: int) -> tuple[int, int]:
    """``(cells, cells searched per query)`` for N samples: 2 sqrt(N) cells, and 6% of them searched
    (16 to 96). IVF runs above ``EXACT_CPU_MAX_N``. Measured recall@15 on isotropic Gaussian clusters in
    128-D, the hardest case seen (bench/results/bench_speed.md, kNN): 5% of the cells gave 0.879 at 60k
    and 0.915 at 100k, 6% gives 0.951 (60k) and 0.963 (100k) for about the same CPU time; Fashion-MNIST
    principal components: 0.95 at 4.3% (20k). Checked at >= 0.9 in tests/test_compute_knn.py."""
    n_cells = int(max(8, min(4096, 2 * n ** 0.5)))
    return n_cells, int(min(n_cells, max(16, min(96, round(0.06 * n_cells)))))


def _ivf(P: torch.Tensor, k: int, metric: str, seed: int, nprobe: int | None = None):
    n = len(P)
    n_cells, auto_nprobe = ivf_parameters(n)
    nprobe = auto_nprobe if nprobe is None else min(int(nprobe), n_cells)
    C = _kmeans(P if metric == "cosine" else torch.nn.functional.normalize(P, dim=1), n_cells, seed)
    assign = torch.empty(n, dtype=torch.int64, device=P.device)
    for s in range(0, n, 65536):
        assign[s:s + 65536] = (P[s:s + 65536] @ C.T).argmax(1)
    order = torch.argsort(assign)
    counts = torch.bincount(assign, minlength=n_cells)
    starts = torch.cumsum(counts, 0) - counts
    near = torch.topk(C @ C.T, nprobe, dim=1).indices  # each cell's nearest cells, itself first
    out_i = torch.empty((n, k), dtype=torch.int64, device=P.device)
    out_d = torch.empty((n, k), dtype=torch.float32, device=P.device)
    cells = _Cells(P[order], order, starts.tolist(), counts.tolist(), near.tolist())
    # each cell's search is a small product (members x candidates x D): cells run side by side, one
    # torch thread each, rather than each product split over threads
    cpu_parallel_map(lambda c: cells.search(c, k, metric, out_i, out_d), range(n_cells), P.device)
    return out_i, out_d


@dataclass
class _Cells:
    """The rows sorted by IVF cell (each cell's members contiguous) and each cell's probed cells."""

    P: torch.Tensor  # prepared rows in cell order
    order: torch.Tensor  # original index of each sorted row
    starts: list
    counts: list
    near: list  # per cell: the cells its members are searched in, itself first

    def search(self, c: int, k: int, metric: str, out_i: torch.Tensor, out_d: torch.Tensor) -> None:
        found = self.neighbours(c, k, metric)
        if found is not None:
            rows, idx, dist = found
            out_i[rows], out_d[rows] = idx, dist

    def neighbours(self, c: int, k: int, metric: str):
        """(original index of cell ``c``'s members, their k neighbours' original indices, distances),
        or None for an empty cell."""
        if self.counts[c] == 0:
            return None
        lo = self.starts[c]
        members = slice(lo, lo + self.counts[c])
        blocks = [slice(self.starts[j], self.starts[j] + self.counts[j]) for j in self.near[c]]
        cand = torch.cat([self.P[b] for b in blocks])        # contiguous copies, members first
        kk = min(k, len(cand) - 1)
        # members come first in cand, so member i is candidate i: _search excludes it
        idx, dist = _search(self.P[members], cand, kk, metric, self_offset=0)
        ids = torch.cat([self.order[b] for b in blocks])
        idx = ids[idx]
        if kk < k:  # a tiny neighbourhood: pad with the farthest found
            idx = torch.cat([idx, idx[:, -1:].expand(-1, k - kk)], 1)
            dist = torch.cat([dist, dist[:, -1:].expand(-1, k - kk)], 1)
        return self.order[members], idx, dist


def cells_for_recall(home: np.ndarray, neighbour_cells: np.ndarray, centroids: np.ndarray,
                     target: float, nprobe: int | None = None) -> tuple[int, float]:
    """The fewest probed cells (``nprobe``) at which the cell-level IVF search above finds a share
    ``target`` of the exact neighbours of some sample queries, and the recall it gives there (or,
    with ``nprobe`` given, the recall at that nprobe).

    ``home``: each query's cell; ``neighbour_cells``: queries x k, the cell of each of its exact
    neighbours. A cell's members are searched exactly among the members of the ``nprobe`` cells
    nearest its centroid, so a neighbour is found exactly when its cell ranks below ``nprobe`` in that
    order: the recall at every nprobe follows from the ranks, with no search."""
    C = torch.as_tensor(np.asarray(centroids, dtype=np.float32))
    home_t = torch.as_tensor(np.asarray(home, dtype=np.int64))
    sim = C[home_t] @ C.T  # queries x cells
    sim[torch.arange(len(home_t)), home_t] = float("inf")  # a cell probes itself first
    nb = torch.as_tensor(np.asarray(neighbour_cells, dtype=np.int64))
    # rank of a neighbour's cell among its query's home cell's probes = cells nearer than it
    rank = (sim[:, None, :] > torch.gather(sim, 1, nb)[:, :, None]).sum(2).flatten().sort().values
    if not len(rank):
        return nprobe or 1, 1.0
    if nprobe is not None:
        nprobe = int(min(max(nprobe, 1), len(C)))
        return nprobe, float((rank < nprobe).float().mean())
    need = int(np.ceil(min(max(target, 0.0), 1.0) * len(rank)))
    nprobe = int(rank[max(need, 1) - 1]) + 1
    return min(nprobe, len(C)), float((rank < nprobe).float().mean())


def _nndescent(X: np.ndarray, k: int, metric: str, seed: int) -> KnnGraph:
    from pynndescent import NNDescent

    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric == "cosine":  # normalise once; euclidean on unit vectors ranks like cosine and is cheaper
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    index = NNDescent(X, n_neighbors=k + 1, metric="euclidean", random_state=seed, low_memory=True,
                      compressed=True, verbose=False)
    idx, dist = index.neighbor_graph
    idx, dist = drop_self(idx, dist)
    if metric == "cosine":
        dist = (dist.astype(np.float32) ** 2) / 2.0  # |a-b|^2 = 2 - 2 cos for unit vectors
    return KnnGraph(idx[:, :k].astype(np.int64), dist[:, :k].astype(np.float32), metric, "nndescent")


def drop_self(indices: np.ndarray, distances: np.ndarray):
    """Remove each row's own index from a (k+1)-neighbour list (or its last entry when the search
    did not return itself, e.g. among exact duplicates), giving k columns."""
    n, kp1 = indices.shape
    rows = np.arange(n)[:, None]
    is_self = indices == rows
    has_self = is_self.any(1)
    drop = np.where(has_self, is_self.argmax(1), kp1 - 1)
    keep = np.ones_like(indices, dtype=bool)
    keep[np.arange(n), drop] = False
    return indices[keep].reshape(n, kp1 - 1), distances[keep].reshape(n, kp1 - 1)


def knn_query(Q, R, k: int = 15, metric: str = "cosine", device="auto") -> KnnGraph:
    """For each row of ``Q`` its k nearest rows of the reference ``R`` (exact, chunked)."""
    Q_t, R_t = torch.as_tensor(np.asarray(Q, dtype=np.float32)), torch.as_tensor(np.asarray(R, dtype=np.float32))
    _check(Q_t, k, metric)
    if R_t.shape[0] < k:
        raise ValueError(f"knn_query: the reference has {R_t.shape[0]} samples but k={k}; use a smaller k")
    if Q_t.shape[1] != R_t.shape[1]:
        raise ValueError(f"knn_query: queries have {Q_t.shape[1]} features but the reference has {R_t.shape[1]}; "
                         "embed both with the same embedder")
    dev = resolve_device(device)
    idx, dist = _search(_prepare(Q_t.to(dev), metric), _prepare(R_t.to(dev), metric), k, metric, None)
    return KnnGraph(idx.cpu().numpy(), dist.cpu().numpy(), metric, "exact")

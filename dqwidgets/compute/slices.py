"""Slices: communities of the kNN graph, and what describes each one.

A slice is a group of samples that sit together in embedding space. We find them as communities
of the (symmetrised) kNN graph with the Leiden algorithm maximising modularity (Traag, Waltman &
van Eck, "From Louvain to Leiden: guaranteeing well-connected communities", Scientific Reports
2019), as implemented in C by igraph (a few seconds for a 100k x 15 graph on one core). Slice
discovery by clustering a representation and reporting the error rate per cluster follows Domino
(Eyuboglu et al., "Domino: Discovering Systematic Errors with Cross-Modal Embeddings", ICLR 2022)
and Spotlight-style slice tables.

One kNN graph's adjacency and its Leiden partitions are computed once and shared by every caller that
passes the same neighbour array (the foreign-cluster test of ``compute.foreign`` at several
resolutions, then ``graph_slices`` at resolution 1, in one analysis): ``_symmetric_adjacency`` and
``_leiden`` keep them, with the igraph graph built once, for as long as that array lives or until
``release_graph(neighbors)``; a changed array (its bytes are hashed) is computed afresh. Leiden seeds
igraph's generator per call, so a kept partition is the one a fresh call returns.

Communities smaller than ``min_size`` are folded into the community they are most connected to;
when a fixed number of slices is asked for, communities are merged greedily by the largest
modularity gain (Clauset, Newman & Moore, Phys. Rev. E 2004) on the condensed graph.
"""

from __future__ import annotations

import hashlib
import random
import threading
import weakref

import numpy as np
from scipy import sparse

_KEPT: dict[int, dict] = {}  # id(neighbour array) -> {"digest", "adjacency", "igraph", "partitions"}
_KEPT_LOCK = threading.Lock()
_PENDING_LOCK = threading.Lock()  # collecting prefetched partitions (compute.slices.prefetch_partitions)
PREFETCH_MIN_N = 20_000  # below this a Leiden run takes less than starting a process
PREFETCH_PATIENCE_S = 600.0  # a prefetch worker silent this long is given up (one Leiden run at 1M: ~1-2 min)


def _digest(neighbors: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(neighbors).view(np.uint8), digest_size=16).digest() \
        + repr((neighbors.shape, neighbors.dtype.str)).encode()


def _kept_for(neighbors: np.ndarray) -> dict:
    """The shared entry of a neighbour array (new when the array is new or its contents changed)."""
    digest = _digest(neighbors)
    with _KEPT_LOCK:
        entry = _KEPT.get(id(neighbors))
        if entry is None or entry["digest"] != digest:
            entry = {"digest": digest, "partitions": {}}
            _KEPT[id(neighbors)] = entry
            weakref.finalize(neighbors, _KEPT.pop, id(neighbors), None)
        return entry


def _entry_of(adjacency) -> dict | None:
    with _KEPT_LOCK:
        return next((e for e in _KEPT.values() if e.get("adjacency") is adjacency), None)


def keep_partitions(neighbors: np.ndarray, partitions: dict) -> None:
    """Keep Leiden partitions of ``neighbors``' graph computed elsewhere (``{(resolution, seed):
    membership}``, each what ``_leiden`` returns for that key, e.g. by another process from the same
    array): later ``_leiden`` calls on its kept adjacency return them instead of building the igraph
    graph here (the Ray engine's driver, which then holds no igraph graph of N nodes)."""
    entry = _kept_for(neighbors)
    for (resolution, seed), membership in partitions.items():
        entry["partitions"][(float(resolution), int(seed))] = np.asarray(membership, dtype=np.int64)


def partitions_of(neighbors: np.ndarray, resolutions, seed: int = 0) -> dict:
    """``{(resolution, seed): membership}``: the Leiden partitions ``_leiden`` gives for ``neighbors``'
    shared adjacency at each resolution (what ``keep_partitions`` takes)."""
    adjacency = _symmetric_adjacency(neighbors)
    return {(float(r), int(seed)): _leiden(adjacency, float(r), int(seed)) for r in sorted(set(resolutions))}


def release_graph(neighbors: np.ndarray) -> None:
    """Drop the adjacency, igraph graph and partitions kept for ``neighbors`` (see the module docstring);
    prefetch workers still running are stopped."""
    with _KEPT_LOCK:
        entry = _KEPT.pop(id(neighbors), None)
    for receive, proc in set((entry or {}).get("pending", {}).values()):
        proc.terminate()
        proc.join()
        receive.close()


def _symmetric_adjacency(neighbors: np.ndarray) -> sparse.csr_matrix:
    """Undirected weighted adjacency of a kNN graph: weight 2 for mutual neighbours, 1 otherwise
    (kept for the array, see the module docstring: callers must not modify it)."""
    if isinstance(neighbors, np.ndarray):
        entry = _kept_for(neighbors)
        if "adjacency" not in entry:
            entry["adjacency"] = _build_adjacency(neighbors)
        return entry["adjacency"]
    return _build_adjacency(np.asarray(neighbors))


_BLOCK = 1 << 17  # graph rows per block of the adjacency's construction


def _build_adjacency(neighbors: np.ndarray, block: int = _BLOCK) -> sparse.csr_matrix:
    """``_symmetric_adjacency`` built afresh: each row's distinct neighbours (sorted, self and negative
    entries left out) straight into CSR arrays, ``block`` rows at a time, then ``A + A.T``. Indices are
    int32 and weights float32 wherever the entries fit (N x k < 2^31): the weights are 1 and 2, exact in
    float32, and the structure is the one a COO build with ``sum_duplicates`` gives (sorted, no
    duplicates). A whole-N COO build with int64 rows and float64 weights held ~560 MB above its input at
    1M x 15."""
    neighbors = np.asarray(neighbors)
    n, k = neighbors.shape
    small = n * k * 2 < np.iinfo(np.int32).max
    index = np.int32 if small else np.int64
    counts = np.zeros(n + 1, dtype=np.int64)
    parts = []
    for r0 in range(0, n, block):
        nb = np.sort(neighbors[r0:r0 + block], axis=1)
        keep = (nb >= 0) & (nb != np.arange(r0, r0 + len(nb))[:, None])
        keep[:, 1:] &= nb[:, 1:] != nb[:, :-1]  # a neighbour listed twice in one row counts once
        counts[r0 + 1:r0 + 1 + len(nb)] = keep.sum(1)
        parts.append(nb[keep].astype(index))
    indptr = np.cumsum(counts).astype(index)
    indices = np.concatenate(parts) if parts else np.zeros(0, index)
    del parts
    a = sparse.csr_matrix((np.ones(len(indices), np.int8), indices, indptr), shape=(n, n))  # 1 byte a weight
    a.has_sorted_indices = True
    del indices, indptr
    s = (a + a.T).tocsr()  # 1 one way, 2 for mutual neighbours
    del a
    s.data = s.data[:s.nnz].astype(np.float32 if small else np.float64)
    return s


def prefetch_partitions(neighbors: np.ndarray, resolutions, seed: int = 0, workers: int | None = None) -> None:
    """Start the Leiden partitions of a kNN graph at ``resolutions`` in background processes (forked,
    ``workers`` of them, default: the CPU count), kept for ``neighbors`` as ``_leiden`` keeps its own:
    a later ``_leiden`` call for one of them waits for it instead of computing it. igraph holds the GIL,
    so processes rather than threads; the partitions are the ones ``_leiden`` computes (same call, same
    seed). Where fork is unsafe or missing (macOS, Windows) nothing starts and ``_leiden`` computes."""
    import multiprocessing as mp
    import os
    import sys

    if sys.platform != "linux" or "fork" not in mp.get_all_start_methods() or len(neighbors) < PREFETCH_MIN_N:
        return
    adjacency = _symmetric_adjacency(np.asarray(neighbors))
    entry = _entry_of(adjacency)
    keys = [(float(r), int(seed)) for r in sorted(set(resolutions))]
    keys = [k for k in keys if k not in entry["partitions"] and k not in entry.setdefault("pending", {})]
    workers = max(1, min(len(keys), workers or os.cpu_count() or 1))
    if keys and "igraph" not in entry:  # built once here, shared by the forked workers (0.9 CPU s each at 100k)
        entry["igraph"] = _igraph(adjacency)
    ctx = mp.get_context("fork")
    for w in range(workers):
        mine = keys[w::workers]
        if not mine:
            continue
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_partition_worker, args=(send, entry["igraph"], mine), daemon=True,
                           name="dqwidgets-leiden")
        proc.start()
        send.close()
        for k in mine:
            entry["pending"][k] = (receive, proc)


def _partition_worker(send, graph, keys) -> None:
    try:
        for key in keys:
            send.send((key, _run_leiden(graph, *key)))
    finally:
        send.close()


def _collect(entry: dict, key) -> np.ndarray | None:
    """The pending partition ``key`` from its worker (and whatever that worker sent before it); None
    when the worker died before sending it (the caller then computes it)."""
    import time

    receive, proc = entry["pending"].pop(key)
    # a forked child can hang on a lock another thread of the parent held at fork time: never wait on it
    # longer than PREFETCH_PATIENCE_S after it last sent something; the caller then computes in-process
    deadline = time.monotonic() + PREFETCH_PATIENCE_S
    while key not in entry["partitions"]:
        try:
            if not receive.poll(0.5):
                if not proc.is_alive() or time.monotonic() > deadline:
                    break
                continue
            got, membership = receive.recv()
        except (EOFError, OSError):
            break
        entry["partitions"][got] = membership
        deadline = time.monotonic() + PREFETCH_PATIENCE_S
    if key not in entry["partitions"] and proc.is_alive():
        proc.kill()
    if not any(r is receive for r, _ in entry["pending"].values()):
        receive.close()
        proc.join()
    return entry["partitions"].get(key)


def _run_leiden(graph, resolution: float, seed: int) -> np.ndarray:
    import igraph

    # igraph draws from Python's `random` by default; give it a private, seeded generator.
    igraph.set_random_number_generator(random.Random(seed))
    try:
        partition = graph.community_leiden(
            objective_function="modularity", weights="weight", resolution=resolution, n_iterations=1
        )
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(partition.membership, dtype=np.int64)


def _leiden(adjacency: sparse.csr_matrix, resolution: float, seed: int) -> np.ndarray:
    """Leiden communities (modularity at ``resolution``) of an adjacency; a kept adjacency's
    partitions and igraph graph are reused, prefetched ones awaited (see the module docstring)."""
    entry = _entry_of(adjacency)
    key = (float(resolution), int(seed))
    if entry is not None and key in entry.get("pending", {}):
        with _PENDING_LOCK:
            if key in entry.get("pending", {}):
                _collect(entry, key)
    if entry is not None and key in entry["partitions"]:
        return entry["partitions"][key].copy()
    graph = entry.get("igraph") if entry is not None else None
    if graph is None:
        graph = _igraph(adjacency)
        if entry is not None:
            entry["igraph"] = graph
    membership = _run_leiden(graph, float(resolution), int(seed))
    if entry is not None:
        entry["partitions"][key] = membership.copy()
    return membership


def _igraph(adjacency: sparse.csr_matrix):
    import igraph

    upper = sparse.triu(adjacency, k=1).tocoo()
    graph = igraph.Graph(n=adjacency.shape[0], directed=False)
    # lists of int tuples are the quickest way into igraph (numpy arrays are walked element by
    # element); chunks keep the Python objects for a 1M-node graph to ~100 MB at a time
    for start in range(0, upper.nnz, 2_000_000):
        stop = start + 2_000_000
        graph.add_edges(list(zip(upper.row[start:stop].tolist(), upper.col[start:stop].tolist())))
    graph.es["weight"] = upper.data.tolist()
    return graph


def _split_until(adjacency: sparse.csr_matrix, membership: np.ndarray, target: int, seed: int) -> np.ndarray:
    """Split the largest communities with Leiden on their own subgraph until there are ``target``."""
    membership = membership.copy()
    unsplittable: set[int] = set()
    while membership.max() + 1 < target:
        sizes = np.bincount(membership)
        candidates = [c for c in np.argsort(-sizes, kind="stable") if c not in unsplittable and sizes[c] > 1]
        if not candidates:
            break
        c = int(candidates[0])
        members = np.flatnonzero(membership == c)
        sub = adjacency[members][:, members].tocsr()
        parts = np.zeros(members.size, dtype=np.int64)
        for res in (1.0, 2.0, 4.0, 8.0):
            parts = _leiden(sub, res, seed)
            if parts.max() > 0:
                break
        if parts.max() == 0:
            unsplittable.add(c)
            continue
        fresh = membership.max() + parts[parts > 0]  # part 0 keeps the old id
        membership[members[parts > 0]] = fresh
    return membership


def community_edges(adjacency: sparse.csr_matrix, membership: np.ndarray, block: int | None = None):
    """``(community of the row end, community of the column end, weight as float64)`` of the stored
    entries of a CSR adjacency, ``block`` rows (default ``_BLOCK``) at a time: what sums over the edges by
    community read (``_condense``, ``compute.foreign``'s conductance) without a COO copy of ~22M
    entries and its int64 / float64 gathers (~600 MB at 1M x 15)."""
    A = adjacency.tocsr()
    indptr, indices, data = A.indptr, A.indices, A.data
    block = block or _BLOCK
    for r0 in range(0, A.shape[0], block):
        r1 = min(r0 + block, A.shape[0])
        e0, e1 = int(indptr[r0]), int(indptr[r1])
        here = np.repeat(membership[r0:r1], np.diff(indptr[r0:r1 + 1]))
        yield here, membership[indices[e0:e1]], data[e0:e1].astype(np.float64)


def _condense(adjacency: sparse.csr_matrix, membership: np.ndarray, n_comm: int) -> np.ndarray:
    """Dense n_comm x n_comm matrix of total edge weight between communities (diagonal: inside), summed
    over ``community_edges``' row blocks (the weights are small integers: exact whatever the blocks)."""
    flat = np.zeros(n_comm * n_comm)
    for here, there, w in community_edges(adjacency, np.asarray(membership, dtype=np.int64)):
        pair = here * n_comm + there
        if n_comm * n_comm <= 1 << 20:  # a dense block of counts is small
            flat += np.bincount(pair, w, minlength=n_comm * n_comm)
        else:
            pairs, at = np.unique(pair, return_inverse=True)
            flat[pairs] += np.bincount(at, w, minlength=len(pairs))
    return flat.reshape(n_comm, n_comm)


def _merge(weights: np.ndarray, sizes: np.ndarray, target: int | None, min_size: int) -> np.ndarray:
    """Greedy merging on the condensed graph. Returns, for each community, the community it ends in."""
    weights = weights.copy()
    sizes = sizes.astype(np.int64).copy()
    n = len(sizes)
    owner = np.arange(n)
    alive = np.ones(n, dtype=bool)
    two_m = weights.sum()
    degree = weights.sum(axis=1)

    def join(a: int, b: int) -> None:  # fold b into a
        weights[a, :] += weights[b, :]
        weights[:, a] += weights[:, b]
        weights[b, :] = 0
        weights[:, b] = 0
        degree[a] += degree[b]
        degree[b] = 0
        sizes[a] += sizes[b]
        sizes[b] = 0
        alive[b] = False
        owner[owner == b] = a

    # 1. fold every too-small community into its most connected neighbour, smallest first
    original = sizes.copy()
    for b in np.argsort(original, kind="stable"):
        if original[b] >= min_size:
            break
        if not alive[b] or sizes[b] >= min_size:
            continue
        row = weights[b].copy()
        row[b] = 0
        if row.max() > 0:  # a community with no outside edge stays as it is
            join(int(np.argmax(row)), int(b))

    # 2. merge down to the target number by the largest modularity gain
    if target is not None and two_m > 0:
        while alive.sum() > target:
            idx = np.flatnonzero(alive)
            w = weights[np.ix_(idx, idx)]
            d = degree[idx]
            gain = w / two_m - np.outer(d, d) / two_m**2
            np.fill_diagonal(gain, -np.inf)
            i, j = np.unravel_index(np.argmax(gain), gain.shape)
            a, b = (idx[i], idx[j]) if sizes[idx[i]] >= sizes[idx[j]] else (idx[j], idx[i])
            join(int(a), int(b))
    return owner


def graph_slices(
    neighbors: np.ndarray,
    n_slices: int | None = None,
    seed: int = 0,
    resolution: float = 1.0,
    min_size: int | None = None,
) -> np.ndarray:
    """Slice id of every sample: Leiden communities of the kNN graph (see module docstring).

    ``neighbors`` is the N x k index array of the kNN graph (self excluded; negative entries are
    ignored). ``n_slices=None`` keeps the number of communities modularity finds (about 10–60 on
    typical embeddings); an integer gives exactly that many slices when the graph allows it.
    Slices are numbered by size, 0 = largest. Samples with no edge at all get -1.
    """
    neighbors = np.asarray(neighbors)
    if neighbors.ndim != 2 or not np.issubdtype(neighbors.dtype, np.integer):
        raise ValueError(
            f"graph_slices: neighbors must be an N x k integer array of neighbour indices, got "
            f"shape {neighbors.shape} dtype {neighbors.dtype}; pass KnnGraph.indices"
        )
    n = neighbors.shape[0]
    if neighbors.size and (neighbors.max() >= n):
        raise ValueError(f"graph_slices: neighbour index {int(neighbors.max())} is out of range for {n} samples")
    if n_slices is not None and (int(n_slices) < 1):
        raise ValueError(f"graph_slices: n_slices must be a positive integer or None, got {n_slices}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if min_size is None:
        min_size = max(10, n // 2000)
    if n_slices is not None:
        min_size = min(min_size, max(1, n // (4 * int(n_slices))))

    adjacency = _symmetric_adjacency(neighbors.astype(np.int64, copy=False))
    connected = np.diff(adjacency.indptr) > 0
    if not connected.any():
        return np.full(n, -1, dtype=np.int64)
    if not connected.all():  # all connected (a kNN graph): the shared adjacency and its partitions
        adjacency = adjacency[connected][:, connected].tocsr()

    membership = _leiden(adjacency, resolution, seed)
    if n_slices is not None:  # need at least n_slices communities to merge from
        membership = _split_until(adjacency, membership, int(n_slices), seed)
    n_comm = int(membership.max()) + 1

    sizes = np.bincount(membership, minlength=n_comm)
    weights = _condense(adjacency, membership, n_comm)
    owner = _merge(weights, sizes, None if n_slices is None else int(n_slices), min_size)
    merged = owner[membership]

    kept, counts = np.unique(merged, return_counts=True)
    order = kept[np.lexsort((kept, -counts))]  # largest first, ties by id
    relabel = np.full(n_comm, -1, dtype=np.int64)
    relabel[order] = np.arange(order.size)
    out = np.full(n, -1, dtype=np.int64)
    out[connected] = relabel[merged]
    return out


def _describe(members: np.ndarray, attributes: dict, shares: dict, max_terms: int = 2, min_lift: float = 1.5) -> str:
    """The attribute values most over-represented in a slice, e.g. ``brightness=high (92% vs 25%)``.

    A value is a candidate when its share inside the slice is at least ``min_lift`` times its
    share in the whole data; candidates are ranked by the gap between the two shares, one value
    per attribute, and the best ``max_terms`` are joined with ``", "``.
    """
    terms = []
    for name, (codes, names) in attributes.items():
        share_all = shares[name]
        inside = np.asarray(codes)[members]
        inside = inside[inside >= 0]
        if share_all is None or inside.size == 0:
            continue
        share_in = np.bincount(inside, minlength=len(names)) / inside.size
        gap = np.where(share_in >= min_lift * share_all, share_in - share_all, -np.inf)
        best = int(np.argmax(gap))
        if np.isfinite(gap[best]) and gap[best] > 0.1:
            terms.append((gap[best], f"{name}={names[best]} ({share_in[best]:.0%} vs {share_all[best]:.0%})"))
    terms.sort(key=lambda t: -t[0])
    return ", ".join(text for _, text in terms[:max_terms])


def slice_table(
    slice_id: np.ndarray,
    label_codes: np.ndarray,
    pred_codes: np.ndarray | None,
    attributes: dict[str, tuple[np.ndarray, list[str]]],
    class_names: list,
) -> dict[str, np.ndarray]:
    """One row per slice: ``slice_id, size, error_rate, dominant_label, dominant_share, description``.

    ``error_rate`` is the share of the slice's labelled samples whose out-of-fold probe prediction
    (``pred_codes``) disagrees with the given label (NaN when the slice has no labelled sample or
    no predictions are given) — the per-slice error that slice-discovery methods rank by
    (Eyuboglu et al., Domino, ICLR 2022). ``dominant_label`` is the most frequent given label
    (a class name) and ``dominant_share`` its share among the labelled members. ``description``
    lists the metadata values over-represented in the slice. Label codes and attribute codes use
    -1 for missing; samples with ``slice_id`` -1 are left out. Rows come sorted by slice id.
    """
    slice_id = np.asarray(slice_id, dtype=np.int64)
    label_codes = np.asarray(label_codes, dtype=np.int64)
    n = slice_id.size
    if label_codes.size != n or (pred_codes is not None and np.asarray(pred_codes).size != n):
        raise ValueError(
            f"slice_table: slice_id has {n} entries but label_codes has {label_codes.size}"
            + ("" if pred_codes is None else f" and pred_codes has {np.asarray(pred_codes).size}")
            + "; pass one entry per sample"
        )
    for name, (codes, _) in attributes.items():
        if np.asarray(codes).size != n:
            raise ValueError(f"slice_table: attribute {name!r} has {np.asarray(codes).size} codes for {n} samples")
    ids = np.unique(slice_id[slice_id >= 0])
    n_classes = len(class_names)
    size = np.zeros(ids.size, dtype=np.int64)
    error_rate = np.full(ids.size, np.nan)
    dominant_label = np.empty(ids.size, dtype=object)
    dominant_share = np.full(ids.size, np.nan)
    description = np.empty(ids.size, dtype=object)
    shares = {}  # share of each value in the whole data, per attribute (None: all missing)
    for name, (codes, names) in attributes.items():
        known = np.asarray(codes)[np.asarray(codes) >= 0]
        shares[name] = np.bincount(known, minlength=len(names)) / known.size if known.size else None
    order = np.argsort(slice_id, kind="stable")
    bounds = np.searchsorted(slice_id[order], np.concatenate([ids, [ids[-1] + 1 if ids.size else 0]]))
    for row, s in enumerate(ids):
        members = order[bounds[row] : bounds[row + 1]]
        size[row] = members.size
        labels = label_codes[members]
        labelled = labels >= 0
        dominant_label[row] = None
        if labelled.any():
            counts = np.bincount(labels[labelled], minlength=n_classes)
            top = int(np.argmax(counts))
            dominant_label[row] = class_names[top]
            dominant_share[row] = counts[top] / labelled.sum()
            if pred_codes is not None:
                preds = np.asarray(pred_codes)[members][labelled]
                error_rate[row] = float(np.mean(preds != labels[labelled]))
        description[row] = _describe(members, attributes, shares)
    return {
        "slice_id": ids.astype(np.int64),
        "size": size,
        "error_rate": error_rate,
        "dominant_label": dominant_label,
        "dominant_share": dominant_share,
        "description": description,
    }

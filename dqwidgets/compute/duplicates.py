"""Exact and near duplicates from content hashes and the kNN graph.

Near duplicates follow the radius rule of cleanlab's near-duplicate check and of SemDeDup
(Abbas, Tirumala, Simig, Ganguli & Morcos, "SemDeDup: Data-efficient learning at web-scale through
semantic deduplication", 2023): two samples are near copies when their embeddings are much closer
than a typical sample is to its nearest neighbour; "typical" is measured in the pair's own
neighbourhood (the median of its neighbours' nearest-neighbour distances), so a tight cluster of
distinct samples, as close to each other as their neighbours are, is not taken for copies. Pairs are
read off the one kNN graph (no second search of the embeddings) and joined into groups by connected
components.

Images add a pixel channel: an ImageNet embedding of a small image does not keep a shifted or resized
copy closer than its natural neighbours, so each pair's perceptual signatures
(:mod:`dqwidgets.embed.signature`) are compared too (:func:`signature_distance`), on the graph's pairs
and on a few shift-invariant signature candidates per image (:func:`signature_candidates`, 64-dim: the
graph misses many shifted copies), with a cut relative to the data (:func:`signature_cut`). Texts add
an exact channel: equal normalised-text hashes (case, whitespace, punctuation folded).

Tables and precomputed features add a cell channel (:func:`with_cells`): a row copied with a few cells
edited (a digit's 3 of 64 cells moved by 1, a measurement re-entered) is far in the embedding when an
edited column has little spread (1 grey level in a border cell that is almost always 0 is 3-4 standard
deviations), yet it equals its original in nearly every other cell, which distinct rows do not. The
channel counts the cells in which a graph pair differs and reads the count on the neighbourhood's own
scale, as the embedding's distance is: a pair differing in far fewer cells than the rows around it
differ from their nearest ones is a copy. On dense embeddings no cell of two different vectors is equal,
so the channel says nothing there and the embedding's closeness decides.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# A pair is a near copy when it is closer than (1 - threshold) x its neighbourhood's spacing.
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
    if not float(np.median(log_r) - np.quantile(log_r, 0.15866)) > 0:
        return DEFAULT_THRESHOLD
    return float(np.clip(1.0 - _copy_radius(log_r), 0.0, DEFAULT_THRESHOLD))


def _copy_radius(log_r: np.ndarray) -> float:
    """The radius of :func:`default_threshold`'s rule on the log distance ratios ``log_r`` of every
    sample's nearest pair (centre = median, scale = median - 15.9th percentile, ``Z_COPY`` below),
    within [``1 - DEFAULT_THRESHOLD``, ``MAX_RADIUS``]; a bulk with no spread (scale 0: most samples at
    the same ratio, as integer counts can be) leaves every pair below it an outlier: ``MAX_RADIUS``
    when the centre is above it."""
    med = float(np.median(log_r))
    sd = max(float(med - np.quantile(log_r, 0.15866)), 0.0)
    return float(np.clip(np.exp(med - Z_COPY * sd), 1.0 - DEFAULT_THRESHOLD, MAX_RADIUS))


COSINE_ZERO = 1e-6  # cosine distances at or below this are float32 rounding of an exact copy


def _euclidean_scale(distances: np.ndarray, metric: str) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float64)
    if metric != "cosine":
        return d
    # |a-b| of unit vectors; a cosine distance within float32 rounding of 0 (COSINE_ZERO) is an exact copy
    return np.sqrt(np.where(d <= COSINE_ZERO, 0.0, 2.0 * d))


SPACING_QUANTILE = 0.5  # of the neighbours' nearest distinct-neighbour distances: the neighbourhood's spacing


def nearest_distinct_distance(distances: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Per graph row: the distance (euclidean scale) to its nearest neighbour that is not an exact copy
    (the first listed distance > 0); NaN where every listed neighbour is at distance 0. A cosine
    distance within float32 rounding of 0 (``COSINE_ZERO``: identical rows of ones give 1 - 1.0000001)
    counts as 0, else 300 copies of one row read as distinct at a spacing of that rounding error."""
    d = _euclidean_scale(distances, metric)
    if d.ndim == 1:
        d = d[:, None]
    pos = d > 0
    first = np.argmax(pos, axis=1)
    out = d[np.arange(len(d)), first]
    out[~pos.any(axis=1)] = np.nan
    return out


def neighbourhood_spacing(neighbors: np.ndarray, nearest: np.ndarray, fallback: float) -> np.ndarray:
    """Per graph row: how far apart the samples around it are: the median (``SPACING_QUANTILE``) over its
    ``neighbors`` (graph positions, valid x k) of their nearest distinct-neighbour distance ``nearest``
    (:func:`nearest_distinct_distance`, one per position). It stays a distinct-neighbour spacing while
    fewer than half of a row's neighbours are copies of each other (a group of up to ~k/2 copies); a
    tight group of more than k/2 samples sets its own spacing, whatever they are (a limit: that many
    copies of one sample look like a tight cluster of distinct ones). ``fallback`` where undefined or 0.
    Any block of rows can be computed alone once ``nearest`` is known for every position (what a
    sharded engine does)."""
    nb = np.asarray(neighbors)
    if not nb.size:
        return np.full(len(nb), float(fallback))
    vals = np.asarray(nearest, dtype=np.float64)[nb]
    if np.isnan(vals).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: its fallback below
            s = np.nanquantile(vals, SPACING_QUANTILE, axis=1)
    else:
        s = np.quantile(vals, SPACING_QUANTILE, axis=1)
    return np.where(np.isfinite(s) & (s > 0), s, fallback)


def near_duplicate_score(distances: np.ndarray, metric: str = "cosine", typical: float | None = None,
                         neighbors: np.ndarray | None = None, nearest: np.ndarray | None = None) -> np.ndarray:
    """Per-edge closeness in [0, 1], clipped; 1 = identical.

    With ``neighbors`` (the graph's indices, valid x k): ``1 - d_ij / s_i`` on the scale of the sample's
    neighbourhood, ``s_i`` = how far apart the samples around it are (:func:`neighbourhood_spacing`:
    the median of its neighbours' nearest distinct-neighbour distances; ``nearest``, one per
    graph position, is computed from ``distances`` when not given). A near copy is much closer to its
    original than the samples around them are to each other; the members of a tight cluster of
    distinct samples (a checkerboard pattern drawn 40 times with its own noise each time) are as close
    to each other as their neighbours are, so their closeness stays low, however dense the cluster is
    compared to the rest of the data. Without ``neighbors``: on the sample's own k-th (farthest listed)
    neighbour distance, ``1 - d_ij / d_ik``. ``typical``: scale by this one distance (euclidean scale)
    instead, e.g. the median nearest-neighbour distance of a reference."""
    d = _euclidean_scale(distances, metric)
    if typical is not None:
        return np.clip(1.0 - d / typical, 0.0, 1.0).astype(np.float32)
    if neighbors is not None and d.ndim == 2 and d.shape[1]:
        if nearest is None:
            nearest = nearest_distinct_distance(distances, metric)
        scale = neighbourhood_spacing(neighbors, nearest, typical_nn_distance(distances, metric))[:, None]
    elif d.ndim == 2 and d.shape[1] > 1:
        scale = d[:, -1:]
    else:
        scale = np.full((len(d), 1), typical_nn_distance(distances, metric))
    with np.errstate(divide="ignore", invalid="ignore"):
        close = np.where(d <= 0, 1.0, 1.0 - d / np.maximum(scale, 1e-12))
    return np.clip(close, 0.0, 1.0).astype(np.float32)


def typical_nn_distance(distances: np.ndarray, metric: str = "cosine") -> float:
    d1 = _euclidean_scale(distances[:, 0], metric)
    med = float(np.median(d1)) if len(d1) else 0.0
    return med if med > 0 else float(d1.max() if len(d1) and d1.max() > 0 else 1.0)


def near_copy_edges(distances: np.ndarray, metric: str, neighbors: np.ndarray,
                    signatures: np.ndarray | None = None,
                    cells: np.ndarray | None = None,
                    cell_rows: np.ndarray | None = None, device=None) -> tuple[np.ndarray, float, tuple | None]:
    """``(edges, default threshold, extra pairs)`` of the duplicate rule, from the one kNN graph (valid x k
    ``distances`` and ``neighbors``): every edge's closeness on its sample's own scale
    (:func:`near_duplicate_score`), its data-driven default threshold (:func:`default_threshold`), and,
    for images, the closeness raised where the pair's signatures match and the signature-candidate pairs
    beyond the graph (:func:`with_signatures`); for tables and precomputed features (``cells``: the valid
    rows' features, valid x D; or every sample's, N x D, with ``cell_rows`` = each graph position's row), the
    closeness raised where a pair differs in far fewer cells than its neighbourhood does
    (:func:`with_cells`; on ``device`` when it is a GPU the cells fit on). Both engines call this;
    ``edges`` is float32 valid x k."""
    edges = near_duplicate_score(distances, metric, neighbors=np.asarray(neighbors))
    threshold = default_threshold(edges[:, 0]) if len(edges) else DEFAULT_THRESHOLD
    edges, extra = with_signatures(edges, np.asarray(neighbors), signatures, threshold)
    if cells is not None:
        edges, more = with_cells(edges, np.asarray(neighbors), cells, threshold, cell_rows, device=device)
        if more is not None:
            extra = more if extra is None else tuple(np.concatenate([x, y]) for x, y in zip(extra, more))
    return edges, threshold, extra


# ------------------------------------------------------------------------------------- table cells
CELL_BLOCK = 1 << 22  # cell comparisons per block (a few MB: the block's rows stay in cache)


def _block(cells, k: int) -> int:
    return max(1, CELL_BLOCK // ((k + 1) * max(cells.shape[1], 1)))


def _cells_on_gpu(cells, device):
    """``cells`` as a float32 tensor on ``device`` when that is a CUDA device, ``cells`` an in-memory
    array and a quarter of the free GPU memory holds it; else None (the numpy path: 1M x 512 cells
    compared with 15 neighbours each took 19 s on one CPU thread)."""
    if device is None or not isinstance(cells, np.ndarray) or isinstance(cells, np.memmap):
        return None
    import torch

    device = torch.device(device)
    if device.type != "cuda" or cells.ndim != 2:
        return None
    free, _ = torch.cuda.mem_get_info(device)
    if cells.shape[0] * cells.shape[1] * 4 * 4 > free:
        return None
    return torch.as_tensor(np.asarray(cells, dtype=np.float32)).to(device)


def _pair_mismatches(cells, rows: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int32 per pair: in how many cells graph positions ``a[p]`` and ``b[p]`` differ (rows of ``cells``
    by ``rows``), in blocks of pairs."""
    out = np.zeros(len(a), dtype=np.int32)
    step = _block(cells, 1)
    for s0 in range(0, len(a), step):
        x = np.asarray(cells[rows[a[s0:s0 + step]]], dtype=np.float32)
        y = np.asarray(cells[rows[b[s0:s0 + step]]], dtype=np.float32)
        out[s0:s0 + step] = np.count_nonzero(x != y, axis=1)
    return out


def cell_mismatches(cells: np.ndarray, neighbors: np.ndarray, rows: np.ndarray | None = None,
                    gpu_cells=None) -> np.ndarray:
    """valid x k int32: in how many cells each graph pair (position i, ``neighbors[i, j]``) of the table
    ``cells`` (numeric, one row per graph position, or N x D with ``rows`` = the row of each graph
    position, e.g. a memory-mapped file of every sample) differs. Cells are compared exactly (as float32):
    the features of equal values are equal (a table's encoding is one deterministic map per column, arrays
    are the user's values), and any edit, however small, is a difference; a pair that differs only by
    float rounding is the embedding distance's to find. Read in blocks of rows: nothing larger than a
    block is copied."""
    nb = np.asarray(neighbors)
    n, k = nb.shape
    out = np.zeros((n, k), dtype=np.int32)
    if not n or not k or cells.ndim != 2 or not cells.shape[1]:
        return out
    rows = np.arange(n) if rows is None else np.asarray(rows)
    if gpu_cells is not None:  # the same comparisons on the GPU (``_cells_on_gpu``), in larger blocks
        import torch

        dev = gpu_cells.device
        rows_t, nb_t = torch.as_tensor(rows, device=dev), torch.as_tensor(nb, device=dev)
        step = max(1, (1 << 27) // ((k + 1) * cells.shape[1]))
        for a in range(0, n, step):
            b = min(n, a + step)
            x = gpu_cells[rows_t[a:b]]
            y = gpu_cells[rows_t[nb_t[a:b]].reshape(-1)].view(b - a, k, -1)
            out[a:b] = (x[:, None, :] != y).sum(2, dtype=torch.int32).cpu().numpy()
        return out
    step = _block(cells, k)
    for a in range(0, n, step):
        b = min(n, a + step)
        x = np.asarray(cells[rows[a:b]], dtype=np.float32)
        y = np.asarray(cells[rows[nb[a:b]].reshape(-1)], dtype=np.float32).reshape(b - a, k, -1)
        out[a:b] = np.count_nonzero(x[:, None, :] != y, axis=2)
    return out


CELL_BANDS = 12  # random bands of columns hashed by cell_candidates
CELL_BAND_SHARE = 8  # each band holds ceil(D / this) columns
CELL_BUCKET = 8  # rows sharing a band's values: more than this and the shared values are common, not a copy's


def cell_candidates(cells, rows: np.ndarray | None = None, seed: int = 0,
                    gpu_cells=None) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: pairs of graph positions equal on every column of one of ``CELL_BANDS`` random bands of
    ``ceil(D / CELL_BAND_SHARE)`` columns, in a bucket of at most ``CELL_BUCKET`` rows. A row copied
    with a few cells edited keeps most bands intact (3 edited cells of 13: each band of 2 columns is
    intact with probability 0.63, all twelve missed 6e-6), however far the edits move it in the
    embedding (a cell x 2 leaves the copy outside its original's k neighbours); distinct rows of
    continuous columns share no band, and bands of common values (zeros, binary columns) fill buckets
    beyond the cap and are skipped. The kNN graph misses such copies; :func:`with_cells` checks these
    pairs like the graph's."""
    n = len(cells) if rows is None else len(rows)
    rows = np.arange(n) if rows is None else np.asarray(rows)
    D = cells.shape[1] if cells.ndim == 2 else 0
    empty = np.zeros(0, np.int64)
    if n < 2 or not D:
        return empty, empty
    rng = np.random.default_rng(seed)
    width = int(np.ceil(D / CELL_BAND_SHARE))
    bands = [rng.choice(D, width, replace=False) for _ in range(CELL_BANDS)]
    mult = rng.integers(1, 2 ** 61, size=(CELL_BANDS, width), dtype=np.int64) | 1
    keys = np.zeros((CELL_BANDS, n), dtype=np.int64)
    if gpu_cells is not None:  # the same keys (int64 arithmetic wraps alike) from the cells on the GPU
        import torch

        dev = gpu_cells.device
        rows_t = torch.as_tensor(rows, device=dev)
        mult_t = torch.as_tensor(mult, device=dev)
        bands_t = [torch.as_tensor(cols, device=dev) for cols in bands]
        step = max(1, (1 << 26) // D)
        for s0 in range(0, n, step):
            bits = (gpu_cells[rows_t[s0:s0 + step]] + 0.0).view(torch.int32)
            for bi, cols in enumerate(bands_t):
                keys[bi, s0:s0 + step] = (bits[:, cols].long() * mult_t[bi]).sum(1).cpu().numpy()
    else:
        _band_keys(cells, rows, bands, mult, keys, _block(cells, 1))
    a_all, b_all = [], []
    for bi in range(CELL_BANDS):
        _, inv, counts = np.unique(keys[bi], return_inverse=True, return_counts=True)
        size = counts[inv]
        members = np.flatnonzero((size >= 2) & (size <= CELL_BUCKET))
        if not len(members):
            continue
        order = members[np.argsort(inv[members], kind="stable")]
        bucket = inv[order]
        start = np.r_[0, np.flatnonzero(bucket[1:] != bucket[:-1]) + 1]
        length = np.diff(np.r_[start, len(order)])
        for L in np.unique(length):  # all pairs within the buckets of each size
            first = start[length == L]
            ii, jj = np.triu_indices(int(L), 1)
            a_all.append(order[(first[:, None] + ii).reshape(-1)])
            b_all.append(order[(first[:, None] + jj).reshape(-1)])
    if not a_all:
        return empty, empty
    key = np.unique(_pair_key(np.concatenate(a_all), np.concatenate(b_all), n))
    return (key // (n + 1)).astype(np.int64), (key % (n + 1)).astype(np.int64)


def _band_keys(cells, rows, bands, mult, keys, step) -> None:
    """``keys[b, i]``: the hash of row i's float32 bits on band b's columns (numpy, in row blocks)."""
    with np.errstate(over="ignore"):
        for s0 in range(0, len(rows), step):
            # a cell's float32 bits (+0.0: -0 and 0 alike), as the exact comparison sees it
            bits = (np.asarray(cells[rows[s0:s0 + step]], dtype=np.float32) + np.float32(0.0)).view(np.int32)
            for bi, cols in enumerate(bands):
                keys[bi, s0:s0 + step] = (bits[:, cols].astype(np.int64) * mult[bi]).sum(1)


def with_cells(edges: np.ndarray, neighbors: np.ndarray, cells: np.ndarray, threshold: float,
               rows: np.ndarray | None = None, device=None) -> tuple[np.ndarray, tuple | None]:
    """``(edges, extra_pairs)``: the graph edges' closeness (valid x k, changed in place) raised where the
    pair's cells say copy, and the pairs beyond the graph that do (:func:`cell_candidates`),
    ``(rows, cols, closeness)`` with closeness > 0. ``m_ij`` = the cells in which the pair differs
    (:func:`cell_mismatches`), read on the neighbourhood's scale as the embedding's distance is
    (:func:`near_duplicate_score`): ``s_i`` = the median over the row's neighbours of their fewest
    differing cells to a graph neighbour that is not an exact copy (:func:`neighbourhood_spacing`),
    ratio ``m_ij / s_i``. The cut on the ratio comes from the data by :func:`default_threshold`'s rule
    (:func:`_copy_radius` on every row's smallest ratio) and is mapped onto the edges' own
    ``threshold``, as the image signatures' cut is (:func:`with_signatures`): a ratio at the cut gets
    closeness ``threshold``, an equal row 1, so one threshold moves both channels.

    Measured on scikit-learn's digits (64 cells of 0-16, kNN k=15): copies with 3 cells moved by 1
    differ from their original in at most 3 cells, ratio <= 0.14; distinct rows' smallest ratio is
    0.63 (a digit written alike still differs in 12 or more cells); the bulk's rule gives the cut 0.5.
    A dense embedding (no equal cells between different vectors) has every ratio ~1: nothing raised."""
    nb = np.asarray(neighbors)
    if not len(edges) or not nb.size:
        return edges, None
    n, k = nb.shape
    rows = np.arange(n) if rows is None else np.asarray(rows)
    gpu_cells = _cells_on_gpu(cells, device)
    m = cell_mismatches(cells, nb, rows, gpu_cells=gpu_cells).astype(np.float64)
    nearest = np.where(m > 0, m, np.inf).min(1)
    nearest[~np.isfinite(nearest)] = np.nan  # every neighbour an exact copy: no spacing of its own
    if np.isnan(nearest).all():
        return edges, None
    spacing = neighbourhood_spacing(nb, nearest, float(np.nanmedian(nearest)))
    ratio = m / spacing[:, None]
    radius = _copy_radius(np.log(np.maximum(ratio.min(1), 1e-6)))

    def closeness(r):
        return (1.0 - (1.0 - threshold) * r / radius).clip(0.0, 1.0).astype(np.float32)

    np.maximum(edges, closeness(ratio).astype(edges.dtype), out=edges)
    a, b = cell_candidates(cells, rows, gpu_cells=gpu_cells)
    del gpu_cells
    new = ~((nb[a] == b[:, None]).any(1) | (nb[b] == a[:, None]).any(1))  # not already a graph edge
    a, b = a[new], b[new]
    if not len(a):
        return edges, None
    mm = _pair_mismatches(cells, rows, a, b)
    close = closeness(mm / np.minimum(spacing[a], spacing[b]))
    keep = close > 0
    return edges, (a[keep], b[keep], close[keep])


def duplicate_groups(neighbors: np.ndarray, edge_score: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                     content_hashes: np.ndarray | None = None, n_total: int | None = None,
                     node_ids: np.ndarray | None = None, more_hashes: tuple = (),
                     extra_pairs: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(duplicate_group, is_duplicate)`` over ``n_total`` samples.

    ``neighbors``/``edge_score`` are the graph rows of the samples ``node_ids`` (positions in 0..n_total-1,
    default all); graph entries are positions in ``node_ids``. Every edge with score >= ``threshold``
    and every pair with equal non-empty ``content_hashes`` (or equal values in any array of
    ``more_hashes``, e.g. normalised-text hashes) joins a group, as does every pair of ``extra_pairs``
    ``(rows, cols, closeness)`` (graph positions) with closeness >= ``threshold``. Groups of one get id -1; in each group
    every member but the first (lowest position) is flagged."""
    n_graph = len(neighbors)
    n_total = n_graph if n_total is None else n_total
    node_ids = np.arange(n_graph) if node_ids is None else np.asarray(node_ids)
    rows, cols = [], []
    mask = edge_score >= threshold
    r, c = np.nonzero(mask)
    rows.append(node_ids[r])
    cols.append(node_ids[neighbors[r, c]])
    if extra_pairs is not None:
        er, ec, close = extra_pairs
        on = np.asarray(close) >= threshold
        rows.append(node_ids[np.asarray(er)[on]])
        cols.append(node_ids[np.asarray(ec)[on]])
    for hashes in (content_hashes, *more_hashes):
        if hashes is None:
            continue
        h = np.asarray(hashes, dtype=object)
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


# ------------------------------------------------------------------------------- image signatures
SIGNATURE_SHIFT = 2  # whole thumbnail pixels searched each way (a 1-2 px shift of a small image)
SIGNATURE_BLURS = (0.8, 1.5)  # either side may be blurred by this Gaussian sigma (what a resize does)
SIGNATURE_BASE_BLUR = 0.5  # both sides first (JPEG blocks, noise)
MAX_PREPARED = 32768  # distinct images prepared at once per side by signature_distance (~0.45 GB per side)
# A pair is a copy when its signature distance is below this share of the typical one: the median over
# samples of the distance to the closest graph neighbour. Measured on Fashion-MNIST (bench_quality):
# copies (JPEG q75, resized 20 px, shifted 1-2 px, noise) reach at most ~7% of it; distinct neighbours
# below 12% are ~0.1% of the samples.
SIGNATURE_RATIO = 0.12
SIGNATURE_MAX_CUT = 0.02  # never a copy at a correlation below 0.98, whatever the data
SIGNATURE_MIN_CUT = 1e-3  # always a copy at a correlation above 0.999


def signature_cut(distances: np.ndarray) -> float:
    """The default signature-distance cut from the data: ``SIGNATURE_RATIO`` x the median over samples
    of the distance to their closest graph neighbour (``distances``: valid x k), kept in
    [``SIGNATURE_MIN_CUT``, ``SIGNATURE_MAX_CUT``]."""
    d = np.asarray(distances, dtype=np.float64)
    nearest = d.min(1) if d.ndim == 2 and d.shape[1] else d.reshape(-1)
    nearest = nearest[np.isfinite(nearest)]
    if not len(nearest):
        return SIGNATURE_MIN_CUT
    return float(np.clip(SIGNATURE_RATIO * np.median(nearest), SIGNATURE_MIN_CUT, SIGNATURE_MAX_CUT))


SIGNATURE_CANDIDATES = 10  # nearest signatures per sample searched beside the graph's pairs


def signature_candidates(signatures: np.ndarray, k: int = SIGNATURE_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)``: each image's ``k`` nearest others by a shift-invariant coarse signature: the
    magnitudes of the thumbnail's lowest 2-D Fourier frequencies (|ky|, kx <= 8), unit norm. A translation
    leaves them unchanged (a circular one exactly), a resize or JPEG changes the high ones most. The embedding's kNN graph does not keep a shifted or resized
    copy of a small image among its k neighbours (measured: bench_quality, tests); this search on
    64-dim vectors finds those candidates, which :func:`signature_distance` then checks."""
    import torch

    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.embed.signature import SIDE

    n = len(signatures)
    k = int(min(k, n - 1))
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    g = torch.as_tensor(np.ascontiguousarray(signatures[:, :SIDE * SIDE])).reshape(n, SIDE, SIDE).float()
    g = _gaussian_blur(g, SIGNATURE_BASE_BLUR)
    f = torch.fft.rfft2(g - g.mean((1, 2), keepdim=True)).abs()
    f = torch.cat([f[:, :9, :9], f[:, -8:, :9]], 1).reshape(n, -1)
    coarse = (f / f.norm(dim=1, keepdim=True).clamp(min=1e-6)).numpy().astype(np.float32)
    graph = knn_graph(coarse, k, device="cpu")
    return np.repeat(np.arange(n), k), np.asarray(graph.indices).reshape(-1).astype(np.int64)


def with_signatures(edges: np.ndarray, neighbors: np.ndarray, signatures: np.ndarray | None,
                    threshold: float) -> tuple[np.ndarray, tuple | None]:
    """``(edges, extra_pairs)``: the graph edges' closeness (``near_duplicate_score``, valid x k, changed in
    place) raised where the image signatures of the pair say copy, on the same scale: a pair whose
    signature distance ``d`` is at the data's cut (:func:`signature_cut`) gets closeness ``threshold``
    (the default threshold), ``d = 0`` gets 1, so one threshold moves both channels together.
    ``extra_pairs``: ``(rows, cols, closeness)`` of the :func:`signature_candidates` pairs outside the
    graph with closeness > 0 (few: only pairs within ``cut / (1 - threshold)``). ``signatures``: valid x
    ``SIGNATURE_BYTES`` uint8 (None: edges unchanged, no extra pairs)."""
    if signatures is None or not len(edges):
        return edges, None
    n, k = neighbors.shape
    d = signature_distance(signatures, np.repeat(np.arange(n), k), neighbors.reshape(-1)).reshape(n, k)
    cut = signature_cut(d)

    def closeness(dist):
        return (1.0 - (1.0 - threshold) * dist / cut).clip(0.0, 1.0).astype(np.float32)

    np.maximum(edges, closeness(d).astype(edges.dtype), out=edges)
    rows, cols = signature_candidates(signatures)
    new = (rows != cols) & ~np.isin(_pair_key(rows, cols, n),
                                    _pair_key(np.repeat(np.arange(n), k), neighbors.reshape(-1), n))
    rows, cols = rows[new], cols[new]
    close = closeness(signature_distance(signatures, rows, cols))
    keep = close > 0
    return edges, (rows[keep], cols[keep], close[keep])


def _pair_key(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """One int64 per unordered pair (either direction the same key)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    return np.minimum(rows, cols) * (n + 1) + np.maximum(rows, cols)


def _gaussian_blur(x, sigma: float):
    """``x``: P x S x S float tensor; separable Gaussian, edges replicated (weighted sums of shifted
    slices: several times faster than a conv2d with a 1-D kernel on these small grids, same values)."""
    import torch

    if not sigma:
        return x
    r = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    _, H, W = x.shape
    y = torch.nn.functional.pad(x[:, None], (r, r, r, r), mode="replicate")[:, 0]
    h = sum(k[i] * y[:, :, i:i + W] for i in range(2 * r + 1))
    return sum(k[i] * h[:, i:i + H, :] for i in range(2 * r + 1))


class _Side:
    """One side of the pairs prepared for :func:`_overlap_ncc`, once per distinct image (not per pair):
    for images X (U x H x W, standardised), its Fourier transform on the (H + 2s) x (W + 2s) grid and the
    sums and sums of squares of the overlap that each shift in [-s, s]^2 leaves on this side (U x
    (2s+1)^2, from summed-area tables). A pair's correlation only gathers two such rows, so an image
    that enters many pairs (the kNN graph's k, the signature candidates) is blurred, transformed and
    summed once."""

    def __init__(self, x, s: int, padded: bool):
        import torch

        self.s, self.shape = s, tuple(x.shape[1:])
        H, W = self.shape
        grid = (H + 2 * s, W + 2 * s)
        # the B side is zero-padded by s on every edge (its windows are B shifted by -s..s); the A side
        # is padded at the end only, so the product of the two transforms is the wanted correlation
        base = torch.nn.functional.pad(x, (s, s, s, s)) if padded else x
        self.f = torch.fft.rfft2(base, s=grid)
        dy, dx, r0, r1, c0, c1 = _overlaps(s, H, W)
        if padded:  # B's rows and columns that meet A shifted back
            r0, r1, c0, c1 = r0 + dy, r1 + dy, c0 + dx, c1 + dx
        self.sum = _box(_table(x), r0, r1, c0, c1)
        self.sq = _box(_table(x * x), r0, r1, c0, c1)


def _table(x):
    import torch

    return torch.nn.functional.pad(x.cumsum(1).cumsum(2), (1, 0, 1, 0))


def _box(t, a0, a1, b0, b1):
    return t[:, a1, b1] - t[:, a0, b1] - t[:, a1, b0] + t[:, a0, b0]


def _overlaps(s: int, H: int, W: int):
    """For each shift (dy, dx) of B in [-s, s]^2 (row-major): the shift and the rows [r0, r1) and
    columns [c0, c1) of A that meet B."""
    import torch

    lags = torch.arange(-s, s + 1)
    dy, dx = torch.meshgrid(lags, lags, indexing="ij")
    dy, dx = dy.reshape(-1), dx.reshape(-1)
    r0, r1 = torch.clamp(-dy, min=0), H - torch.clamp(dy, min=0)
    c0, c1 = torch.clamp(-dx, min=0), W - torch.clamp(dx, min=0)
    return dy, dx, r0, r1, c0, c1


def _overlap_ncc(A: _Side, ia, B: _Side, ib):
    """Normalised cross-correlation of the pairs (``A``'s image ``ia[p]``, ``B``'s image ``ib[p]``) on
    their overlap, for every shift of B by (dy, dx) in [-s, s]^2; P x (2s+1)^2. ``A``: prepared with
    ``padded=False``, ``B``: ``padded=True``, same ``s``. The products come from one FFT correlation per
    pair (batched), the overlap's sums and squares from the sides' prepared box sums."""
    import torch

    s = A.s
    H, W = A.shape
    grid = (H + 2 * s, W + 2 * s)
    corr = torch.fft.irfft2(B.f[ib] * A.f[ia].conj(), s=grid)
    ab = corr[:, :2 * s + 1, :2 * s + 1].reshape(len(ia), -1)  # (u, v): B shifted by (u-s, v-s)
    _, _, r0, r1, c0, c1 = _overlaps(s, H, W)
    m = ((r1 - r0) * (c1 - c0)).to(ab.dtype)
    sa, saa, sb, sbb = A.sum[ia], A.sq[ia], B.sum[ib], B.sq[ib]
    cov = ab - sa * sb / m
    va, vb = saa - sa * sa / m, sbb - sb * sb / m
    ok = (va > 1e-4 * m) & (vb > 1e-4 * m)  # a flat overlap has no correlation to speak of
    return torch.where(ok, cov / torch.sqrt(torch.clamp(va * vb, min=1e-12)), torch.full_like(cov, -1.0))


def _standard(x):
    """uint8 grids (U x H x W) -> base-blurred, standardised float32 grids (per image)."""
    x = _gaussian_blur(x.float(), SIGNATURE_BASE_BLUR)
    return (x - x.mean((1, 2), keepdim=True)) / (x.std((1, 2), keepdim=True) + 1e-3)


def _prepared(X, padded: bool, chunk: int = 2048) -> list:
    """The sides of standardised grids ``X`` (U x H x W): ``[plain, blurred by each of SIGNATURE_BLURS]``,
    each a :class:`_Side` over all U images (prepared in chunks of images to bound the blur's temporaries)."""
    import torch

    s = SIGNATURE_SHIFT
    parts = []
    for k in range(0, len(X), chunk):
        x = X[k:k + chunk]
        parts.append([_Side(x, s, padded)] + [_Side(_gaussian_blur(x, sigma), s, padded) for sigma in SIGNATURE_BLURS])
    if len(parts) == 1:
        return parts[0]
    out = []
    for v in range(len(parts[0])):
        side = parts[0][v]
        side.f = torch.cat([p[v].f for p in parts])
        side.sum = torch.cat([p[v].sum for p in parts])
        side.sq = torch.cat([p[v].sq for p in parts])
        out.append(side)
    return out


def _best_correlation(A: list, ia, B: list, ib):
    """Best overlap correlation of the pairs (``ia[p]``, ``ib[p]``) over the shifts and blurs: the plain
    sides against each other, and each blurred variant of one side against the other's plain side."""
    import torch

    best = _overlap_ncc(A[0], ia, B[0], ib).max(1).values
    for v in range(1, len(A)):
        best = torch.maximum(best, _overlap_ncc(A[v], ia, B[0], ib).max(1).values)
        best = torch.maximum(best, _overlap_ncc(A[0], ia, B[v], ib).max(1).values)
    return best


def signature_distance(signatures: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 512) -> np.ndarray:
    """``1 -`` the best normalised cross-correlation of the image signatures
    (:func:`dqwidgets.embed.signature.image_signature`, N x ``SIGNATURE_BYTES`` uint8) of each pair
    ``(rows[p], cols[p])``, over shifts of up to ``SIGNATURE_SHIFT`` pixels each way with either side
    blurred by each of ``SIGNATURE_BLURS``; float32 in [1e-6, 2] (a flat image is at 2 from everything).
    Two small images of the same size are compared on their own pixels, everything else on the grid.

    The distance is symmetric (the shifts run both ways, either side is blurred), so each unordered pair
    is compared once: a kNN graph lists a quarter of its pairs twice (a and b each other's neighbours;
    notebook 01: 63,435 pairs, 47,864 distinct)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    n = len(signatures)
    key = np.minimum(rows, cols) * (n + 1) + np.maximum(rows, cols)
    distinct, back = np.unique(key, return_inverse=True)
    if len(distinct) == len(key):
        return _signature_distance(signatures, rows, cols, chunk)
    return _signature_distance(signatures, distinct // (n + 1), distinct % (n + 1), chunk)[back.reshape(-1)]


def _signature_distance(signatures: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int) -> np.ndarray:
    """``signature_distance`` of the pairs as given (each compared, repeats included)."""
    import torch

    from dqwidgets.embed.signature import SIDE

    out = np.empty(len(rows), dtype=np.float32)
    if not len(rows):
        return out
    sig = np.ascontiguousarray(signatures, dtype=np.uint8)
    grids = torch.as_tensor(sig[:, :SIDE * SIDE].reshape(-1, SIDE, SIDE))
    hw = sig[:, SIDE * SIDE:].astype(np.int64)
    same = (hw[rows] == hw[cols]).all(1)
    region = np.where(same[:, None], hw[rows], SIDE)  # the grid area a pair is compared on
    key = region[:, 0] * (SIDE + 1) + region[:, 1]
    from dqwidgets.compute.device import cpu_threads_for

    # 32 x 32 FFTs and box sums: one CPU thread each op (two on a busy machine wait on each other)
    with torch.no_grad(), cpu_threads_for(0, torch.device("cpu")):
        for value in np.unique(key):
            h, w = divmod(int(value), SIDE + 1)
            h, w = max(h, 2 * SIGNATURE_SHIFT + 2), max(w, 2 * SIGNATURE_SHIFT + 2)
            group = np.flatnonzero(key == value)
            # each distinct image of a block prepared once per side (standardised on the pair's region);
            # one block when the group has few enough distinct images, else blocks of that many pairs
            # (memory: ~14 kB per prepared image and side)
            few = len(np.union1d(rows[group], cols[group])) <= MAX_PREPARED
            for b0 in range(0, len(group), len(group) if few else MAX_PREPARED):
                pick = group[b0:b0 + (len(group) if few else MAX_PREPARED)]
                ua, ia = np.unique(rows[pick], return_inverse=True)
                ub, ib = np.unique(cols[pick], return_inverse=True)
                A = _prepared(_standard(grids[torch.as_tensor(ua), :h, :w]), padded=False)
                B = _prepared(_standard(grids[torch.as_tensor(ub), :h, :w]), padded=True)
                ia, ib = torch.as_tensor(ia.reshape(-1)), torch.as_tensor(ib.reshape(-1))
                for k in range(0, len(pick), chunk):
                    best = _best_correlation(A, ia[k:k + chunk], B, ib[k:k + chunk])
                    out[pick[k:k + chunk]] = (1.0 - best).clamp(min=1e-6).numpy()
    return out

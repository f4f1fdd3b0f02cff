import numpy as np
import pytest
import torch

from dqwidgets.compute.device import resolve_device
from dqwidgets.compute.knn import drop_self, knn_graph, knn_query


def _brute(X, k, metric):
    if metric == "cosine":
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        D = 1 - U @ U.T
    else:
        D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, 1, kind="stable")[:, :k]
    return idx, np.take_along_axis(D, idx, 1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_graph_matches_brute_force_and_excludes_self(metric):
    X = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32)
    g = knn_graph(X, 7, metric=metric, device="cpu", method="exact")
    idx, dist = _brute(X.astype(np.float64), 7, metric)
    assert g.indices.shape == (300, 7) and g.indices.dtype == np.int64
    assert not (g.indices == np.arange(300)[:, None]).any()
    np.testing.assert_allclose(g.distances, dist, atol=1e-4)
    assert (g.indices == idx).mean() > 0.99  # ties may order differently


def test_exact_chunks_give_the_same_graph(monkeypatch):
    import dqwidgets.compute.knn as knn

    X = np.random.default_rng(1).normal(size=(257, 8)).astype(np.float32)
    full = knn_graph(X, 5, device="cpu", method="exact")
    monkeypatch.setattr(knn, "_CHUNK_ELEMENTS", 257 * 10)  # 10 rows per chunk
    chunked = knn_graph(X, 5, device="cpu", method="exact")
    np.testing.assert_array_equal(full.indices, chunked.indices)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_low_precision_product_reranked_in_float32_gives_the_float32_graph(metric, monkeypatch):
    """The GPU path: the candidate product in a low precision (bfloat16 here, coarser than the float16
    used on a GPU), the k + RERANK_EXTRA best re-ranked in float32. Clustered data with close
    neighbours, in chunks: the neighbours are the float32 ones and the distances float32 ones."""
    import dqwidgets.compute.knn as knn

    rng = np.random.default_rng(2)
    X = (rng.normal(size=(20, 64))[rng.integers(0, 20, 600)] + 0.3 * rng.normal(size=(600, 64))).astype(np.float32)
    P = knn._prepare(torch.as_tensor(X), metric)
    i32, d32 = knn._search(P, P, 10, metric, self_offset=0, low_precision=None)
    monkeypatch.setattr(knn, "_CHUNK_ELEMENTS", 600 * 64)  # several chunks
    i16, d16 = knn._search(P, P, 10, metric, self_offset=0, low_precision=torch.bfloat16)
    same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i32.numpy(), i16.numpy())])
    assert same > 0.995
    assert not (i16.numpy() == np.arange(600)[:, None]).any()
    np.testing.assert_allclose(np.sort(d16.numpy(), 1), np.sort(d32.numpy(), 1), atol=1e-3)
    # the bfloat16 product's own top-k, not re-ranked, loses neighbours: the test can tell
    sim = (P.bfloat16() @ P.bfloat16().T).float()
    if metric == "euclidean":
        sim = 2 * sim - (P * P).sum(1)
    sim.fill_diagonal_(-float("inf"))
    raw = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i32.numpy(), sim.topk(10, 1).indices.numpy())])
    assert raw < same


def _recall(exact, approx) -> float:
    """Share of the exact graph's neighbours that the approximate graph also found."""
    k = exact.indices.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact.indices, approx.indices)]))


@pytest.mark.slow  # pynndescent compiles its numba kernels on first use in a process (~100 s on 2 cores)
def test_nndescent_graph_has_high_recall_on_clustered_data():
    rng = np.random.default_rng(0)
    X = (rng.normal(0, 4, (8, 16))[rng.integers(0, 8, 3000)] + rng.normal(size=(3000, 16))).astype(np.float32)
    exact = knn_graph(X, 10, device="cpu", method="exact")
    approx = knn_graph(X, 10, device="cpu", method="nndescent")
    assert approx.method == "nndescent" and approx.indices.shape == (3000, 10)
    assert not (approx.indices == np.arange(3000)[:, None]).any()
    recall = _recall(exact, approx)
    assert recall > 0.8
    # distances are cosine distances in the same units as the exact graph
    assert abs(np.median(approx.distances) - np.median(exact.distances)) < 0.05 * np.median(exact.distances) + 1e-3


def test_ivf_graph_finds_most_true_neighbours_without_self():
    rng = np.random.default_rng(0)
    X = (rng.normal(0, 4, (20, 16))[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 16))).astype(np.float32)
    exact = knn_graph(X, 10, device="cpu", method="exact")
    approx = knn_graph(X, 10, device="cpu", method="ivf")
    assert approx.method == "ivf" and approx.indices.shape == (4000, 10)
    assert not (approx.indices == np.arange(4000)[:, None]).any()
    recall = _recall(exact, approx)
    assert recall > 0.8
    assert (np.diff(approx.distances, axis=1) >= -1e-6).all()  # nearest first
    assert (approx.distances >= exact.distances - 1e-5).all()  # never nearer than the true neighbours


def test_drop_self_removes_own_index_or_last_column():
    idx = np.array([[0, 5, 6], [3, 4, 1]])  # row 1 did not return itself (an exact duplicate took its place)
    dist = np.array([[0.0, 0.1, 0.2], [0.0, 0.3, 0.4]], dtype=np.float32)
    i, d = drop_self(idx, dist)
    np.testing.assert_array_equal(i, [[5, 6], [3, 4]])
    np.testing.assert_allclose(d, [[0.1, 0.2], [0.0, 0.3]])


def test_query_against_reference():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(200, 6)).astype(np.float32)
    q = knn_query(R[:10] + 1e-4, R, 3, device="cpu")
    np.testing.assert_array_equal(q.indices[:, 0], np.arange(10))
    with pytest.raises(ValueError, match="features"):
        knn_query(R[:, :5], R, 3, device="cpu")


def test_bad_arguments_are_clear():
    X = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="k=5"):
        knn_graph(X, 5, device="cpu")
    with pytest.raises(ValueError, match="metric"):
        knn_graph(X, 2, metric="manhattan", device="cpu")
    with pytest.raises(ValueError, match="method"):
        knn_graph(np.random.rand(20, 3), 2, device="cpu", method="faiss")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            resolve_device("cuda")


def test_ivf_parameters_reach_recall_at_15_of_0_9_on_isotropic_clusters():
    """The hardest case measured for the cells: Gaussian clusters whose members are isotropic in 128-D,
    as in bench_analyze. The graph method and its parameters are the ones analyze uses above the exact cut-off."""
    from dqwidgets.compute.knn import ivf_parameters

    rng = np.random.default_rng(0)
    n = 15_000
    X = (rng.normal(0, 3, (10, 128))[rng.integers(0, 10, n)] + rng.normal(size=(n, 128))).astype(np.float32)
    approx = knn_graph(X, 15, device="cpu", method="ivf")
    queries = rng.choice(n, 500, replace=False)
    exact = knn_query(X[queries], X, 16, device="cpu")
    exact.indices = np.array([[j for j in row if j != q][:15] for row, q in zip(exact.indices, queries)])
    recall = float(np.mean([len(set(a) & set(b)) / 15 for a, b in zip(exact.indices, approx.indices[queries])]))
    assert recall >= 0.9, f"IVF recall@15 {recall:.3f} with (cells, probes) = {ivf_parameters(n)}"
    cells, probes = ivf_parameters(n)
    assert probes < 0.15 * cells                  # still a small share of the exact search's work
    assert ivf_parameters(1_000_000)[1] <= 96 and ivf_parameters(100)[1] >= 8


def test_cells_for_recall_predicts_the_recall_of_the_cell_search_and_picks_the_fewest_cells():
    """The nprobe chosen from the exact neighbours' cell ranks gives the target recall, the recall
    it reports is the one the cell search measures, and one cell fewer falls short of the target."""
    from dqwidgets.compute.knn import _Cells, _kmeans, cells_for_recall

    rng = np.random.default_rng(4)
    centers = rng.normal(size=(6, 32)) * 1.5
    X = (centers[rng.integers(0, 6, 4000)] + rng.normal(size=(4000, 32))).astype(np.float32)
    P = torch.nn.functional.normalize(torch.as_tensor(X), dim=1)
    C = _kmeans(P, 64, 0)
    cell = (P @ C.T).argmax(1)
    order = torch.argsort(cell)
    counts = torch.bincount(cell, minlength=64)
    starts = torch.cumsum(counts, 0) - counts
    q = rng.choice(4000, 300, replace=False)
    sim = (P[q] @ P.T).numpy()
    sim[np.arange(300), q] = -np.inf
    exact = np.argsort(-sim, 1)[:, :10]

    def measured(nprobe):
        near = torch.topk(C @ C.T, nprobe, dim=1).indices
        cells = _Cells(P[order], order, starts.tolist(), counts.tolist(), near.tolist())
        out_i = torch.full((4000, 10), -1, dtype=torch.int64)
        for c in range(64):
            cells.search(c, 10, "cosine", out_i, torch.empty((4000, 10)))
        got = out_i.numpy()[q]
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])

    home, nb = cell.numpy()[q], cell.numpy()[exact]
    nprobe, predicted = cells_for_recall(home, nb, C.numpy(), 0.95)
    assert 1 < nprobe < 64 and predicted >= 0.95
    assert abs(measured(nprobe) - predicted) < 0.005
    fewer = cells_for_recall(home, nb, C.numpy(), 0.95, nprobe=nprobe - 1)[1]
    assert fewer < 0.95 and abs(measured(nprobe - 1) - fewer) < 0.005

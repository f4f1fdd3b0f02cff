import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from dqwidgets.compute.slices import graph_slices, slice_table
from dqwidgets.compute.spurious import encode_attribute


def knn(X, k=10):
    return NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)[1][:, 1:].astype(np.int64)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    sizes = [400, 300, 250, 200, 150, 100]
    centres = rng.normal(0, 6, (len(sizes), 16))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    X = centres[truth] + rng.normal(0, 1, (truth.size, 16))
    order = rng.permutation(truth.size)
    return X[order], truth[order], knn(X[order])


def test_slices_recover_separated_clusters_numbered_by_size(blobs):
    X, truth, nbrs = blobs
    s = graph_slices(nbrs)
    assert s.dtype == np.int64 and s.shape == truth.shape
    assert adjusted_rand_score(truth, s) > 0.95
    sizes = np.bincount(s)
    assert np.all(np.diff(sizes) <= 0), "slice 0 must be the largest"


def test_fixed_number_of_slices_merges_and_splits(blobs):
    X, truth, nbrs = blobs
    merged = graph_slices(nbrs, n_slices=3)
    assert np.unique(merged).tolist() == [0, 1, 2]
    for t in np.unique(truth):  # merging keeps every cluster whole
        assert np.bincount(merged[truth == t]).max() >= 0.98 * (truth == t).sum()
    split = graph_slices(nbrs, n_slices=10)
    assert np.unique(split).size == 10
    for s in np.unique(split):  # splitting stays inside one cluster
        assert np.bincount(truth[split == s]).max() >= 0.95 * (split == s).sum()


def test_slices_are_deterministic_for_a_seed(blobs):
    _, _, nbrs = blobs
    assert np.array_equal(graph_slices(nbrs, seed=3), graph_slices(nbrs, seed=3))


def test_small_communities_are_folded_and_isolated_rows_get_minus_one(blobs):
    plane = knn(np.random.default_rng(1).random((1500, 2)))  # one connected sheet: many communities
    assert np.bincount(graph_slices(plane)).min() < 150
    assert np.bincount(graph_slices(plane, min_size=150)).min() >= 150
    _, _, nbrs = blobs
    cut = nbrs.copy()
    cut[5] = -1  # a row left out of the graph: no edges of its own, and nobody points at it
    cut[cut == 5] = -1
    out = graph_slices(cut)
    assert out[5] == -1 and (np.delete(out, 5) >= 0).all()


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5, 3), dtype=np.float32), "integer"),
    (np.full((5, 3), 7, dtype=np.int64), "out of range"),
])
def test_bad_graph_is_a_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        graph_slices(bad)


def test_bad_slice_count_is_a_clear_error(blobs):
    with pytest.raises(ValueError, match="n_slices"):
        graph_slices(blobs[2], n_slices=0)


def test_slice_table_counts_errors_labels_and_describes_the_slice():
    slice_id = np.array([0, 0, 0, 0, 1, 1, 1, 1, -1])
    labels = np.array([0, 0, 0, 1, 1, 1, -1, 1, 0])
    preds = np.array([0, 1, 0, 1, 1, 0, 1, 1, 0])
    patch = encode_attribute(np.array([True, True, True, True, False, False, False, False, False]))
    colour = encode_attribute(np.array(["red", "blue", "red", "blue", "red", "blue", "red", "blue", "red"]))
    t = slice_table(slice_id, labels, preds, {"patch": patch, "colour": colour}, ["cat", "dog"])
    assert t["slice_id"].tolist() == [0, 1]
    assert t["size"].tolist() == [4, 4]
    assert t["error_rate"].tolist() == pytest.approx([1 / 4, 1 / 3])  # unlabelled sample left out
    assert t["dominant_label"].tolist() == ["cat", "dog"]
    assert t["dominant_share"].tolist() == pytest.approx([3 / 4, 1.0])
    assert t["description"][0] == "patch=True (100% vs 44%)"
    assert t["description"][1] == "patch=False (100% vs 56%)"


def test_slice_table_without_predictions_or_labels():
    t = slice_table(np.array([0, 0, 1]), np.array([-1, -1, 0]), None, {}, ["a"])
    assert np.isnan(t["error_rate"]).all()
    assert t["dominant_label"].tolist() == [None, "a"]
    assert t["description"].tolist() == ["", ""]


def test_slice_table_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one entry per sample"):
        slice_table(np.array([0, 1]), np.array([0]), None, {}, ["a"])


def test_one_graph_shares_its_adjacency_and_partitions_with_identical_results(blobs):
    from dqwidgets.compute import slices

    _, _, nbrs = blobs
    nbrs = nbrs.copy()
    fresh = slices.graph_slices(nbrs.copy(), seed=2)   # another array: nothing shared with nbrs
    adjacency = slices._symmetric_adjacency(nbrs)
    assert slices._symmetric_adjacency(nbrs) is adjacency  # built once for the array
    coarse = slices._leiden(adjacency, 1.0, 2)
    fine = slices._leiden(adjacency, 30.0, 2)
    assert fine.max() > coarse.max()
    assert np.array_equal(slices.graph_slices(nbrs, seed=2), fresh)  # reuses the kept resolution-1 partition
    coarse[:] = -5  # callers get copies: the kept partition is untouched
    assert np.array_equal(slices._leiden(adjacency, 1.0, 2), slices._leiden(slices._build_adjacency(nbrs), 1.0, 2))
    nbrs[0, 0] = nbrs[0, 1]  # a changed array is computed afresh
    assert slices._symmetric_adjacency(nbrs) is not adjacency
    slices.release_graph(nbrs)
    assert id(nbrs) not in slices._KEPT


def test_prefetched_partitions_are_the_ones_leiden_computes(blobs, monkeypatch):
    from dqwidgets.compute import slices

    monkeypatch.setattr(slices, "PREFETCH_MIN_N", 0)
    _, _, nbrs = blobs
    nbrs = nbrs.copy()
    expected = {r: slices._leiden(slices._build_adjacency(nbrs), r, 4) for r in (1.0, 3.0, 30.0)}
    slices.prefetch_partitions(nbrs, (30.0, 1.0, 3.0), seed=4, workers=2)
    adjacency = slices._symmetric_adjacency(nbrs)
    assert len(slices._entry_of(adjacency)["pending"]) == 3
    # the workers (forked before this) run Leiden; the parent only collects, on the igraph graph it built once
    with monkeypatch.context() as m:
        m.setattr(slices, "_run_leiden", lambda *a: pytest.fail("a prefetched partition was computed again"))
        for r, membership in expected.items():
            assert np.array_equal(slices._leiden(adjacency, r, 4), membership)
    assert not slices._entry_of(adjacency)["pending"] and "igraph" in slices._entry_of(adjacency)
    slices.prefetch_partitions(nbrs, (10.0,), seed=4)
    slices.release_graph(nbrs)  # stops a worker still running
    assert id(nbrs) not in slices._KEPT


def test_a_prefetch_worker_that_hangs_is_given_up_and_the_partition_computed_here(blobs, monkeypatch):
    """A forked child can hang on a lock another thread held at fork time: analyze must not wait on
    it for ever, and the partition it then computes itself is Leiden's own."""
    import os
    import time

    from dqwidgets.compute import slices

    monkeypatch.setattr(slices, "PREFETCH_MIN_N", 0)
    monkeypatch.setattr(slices, "PREFETCH_PATIENCE_S", 2.0)
    _, _, nbrs = blobs
    nbrs = nbrs.copy()
    expected = slices._leiden(slices._build_adjacency(nbrs), 3.0, 5)
    parent, run = os.getpid(), slices._run_leiden

    def hang_in_the_child(graph, resolution, seed):
        while os.getpid() != parent:
            time.sleep(1)
        return run(graph, resolution, seed)

    monkeypatch.setattr(slices, "_run_leiden", hang_in_the_child)
    slices.prefetch_partitions(nbrs, (3.0,), seed=5, workers=1)
    adjacency = slices._symmetric_adjacency(nbrs)
    (_, proc), = slices._entry_of(adjacency)["pending"].values()
    t = time.monotonic()
    assert np.array_equal(slices._leiden(adjacency, 3.0, 5), expected)
    assert time.monotonic() - t < 30
    proc.join(10)
    assert not proc.is_alive()  # the hung worker was ended, not left behind
    slices.release_graph(nbrs)


def test_partitions_kept_from_elsewhere_are_used_and_no_igraph_graph_is_built():
    """keep_partitions (the Ray engine's driver, with partitions a worker computed from the same
    graph): graph_slices returns what it computes itself, without building the igraph graph."""
    from dqwidgets.compute import slices as sl
    from dqwidgets.compute.knn import knn_graph

    rng = np.random.default_rng(2)
    centers = rng.normal(size=(4, 8)) * 4
    X = centers[rng.integers(0, 4, 600)] + rng.normal(size=(600, 8))
    nb = knn_graph(X.astype(np.float32), 10, device="cpu", method="exact").indices
    own = sl.graph_slices(nb.copy(), seed=0)
    parts = sl.partitions_of(nb.copy(), (1.0, 3.0), seed=0)  # "another process": another array
    sl.keep_partitions(nb, parts)
    np.testing.assert_array_equal(sl.graph_slices(nb, seed=0), own)
    assert "igraph" not in sl._kept_for(nb)
    sl.release_graph(nb)

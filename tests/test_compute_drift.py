import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from dqwidgets.compute.drift import knn_group_test, knn_order_test


def knn(X, k=10):
    return NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)[1][:, 1:].astype(np.int64)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 8))
    return X, rng.integers(0, 3, len(X))


def test_random_splits_are_mixed_as_chance_predicts(data):
    X, groups = data
    stat, p = knn_group_test(knn(X), groups)
    assert abs(stat) < 0.03
    assert p > 0.05


def test_a_shifted_split_is_detected(data):
    X, groups = data
    shifted = X.copy()
    shifted[groups == 2, 0] += 1.5  # the "test" split comes from a shifted distribution
    stat, p = knn_group_test(knn(shifted), groups)
    assert stat > 0.1
    assert p <= 0.01


def test_group_test_ignores_ungrouped_rows_and_needs_two_groups(data):
    X, groups = data
    nbrs = knn(X)
    partial = groups.copy()
    partial[:500] = -1
    stat, p = knn_group_test(nbrs, partial)
    assert np.isfinite(stat) and 0 < p <= 1
    assert np.isnan(knn_group_test(nbrs, np.zeros(len(X), np.int64))[1])
    with pytest.raises(ValueError, match="one group code per sample"):
        knn_group_test(nbrs, groups[:10])


def test_group_test_on_an_edge_sample_still_detects_drift(data):
    X, groups = data
    shifted = X.copy()
    shifted[groups == 1, :2] += 1.0
    stat, p = knn_group_test(knn(shifted), groups, max_nodes=300, n_permutations=100)
    assert stat > 0.05 and p <= 0.02


def test_shuffled_rows_pass_the_order_test(data):
    X, _ = data
    stat, p = knn_order_test(knn(X))
    assert 0 <= stat < 0.05
    assert p > 0.05


def test_rows_sorted_by_content_fail_the_order_test(data):
    X, _ = data
    sorted_rows = X[np.argsort(X[:, 0])]
    stat, p = knn_order_test(knn(sorted_rows))
    assert stat > 0.2
    assert p <= 0.01


def test_order_test_finds_blocks_of_a_slowly_drifting_source():
    rng = np.random.default_rng(1)
    t = np.arange(1500)
    X = rng.normal(size=(1500, 8)) + (t // 300)[:, None] * 0.8  # five batches, each shifted
    stat, p = knn_order_test(knn(X), n_permutations=100)
    assert p <= 0.01


def test_order_test_is_deterministic_and_rejects_a_bad_graph(data):
    X, _ = data
    nbrs = knn(X)
    assert knn_order_test(nbrs, seed=4) == knn_order_test(nbrs, seed=4)
    with pytest.raises(ValueError, match="integer"):
        knn_order_test(nbrs.astype(np.float64))
    assert np.isnan(knn_order_test(nbrs[:2, :1] * 0)[0])

import numpy as np

from dqwidgets.compute.duplicates import cross_split_groups, duplicate_groups, near_duplicate_score
from dqwidgets.compute.knn import knn_graph


def test_near_copies_and_exact_hashes_form_groups_with_one_member_kept():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 16)).astype(np.float32)
    X[50] = X[10] + 1e-3
    X[51] = X[10] - 1e-3
    g = knn_graph(X, 5, device="cpu")
    edge = near_duplicate_score(g.distances)
    hashes = np.array([None] * 200, dtype=object)
    hashes[[100, 150]] = "same-bytes"
    group, is_dup = duplicate_groups(g.indices, edge, 0.87, hashes)
    assert group[10] == group[50] == group[51] >= 0 and is_dup[[50, 51]].all() and not is_dup[10]
    assert group[100] == group[150] >= 0 and group[100] != group[10] and is_dup[150] and not is_dup[100]
    assert (group >= 0).sum() == 5 and is_dup.sum() == 3
    leaks = cross_split_groups(group, np.where(np.arange(200) < 50, 0, 1))
    assert leaks.tolist() == [group[10]]

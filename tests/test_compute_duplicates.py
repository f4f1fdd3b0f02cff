import numpy as np
import pytest

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


def test_a_tight_cluster_of_distinct_samples_is_not_copies_but_a_copy_inside_it_is():
    """Closeness is measured on the neighbourhood's own spacing: 12 distinct samples packed 30x
    tighter than the rest (fewer than k, so each one's k-th neighbour lies outside) are not near
    copies of each other: they are as close to each other as their neighbours are. A jittered copy
    inside that cluster, and a group of four copies elsewhere, are much closer than the samples
    around them and form groups."""
    from dqwidgets.compute.duplicates import near_copy_edges

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 16))
    cluster = np.arange(400, 412)
    tight = 8.0 + rng.normal(0, 1 / 30, (12, 16))  # far from the rest, 30x denser
    X = np.vstack([X, tight])
    copies = {10: [412], 20: [413, 414, 415], 400: [416]}  # 400: a member of the tight cluster
    extra = [X[src] + rng.normal(0, 0.01 * (1 / 30 if src >= 400 else 1.0), 16) for src, cs in copies.items() for _ in cs]
    X = np.vstack([X, extra]).astype(np.float32)
    g = knn_graph(X, 15, device="cpu")
    edges, threshold, _ = near_copy_edges(g.distances, g.metric, g.indices)
    group, _ = duplicate_groups(g.indices, edges, threshold)
    for src, cs in copies.items():
        assert group[src] >= 0 and (group[cs] == group[src]).all(), (src, group[[src, *cs]])
    assert (group >= 0).sum() == sum(1 + len(cs) for cs in copies.values())  # nothing else, no cluster member
    # on the sample's own k-th neighbour (the former scale) the tight cluster became one "duplicate group"
    old = near_duplicate_score(g.distances, g.metric)
    old_group, _ = duplicate_groups(g.indices, old, threshold)
    assert (old_group[cluster] >= 0).mean() > 0.5


def test_neighbourhood_spacing_ignores_exact_copies_and_falls_back_when_undefined():
    from dqwidgets.compute.duplicates import nearest_distinct_distance, neighbourhood_spacing

    d = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.2, 0.3, 0.4]], np.float32)
    nearest = nearest_distinct_distance(d, "euclidean")
    assert nearest[0] == np.float32(0.5) and np.isnan(nearest[1]) and nearest[2] == np.float32(0.2)
    s = neighbourhood_spacing(np.array([[1, 1, 1], [0, 2, 0], [2, 2, 2]]), nearest, fallback=9.0)
    assert s == pytest.approx([9.0, 0.5, 0.2])  # row 0: no distinct neighbour; row 1: median of 0.5, 0.2, 0.5

"""The driver-side steps that work in row blocks (#15: driver memory at 1M rows) give what one pass over
the whole arrays gives: block sizes of a few rows against the plain numpy / scipy formula."""

import numpy as np
from scipy import sparse


def _graph(n=300, k=6, seed=0):
    rng = np.random.default_rng(seed)
    nb = rng.integers(0, n, (n, k))
    nb[:, 0] = np.arange(n)  # self entries are left out
    nb[5, 2] = -1  # a missing neighbour
    nb[7, 3] = nb[7, 4]  # a neighbour listed twice counts once
    return nb


def test_blocked_adjacency_is_the_coo_build():
    from dqwidgets.compute.slices import _build_adjacency

    nb = _graph()
    n, k = nb.shape
    rows, cols = np.repeat(np.arange(n), k), nb.reshape(-1)
    keep = (cols >= 0) & (cols != rows)
    a = sparse.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(n, n))
    a.sum_duplicates()
    a.data[:] = 1.0
    ref = (a + a.T).tocsr()
    for block in (1, 7, 1 << 17):
        got = _build_adjacency(nb, block=block)
        assert got.indices.dtype == np.int32 and got.data.dtype == np.float32
        assert (got != ref).nnz == 0 and got.nnz == ref.nnz


def test_condensed_weights_and_conductance_sums_are_the_matrix_products():
    from dqwidgets.compute.slices import _build_adjacency, _condense, community_edges

    A = _build_adjacency(_graph())
    memb = np.random.default_rng(1).integers(0, 9, A.shape[0])
    member = sparse.csr_matrix((np.ones(len(memb)), (np.arange(len(memb)), memb)), shape=(len(memb), 9))
    np.testing.assert_allclose(_condense(A, memb, 9), (member.T @ A @ member).toarray())
    vol = np.zeros(9)
    for here, there, w in community_edges(A, memb, block=11):
        vol += np.bincount(here, w, minlength=9)
    np.testing.assert_allclose(vol, np.asarray(member.T @ A.sum(1)).ravel())


def test_blocked_temperature_and_label_distribution_match_one_pass():
    from dqwidgets.compute import calibration
    from dqwidgets.compute.foreign import calibrated_label_probability
    from dqwidgets.compute.label import knn_label_distribution

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (500, 4))
    labels = rng.integers(-1, 4, 500)
    whole = calibration.fit_temperature(logits, labels, block=10**6)
    assert abs(calibration.fit_temperature(logits, labels, block=13) - whole) < 1e-6
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got, t = calibrated_label_probability(P.astype(np.float32), labels)
    lp = np.log(np.clip(P.astype(np.float32).astype(np.float64), 1e-6, 1.0))
    ref = np.clip(calibration.apply_temperature(lp, t), 1e-6, 1.0)
    np.testing.assert_allclose(got, ref / ref.sum(1, keepdims=True), atol=1e-6)
    nb = _graph(n=500)
    nb[nb < 0] = 0
    codes = rng.integers(-1, 3, 500)
    Q = knn_label_distribution(nb, codes, 3)
    for i in (0, 5, 499):
        lab = codes[nb[i]]
        lab = lab[lab >= 0]
        expect = np.bincount(lab, minlength=3) / len(lab) if len(lab) else np.full(3, 1 / 3)
        np.testing.assert_allclose(Q[i], expect, atol=1e-6)

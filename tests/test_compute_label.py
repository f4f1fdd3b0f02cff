import numpy as np
import pytest

from dqwidgets.compute.label import confident_joint, find_label_issues, knn_label_distribution, per_class_thresholds


def test_thresholds_and_confident_joint_count_flipped_labels():
    y = np.array([0] * 50 + [1] * 50)
    P = np.where(np.arange(2)[None, :] == y[:, None], 0.9, 0.1)
    P[:5] = [0.1, 0.9]  # five samples labelled 0 that the model puts in class 1
    t = per_class_thresholds(P, y)
    np.testing.assert_allclose(t, [(45 * 0.9 + 5 * 0.1) / 50, 0.9])
    cj = confident_joint(P, y)
    assert cj.sum(1).tolist() == [50, 50] and round(cj[0, 1]) == 5 and round(cj[1, 0]) == 0


def test_knn_label_distribution_ignores_unlabelled_neighbours():
    labels = np.array([0, 1, 1, -1])
    nbrs = np.array([[1, 2], [2, 3], [1, 3], [0, 1]])
    Q = knn_label_distribution(nbrs, labels, 2)
    np.testing.assert_allclose(Q, [[0, 1], [0, 1], [0, 1], [0.5, 0.5]])


def test_find_label_issues_flags_the_flipped_and_suggests_the_true_label():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 600)
    y = y_true.copy()
    y[:30] = (y[:30] + 1) % 3
    P = np.full((600, 3), 0.05)
    P[np.arange(600), y_true] = 0.9
    nbrs = np.array([rng.choice(np.flatnonzero(y_true == c), 10) for c in y_true])
    out = find_label_issues(P, nbrs, y)
    assert out.is_label_issue[:30].all() and out.is_label_issue[30:].sum() == 0
    np.testing.assert_array_equal(out.suggested_label[:30], y_true[:30])
    assert (out.label_issue_score[:30] > 0.8).all() and (out.label_issue_score[30:] < 0.3).all()


def test_a_foreign_sample_counts_as_a_wrong_label_and_the_count_follows():
    from dqwidgets.compute.label import with_foreign

    score = np.array([0.9, 0.1, 0.05, np.nan, 0.0], dtype=np.float32)
    pf = np.array([0.0, 0.95, 0.0, 0.9, 0.0])
    out, count = with_foreign(score, pf)
    # P(label wrong) = P(foreign) + (1 - P(foreign)) P(wrong class): both ways a label is wrong
    np.testing.assert_allclose(out[[0, 1, 2, 4]], [0.9, 1 - 0.05 * 0.9, 0.05, 0.0], rtol=1e-6)
    assert np.isnan(out[3])  # unlabelled stays without a score
    assert count == 2  # the wrong class and the foreign one
    same, n = with_foreign(score, None)
    np.testing.assert_array_equal(same, score)
    assert n == 1


def test_the_noise_model_in_row_blocks_gives_the_same_flags(monkeypatch):
    """fit_noise_model works through its N x C arrays in row blocks (a 1M-row label step held 1.4 GB
    above its inputs, 0.5 GB in blocks): the block size changes the summation order only."""
    import dqwidgets.compute.label as label

    rng = np.random.default_rng(3)
    n, c = 3000, 5
    y = rng.integers(0, c, n)
    P = rng.dirichlet(np.full(c, 0.4), n).astype(np.float32)
    P[np.arange(n), y] += 1.5
    P /= P.sum(1, keepdims=True)
    given = np.where(rng.random(n) < 0.1, rng.integers(0, c, n), y)
    given[rng.random(n) < 0.05] = -1  # unlabelled rows: the labelled rows are a subset
    nb = rng.integers(0, n, (n, 15))
    one = find_label_issues(P, nb, given)
    monkeypatch.setattr(label, "_BLOCK", 257)  # 12 blocks, the last one partial
    blocked = find_label_issues(P, nb, given)
    lab = given >= 0
    assert np.allclose(one.label_issue_score[lab], blocked.label_issue_score[lab], atol=5e-3)
    assert (one.is_label_issue == blocked.is_label_issue).mean() >= 0.995
    assert abs(one.count - blocked.count) <= 0.005 * n
    assert np.allclose(one.posterior.sum(1), 1.0, atol=1e-4) and np.allclose(blocked.posterior.sum(1), 1.0, atol=1e-4)
    # the flipped labels are what is flagged
    assert (blocked.is_label_issue & (given != y) & lab).sum() >= 0.8 * blocked.is_label_issue.sum()


def test_the_temperature_searched_on_a_sample_of_rows_gives_the_same_flags(monkeypatch):
    """Above TEMPERATURE_ROWS labelled rows the noise model's temperature is searched on a seeded sample
    of them (speed at 1M); the flags must be those of the search over every row. Sorted-by-class
    labels: a sample of the first rows would see one class and get another temperature."""
    import dqwidgets.compute.label as label
    from dqwidgets.compute.calibration import expected_f1_count

    rng = np.random.default_rng(0)
    n, C = 20_000, 5
    y = np.sort(rng.integers(0, C, n))
    flip = rng.random(n) < 0.1
    given = np.where(flip, (y + rng.integers(1, C, n)) % C, y)
    logit = rng.normal(0, 1, (n, C))
    logit[np.arange(n), y] += 2.5
    p = (np.exp(logit) / np.exp(logit).sum(1, keepdims=True)).astype(np.float32)
    runs = {}
    for rows in (10 ** 9, 2_000):
        monkeypatch.setattr(label, "TEMPERATURE_ROWS", rows)
        post, _, temp, _ = label.fit_noise_model(p, given)
        score = 1 - post[np.arange(n), given]
        runs[rows] = (temp, set(np.argsort(-score)[:expected_f1_count(score)].tolist()))
    (t_all, f_all), (t_fit, f_fit) = runs[10 ** 9], runs[2_000]
    assert abs(t_fit / t_all - 1) < 0.05, (t_all, t_fit)
    assert len(f_all & f_fit) >= 0.98 * len(f_all) and abs(len(f_fit) - len(f_all)) <= 0.02 * len(f_all)


def _one_sided_case(seed: int, one_sided: bool):
    """Two Gaussian classes (60 / 40), an out-of-fold logistic probe on the noisy labels and a 15-NN graph:
    30% of the larger class labelled as the other one, or 15% of all labels swapped."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    n = 1200
    y = (rng.random(n) < 0.4).astype(np.int64)
    X = rng.normal(0, 1, (n, 5))
    X[:, 0] += np.where(y == 1, 2.0, -2.0)
    given = y.copy()
    if one_sided:
        members = np.flatnonzero(y == 0)
        given[rng.choice(members, int(0.3 * len(members)), replace=False)] = 1
    else:
        flip = rng.choice(n, int(0.15 * n), replace=False)
        given[flip] = 1 - y[flip]
    P = cross_val_predict(LogisticRegression(), X, given, cv=5, method="predict_proba").astype(np.float32)
    nb = NearestNeighbors(n_neighbors=16).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    return find_label_issues(P, nb, given), given != y


@pytest.mark.parametrize("seed", [0, 1])
def test_one_sided_noise_is_found_and_symmetric_noise_keeps_its_biases_near_zero(seed):
    """One class sending 30% of its samples to the other shifts the evidence's boundary into the sending
    class; the noise model's class biases move it back. With a temperature alone (biases held at 0) the
    flags were 80-95 for ~220 wrong labels (F1 0.54-0.61) at an estimated precision of ~0.3 for a
    measured 1.0; with them F1 0.95-0.96 and the estimate 0.92 / 0.85 for 0.96 / 0.95 (seeds 0, 1: the
    issue's 0.10 is held on real tables in test_flags_generalise; here the bound is the mechanism's).
    Symmetric noise needs no bias: they stay near 0."""
    for one_sided in (True, False):
        r, wrong = _one_sided_case(seed, one_sided)
        flags = r.is_label_issue
        tp = (flags & wrong).sum()
        f1, precision = 2 * tp / (flags.sum() + wrong.sum()), tp / flags.sum()
        estimated = float(r.label_issue_score[flags].mean())
        assert f1 >= 0.9, (one_sided, f1)
        assert abs(estimated - precision) <= 0.15, (one_sided, estimated, precision)
        assert (abs(r.bias[0] - r.bias[1]) > 1.0) if one_sided else (abs(r.bias[0] - r.bias[1]) < 0.5), r.bias

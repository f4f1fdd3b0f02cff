import numpy as np
import pytest

from dqwidgets.compute.probe import fold_ids, out_of_fold_probs


def _mixture(n=1500, d=10, c=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    return (rng.normal(0, 2, (c, d))[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_folds_are_stratified():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    f = fold_ids(y, 5)
    for c in range(3):
        counts = np.bincount(f[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_out_of_fold_probs_are_calibrated_probabilities():
    X, y = _mixture()
    P = out_of_fold_probs(X, y, 4, device="cpu")
    assert P.shape == (1500, 4)
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-5)
    assert (P.argmax(1) == y).mean() > 0.9


def test_out_of_fold_means_a_memorised_label_is_not_trusted():
    X, y = _mixture()
    y_noisy = y.copy()
    y_noisy[:30] = (y[:30] + 1) % 4
    P = out_of_fold_probs(X, y_noisy, 4, device="cpu")
    # the probe never saw the flipped sample when predicting it, so it supports the true label
    assert (P[np.arange(30), y[:30]] > P[np.arange(30), y_noisy[:30]]).mean() > 0.8


def test_unlabelled_rows_get_probabilities_and_one_class_is_refused():
    X, y = _mixture(300)
    y = y.copy()
    y[:10] = -1
    P = out_of_fold_probs(X, y, 4, device="cpu")
    assert np.isfinite(P[:10]).all()
    with pytest.raises(ValueError, match="two classes"):
        out_of_fold_probs(X, np.zeros(300, int), 4, device="cpu")

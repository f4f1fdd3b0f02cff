import numpy as np
import pytest

from dqwidgets.compute.probe import fold_ids, out_of_fold_probs


def _mixture(n=1500, d=10, c=4, seed=0, spread=2.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    return (rng.normal(0, spread, (c, d))[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_folds_are_stratified():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    f = fold_ids(y, 5)
    for c in range(3):
        counts = np.bincount(f[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def _expected_calibration_error(P, y, bins=10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    conf, hit = P.max(1), P.argmax(1) == y
    b = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(hit[b == i].mean() - conf[b == i].mean()) * (b == i).mean() for i in np.unique(b)))


def test_out_of_fold_probs_are_probabilities():
    X, y = _mixture()
    P = out_of_fold_probs(X, y, 4, device="cpu")
    assert P.shape == (1500, 4)
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-5)
    assert (P.argmax(1) == y).mean() > 0.9


def test_out_of_fold_probs_are_calibrated_on_overlapping_classes():
    # classes that overlap (about 70% accuracy): a confidence of 0.7 should be right about 70% of the time
    X, y = _mixture(n=3000, seed=2, spread=0.6)
    P = out_of_fold_probs(X, y, 4, device="cpu")
    accuracy = (P.argmax(1) == y).mean()
    assert 0.6 < accuracy < 0.9
    assert abs(P.max(1).mean() - accuracy) < 0.03
    assert _expected_calibration_error(P, y) < 0.05
    sharpened = P ** 3 / (P ** 3).sum(1, keepdims=True)        # an over-confident probe would fail the bound
    assert _expected_calibration_error(sharpened, y) > 0.1


def test_out_of_fold_means_a_memorised_label_is_not_trusted():
    X, y = _mixture()
    y_noisy = y.copy()
    y_noisy[:30] = (y[:30] + 1) % 4
    P = out_of_fold_probs(X, y_noisy, 4, device="cpu")
    # the probe never saw the flipped sample when predicting it, so it supports the true label
    assert (P[np.arange(30), y[:30]] > P[np.arange(30), y_noisy[:30]]).mean() > 0.8


def test_unlabelled_rows_get_probabilities_and_one_class_is_refused():
    X, truth = _mixture(300)
    y = truth.copy()
    y[:10] = -1
    P = out_of_fold_probs(X, y, 4, device="cpu")
    assert np.isfinite(P[:10]).all() and (P[:10] >= 0).all()
    np.testing.assert_allclose(P[:10].sum(1), 1, atol=1e-5)
    assert (P[:10].argmax(1) == truth[:10]).mean() >= 0.8      # the probe trained on the labelled rows
    with pytest.raises(ValueError, match="two classes"):
        out_of_fold_probs(X, np.zeros(300, int), 4, device="cpu")


def test_out_of_fold_probabilities_do_not_leak_the_held_out_labels():
    # random labels on high-dimensional noise: a probe that never saw a row cannot beat chance on it
    # (a warm start from another fold's fit, which saw the row, did: 0.60 here)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 500)).astype(np.float32)
    y = rng.integers(0, 4, 400)
    probs = out_of_fold_probs(X, y, 4, device="cpu")
    assert (probs.argmax(1) == y).mean() < 0.35


def test_softmax_regression_fit_reaches_the_minimum_of_its_objective():
    # the hand-written gradient: at the returned weights autograd's gradient of the penalised
    # cross-entropy vanishes, and random moves away from them only raise the objective
    import torch

    from dqwidgets.compute.probe import fit_softmax_regression

    X, y = _mixture(n=2000, d=12, c=5, spread=0.8, seed=3)
    X, y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y)
    W, b = fit_softmax_regression(X, y, 5, l2=1e-3, max_iter=200)
    W, b = W.clone().requires_grad_(), b.clone().requires_grad_()

    def objective(W, b):
        return torch.nn.functional.cross_entropy(X @ W + b, y) + 1e-3 * (W * W).sum()

    loss = objective(W, b)
    loss.backward()
    assert float(W.grad.abs().max()) < 1e-3 and float(b.grad.abs().max()) < 1e-3
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(5):
            assert objective(W + 0.01 * torch.randn(W.shape, generator=g, dtype=W.dtype), b) > loss


def test_out_of_fold_probs_do_not_depend_on_the_thread_count():
    # folds run side by side in threads on a CPU; the result is the one the folds give one after another
    import torch

    X, y = _mixture(n=1200, seed=4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = out_of_fold_probs(X, y, 4, device="cpu")
        torch.set_num_threads(2)
        parallel = out_of_fold_probs(X, y, 4, device="cpu")
        assert torch.get_num_threads() == 2       # restored after the parallel folds
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(parallel, serial, atol=1e-5)

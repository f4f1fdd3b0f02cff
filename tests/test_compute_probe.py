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


def _wide(n=600, d=800, c=5, seed=0, noise=0.15):
    """Few samples in many dimensions (as 1280-d image embeddings of a few thousand images), with
    labels flipped at random: the setting where a weak penalty lets the probe fit the noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    X = (rng.normal(0, 0.25, (c, d))[y] + rng.normal(size=(n, d))).astype(np.float32)
    given = np.where(rng.random(n) < noise, rng.integers(0, c, n), y)
    return X, y, given


def _loglik(P, y):
    return float(np.log(np.clip(P[np.arange(len(y)), y], 1e-12, 1)).mean())


def test_the_penalty_is_chosen_by_held_out_accuracy():
    from dqwidgets.compute.probe import L2_PATH

    X, y, given = _wide()
    P_auto, l2 = out_of_fold_probs(X, given, 5, device="cpu", return_l2=True)
    assert l2 in L2_PATH and l2 > min(L2_PATH)  # many dimensions, few rows: not the weakest penalty
    P_weak = out_of_fold_probs(X, given, 5, device="cpu", l2=min(L2_PATH))
    # what the choice is for: the probe names more true classes (and fits the given labels better)
    assert _loglik(P_auto, given) > _loglik(P_weak, given) + 0.05
    assert (P_auto.argmax(1) == y).mean() > (P_weak.argmax(1) == y).mean()
    # a fixed number is used as given
    _, fixed = out_of_fold_probs(X, given, 5, device="cpu", l2=0.01, return_l2=True)
    assert fixed == 0.01
    with pytest.raises(ValueError, match="l2 must be 'auto' or a number"):
        out_of_fold_probs(X, given, 5, device="cpu", l2="strong")


def test_a_stronger_penalty_must_beat_the_default_by_mcnemars_test():
    """choose_l2 reads held-out hits: the default (last) unless another penalty predicts the given
    labels more often by at least L2_MIN_Z standard errors of the discordant rows."""
    import torch

    from dqwidgets.compute.probe import L2_MIN_Z, choose_l2

    default = torch.zeros(200, dtype=torch.bool)
    default[:100] = True
    slightly = default.clone()
    slightly[100:104] = True  # 4 won, 0 lost: z = 2.0
    barely = default.clone()
    barely[100:103] = True  # 3 won, 0 lost: z = 1.73
    assert L2_MIN_Z == 2.0
    assert choose_l2([barely, default]) == 1
    assert choose_l2([slightly, default]) == 0
    mixed = default.clone()
    mixed[100:110] = True
    mixed[:8] = False  # 10 won, 8 lost: more hits, not significant
    assert choose_l2([mixed, default]) == 1
    # among the significant ones, the most hits
    more = default.clone()
    more[100:120] = True
    assert choose_l2([slightly, more, default]) == 1


def test_the_penalty_is_searched_only_where_the_probe_has_as_many_weights_as_rows(monkeypatch):
    from dqwidgets.compute.probe import L2_PATH, over_parameterised

    assert over_parameterised(3383, 1280, 10)  # notebook 01: 4,229 images x 1280-d, 5 folds
    assert not over_parameterised(142, 13, 3)  # wine
    assert not over_parameterised(2400, 64, 10)  # 64 pixel PCs of 3,000 images
    # wine with 10% flips: its pooled held-out hits favour 0.1 (157 vs 151 of 178), the gate keeps 1e-4
    import sys
    from pathlib import Path

    import dqwidgets.compute.probe as probe

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_generalisation import _table, flip_uniform

    df, names = _table("wine")
    flipped = flip_uniform(names, 0.10, np.random.default_rng(7))
    classes = sorted(set(names))
    X, given = df.to_numpy(np.float32), np.array([classes.index(v) for v in flipped])
    _, l2 = out_of_fold_probs(X, given, 3, device="cpu", return_l2=True)
    assert l2 == min(L2_PATH)
    monkeypatch.setattr(probe, "over_parameterised", lambda *a: True)
    _, searched = out_of_fold_probs(X, given, 3, device="cpu", return_l2=True)
    assert searched > min(L2_PATH)


def test_many_rows_in_few_dimensions_keep_a_weak_penalty():
    X, y = _mixture(n=4000, d=10, c=4, spread=1.0)
    _, l2 = out_of_fold_probs(X, y, 4, device="cpu", return_l2=True)
    assert l2 <= 1e-2


def test_the_foreign_region_search_reads_the_weakest_penalty(tmp_path):
    """analyze's label step reads the chosen penalty's probe, the foreign-region search the weakest's
    (analysis._probabilities): both out of fold, in the same folds."""
    import torch

    import dqwidgets as dq
    from dqwidgets.analysis import _probabilities, _ValidRows
    from dqwidgets.analysis_input import prepare_input
    from dqwidgets.compute.probe import L2_PATH

    X, y, given = _wide()
    ds = dq.Dataset.from_arrays(X, np.array([f"c{v}" for v in given]))
    inp = prepare_input(ds, "auto", None, None, "cpu", 15, tmp_path, False, None)
    v = _ValidRows(inp, np.flatnonzero(inp.valid))
    probs, _, l2, regions = _probabilities(inp, v, torch.device("cpu"), 0, None)
    assert l2 > min(L2_PATH)
    assert np.allclose(probs, out_of_fold_probs(v.features, v.codes, v.n_classes, device="cpu"), atol=1e-5)
    assert np.allclose(regions, out_of_fold_probs(v.features, v.codes, v.n_classes, device="cpu",
                                                  l2=min(L2_PATH)), atol=1e-5)
    an = dq.analyze(ds, workdir=tmp_path / "an", progress=False, layout="pca")
    assert an.info["probe_l2"] == l2 and an.calibration.probe_l2 == l2
    assert np.allclose(an.pred_probs, probs, atol=1e-5)



def test_the_penalty_alone_is_the_one_the_full_fit_chooses():
    """``penalty_only`` (the reference probe over the user's own probabilities picks its penalty so)
    returns the penalty ``l2="auto"`` chooses; where no search runs, the weakest, without a fit."""
    from dqwidgets.compute.probe import L2_PATH

    X, y, given = _wide()
    _, l2 = out_of_fold_probs(X, given, 5, device="cpu", return_l2=True)
    assert out_of_fold_probs(X, given, 5, device="cpu", penalty_only=True) == l2 > min(L2_PATH)
    Xs, ys = _mixture()  # more rows than weights
    assert out_of_fold_probs(Xs, ys, 4, device="cpu", penalty_only=True) == min(L2_PATH)

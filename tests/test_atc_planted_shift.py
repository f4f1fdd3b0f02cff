"""Accuracy without labels on planted shift (issue #14): the same Fashion-MNIST test images under blur,
Gaussian noise, contrast loss and rotation at rising severity, analysed with ``reference=`` a clean
labelled analysis, and ``an.estimate_accuracy`` (ATC, default score) scored against the true accuracy
next to the average-confidence baseline. Pixels on the reference's top 64 principal components (no
embedder: seconds on a CPU); bench/bench_training.py measures the same at full size, and with
EfficientNet-Lite0 embeddings."""

import numpy as np
import pytest
import torch

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.planted import SHIFT_LEVELS, shift_images

SEVERITIES = (1, 3, 5)


def _project(ref, *others, dims=64):
    R = torch.as_tensor(ref.reshape(len(ref), -1), dtype=torch.float32) / 255.0
    mean = R.mean(0)
    torch.manual_seed(0)
    _, _, V = torch.pca_lowrank(R - mean, q=dims, center=False, niter=4)
    return [((torch.as_tensor(o.reshape(len(o), -1), dtype=torch.float32) / 255.0 - mean) @ V).numpy()
            for o in (ref, *others)]


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    try:
        ref_img, ref_y, names = load_fashion_mnist("train", 3000, seed=1)
        test_img, test_y, _ = load_fashion_mnist("test", 500, seed=0)
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not on this machine: {e}")
    rng = np.random.default_rng(0)
    batches, splits = [test_img], ["clean"]
    for kind, levels in SHIFT_LEVELS.items():
        for sev in SEVERITIES:
            batches.append(shift_images(test_img, kind, levels[sev - 1], rng))
            splits.append(f"{kind}-{sev}")
    names = np.asarray(names, dtype=object)
    X_ref, *X_new = _project(ref_img, *batches)
    tmp = tmp_path_factory.mktemp("atc_shift")
    ref = dq.analyze(dq.Dataset.from_arrays(X_ref, labels=names[ref_y]), workdir=tmp, layout="pca", progress=False)
    new = dq.analyze(dq.Dataset.from_arrays(np.concatenate(X_new), labels=names[np.tile(test_y, len(batches))],
                                            split=np.repeat(splits, len(test_img))),
                     reference=ref, workdir=tmp, layout="pca", progress=False)
    return ref, new


def _mae(frame, column):
    return float((frame[column] - frame["labelled_accuracy"]).abs().mean())


def test_atc_under_planted_shift_errs_less_than_half_the_average_confidence(shifted):
    ref, new = shifted
    acc = new.estimate_accuracy(by="split")
    assert acc["n"].eq(500).all() and acc["labelled_accuracy"].notna().all()
    moved = acc.drop(index="clean")
    # the true accuracy falls with severity (0.82 clean, 0.15-0.30 at the strongest contrast / rotation):
    # the baseline follows it badly, ATC well
    assert moved["labelled_accuracy"].min() < 0.35
    atc, ac = _mae(moved, "atc_accuracy"), _mae(moved, "average_confidence")
    assert atc <= ac / 2, (atc, ac)
    assert atc <= 0.05, atc  # measured 4.20 points (ATC on the probe's negative entropy: 21.0); a regression guard
    assert abs(acc.loc["clean", "atc_accuracy"] - acc.loc["clean", "labelled_accuracy"]) < 0.03
    # per slice of the reference (their out-of-fold accuracy is the truth): below the baseline's error
    by_slice = ref.estimate_accuracy(by="slice")
    assert len(by_slice) >= 5 and _mae(by_slice, "atc_accuracy") < _mae(by_slice, "average_confidence")
    assert _mae(by_slice, "atc_accuracy") <= 0.04  # measured 3.48 points (AC 5.43)


GOAL_MISSED = ("issue #14 goal, not reached: here ATC's mean absolute error is 4.20 points over the 12 shifted splits "
               "(AC 21.39; rotation-5: 0.362 estimated for a true 0.122) and 3.48 over the 14 slices of the reference "
               "(AC 5.43); bench/results/bench_training.md: no candidate of bench/atc_candidates.py is <= 3 points on "
               "both feature sets (the probe and its reference neighbours agree on the wrong class)")


@pytest.mark.xfail(strict=True, reason=GOAL_MISSED)
def test_atc_under_planted_shift_is_within_three_points(shifted):
    _, new = shifted
    moved = new.estimate_accuracy(by="split").drop(index="clean")
    assert _mae(moved, "atc_accuracy") <= 0.03


@pytest.mark.xfail(strict=True, reason=GOAL_MISSED)
def test_atc_per_slice_is_within_three_points_and_half_the_average_confidence(shifted):
    ref, _ = shifted
    by_slice = ref.estimate_accuracy(by="slice")
    atc = _mae(by_slice, "atc_accuracy")
    assert atc <= 0.03 and atc <= _mae(by_slice, "average_confidence") / 2


def test_the_atc_scores_in_row_blocks_are_the_whole_array_ones(monkeypatch):
    """accuracy.sample_scores and the predicted class work in row blocks (the negative entropy's float64
    temporaries held ~640 MB at 1M x 20): a block of 7 rows gives the same scores, cuts and agreement,
    rows with a NaN probability included."""
    import dqwidgets.accuracy as accuracy

    rng = np.random.default_rng(7)
    n, c = 300, 5
    probs = rng.dirichlet(np.full(c, 0.7), n)
    probs[::17] = np.nan
    codes = np.where(rng.random(n) < 0.2, -1, rng.integers(0, c, n))
    nb = rng.integers(0, n, (n, 6))
    agreement = accuracy.agreement_column(probs, nb, codes)
    scores = {k: accuracy.sample_scores(probs, agreement, k) for k in accuracy.SCORES}
    cuts = accuracy.fit_thresholds(probs, codes, agreement)
    monkeypatch.setattr(accuracy, "_BLOCK", 7)
    assert np.array_equal(accuracy.agreement_column(probs, nb, codes), agreement, equal_nan=True)
    for k in accuracy.SCORES:
        assert np.array_equal(accuracy.sample_scores(probs, agreement, k), scores[k], equal_nan=True), k
    assert accuracy.fit_thresholds(probs, codes, agreement) == cuts and len(cuts) == len(accuracy.SCORES)

"""Flags a reviewer can trust (#11), on small synthetic planted truth: the default flags sit near the
best trade-off their own score allows, summary() estimates their precision, foreign clusters are
caught with any labels, near-copies are found at the default radius, suggestions name the truth."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import dqwidgets as dq
from dqwidgets.compute.calibration import (expected_calibration_error, expected_f1_count, fit_temperature,
                                           threshold_for_count)


def blobs(n=2000, classes=5, dims=16, sep=3.2, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (classes, dims))
    means *= sep / np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, classes, n)
    return (means[y] + rng.normal(0, 1, (n, dims))).astype(np.float32), y, rng


def best_f1(truth, score):
    order = np.argsort(-np.nan_to_num(score, nan=-1.0))
    tp = np.cumsum(truth[order])
    return float((2 * tp / (np.arange(1, len(truth) + 1) + truth.sum())).max())


def f1(truth, flags):
    return 2 * (truth & flags).sum() / (truth.sum() + flags.sum())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """2,000 samples in 5 classes with 10% flipped labels, 40 foreign samples in a tight cluster
    of their own with random labels, and 30 near-copies."""
    X, y, rng = blobs()
    n = len(X)
    names = np.array(list("ABCDE"), dtype=object)
    given = y.copy()
    flip = rng.choice(n, n // 10, replace=False)
    given[flip] = (y[flip] + rng.integers(1, 5, len(flip))) % 5
    foreign = (rng.normal(0, 1, 16) * 6 + rng.normal(0, 0.6, (40, 16))).astype(np.float32)
    src = rng.choice(n, 30, replace=False)
    typical = np.median(np.sort(np.linalg.norm(X[:300, None] - X[None], axis=2), 1)[:, 1])
    copies = X[src] + rng.normal(0, 0.05 * typical / 4, (30, 16)).astype(np.float32)
    feats = np.vstack([X, foreign, copies])
    labels = names[np.concatenate([given, rng.integers(0, 5, 40), given[src]])]
    true = np.concatenate([names[y], np.full(40, None), names[y[src]]])
    is_foreign = np.r_[np.zeros(n, bool), np.ones(40, bool), np.zeros(30, bool)]
    an = dq.analyze(dq.Dataset.from_arrays(feats, labels), layout="pca", progress=False,
                    workdir=tmp_path_factory.mktemp("wd"))
    wrong = (labels != true) | is_foreign
    pair = np.zeros(len(feats), bool)
    pair[n + 40:] = True
    pair[src] = True
    return an, labels, true, wrong, is_foreign, pair


def test_default_label_flags_are_near_the_best_f1_of_their_score(planted):
    an, labels, true, wrong, is_foreign, pair = planted
    s = an.samples
    score, flags = s["label_issue_score"].to_numpy(), s["is_label_issue"].to_numpy()
    assert roc_auc_score(wrong, score) > 0.95
    assert f1(wrong, flags) >= 0.95 * best_f1(wrong, score)


def test_summary_estimates_the_precision_of_label_and_ood_flags(planted):
    an, labels, true, wrong, is_foreign, pair = planted
    s, summ = an.samples, an.summary()
    for issue, flag, truth in (("label_issue", "is_label_issue", wrong), ("ood", "is_ood", is_foreign)):
        flags = s[flag].to_numpy()
        measured = truth[flags].mean()
        est = summ.loc[issue, "estimated_precision"]
        assert abs(est - measured) <= 0.10, (issue, est, measured)
        assert summ.loc[issue, "estimated_real"] == pytest.approx(est * flags.sum())


def test_a_foreign_cluster_with_random_labels_is_flagged_and_dropped_not_relabelled(planted):
    an, labels, true, wrong, is_foreign, pair = planted
    s = an.samples
    assert roc_auc_score(is_foreign, s["ood_score"]) >= 0.95
    assert s["is_ood"].to_numpy()[is_foreign].mean() >= 0.8
    assert is_foreign[s["is_ood"].to_numpy()].mean() >= 0.9  # precision
    assert (s["suggested_action"][is_foreign & s["is_ood"].to_numpy()] == "drop").all()
    assert s["suggested_label"][is_foreign & s["is_ood"].to_numpy()].isna().all()


def test_suggested_label_is_the_true_class_of_real_label_errors(planted):
    an, labels, true, wrong, is_foreign, pair = planted
    s = an.samples
    noisy = wrong & ~is_foreign
    flagged = noisy & s["is_label_issue"].to_numpy()
    assert (s["suggested_label"].to_numpy()[flagged] == true[flagged]).mean() >= 0.9
    assert (s["suggested_action"][flagged] == "relabel").all()
    assert s["suggested_action"][~s["is_label_issue"] & ~s["is_ood"]].isna().all()


def test_near_copies_are_grouped_at_the_default_threshold_with_few_false_pairs(planted):
    an, labels, true, wrong, is_foreign, pair = planted
    grouped = (an.samples["duplicate_group"] >= 0).to_numpy()
    assert grouped[pair].mean() >= 0.95
    assert grouped[~pair].mean() <= 0.005


def test_setting_each_default_threshold_again_changes_no_flag(planted):
    an = planted[0]
    cols = ["is_label_issue", "is_ood", "is_duplicate", "suggested_action"]
    before = an.samples[cols].copy()
    for column, value in dict(an.thresholds).items():
        an.set_threshold(column, value)
    assert before.equals(an.samples[cols])


def test_clean_data_gets_no_ood_flags_and_few_label_flags(tmp_path):
    X, y, _ = blobs(n=1500, seed=3)
    an = dq.analyze(dq.Dataset.from_arrays(X, np.array(list("ABCDE"), dtype=object)[y]), layout="pca",
                    progress=False, workdir=tmp_path)
    assert an.samples["is_ood"].sum() == 0
    # labels are all correct: the few flags are samples deep inside another class (no method can tell
    # them from a wrong label)
    assert an.samples["is_label_issue"].mean() < 0.03


def test_a_tight_far_cluster_all_given_one_label_is_still_foreign(tmp_path):
    X, y, rng = blobs(n=1500, seed=4)
    far = (rng.normal(0, 1, 16) * 8 + rng.normal(0, 0.5, (30, 16))).astype(np.float32)
    names = np.array(list("ABCDE"), dtype=object)
    labels = np.concatenate([names[y], np.full(30, "C", dtype=object)])
    an = dq.analyze(dq.Dataset.from_arrays(np.vstack([X, far]), labels), layout="pca", progress=False,
                    workdir=tmp_path)
    flags = an.samples["is_ood"].to_numpy()
    assert flags[1500:].mean() >= 0.8 and flags[:1500].mean() <= 0.005


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 4))
    p = np.exp(logits / 2.5)
    p /= p.sum(1, keepdims=True)
    y = (rng.random(4000)[:, None] > np.cumsum(p, 1)).sum(1)
    assert fit_temperature(logits, y) == pytest.approx(2.5, rel=0.15)


def test_expected_f1_count_and_ece_on_known_probabilities():
    rng = np.random.default_rng(1)
    p = np.r_[np.full(100, 0.95), np.full(900, 0.01)]
    assert expected_f1_count(p) == 100
    assert expected_f1_count(np.zeros(50)) == 0
    truth = rng.random(len(p)) < p
    assert expected_calibration_error(p, truth) < 0.05
    assert expected_calibration_error(np.full(1000, 0.9), np.zeros(1000, bool)) == pytest.approx(0.9)
    s = np.arange(10) / 10
    assert (s >= threshold_for_count(s, 3)).sum() == 3


def test_the_explorer_counts_line_says_how_many_flags_are_likely_real(planted):
    an = planted[0]
    summ = an.summary()
    text = dq.Explorer(an).counts_text()
    n, real = int(summ.loc["label_issue", "count"]), summ.loc["label_issue", "estimated_real"]
    assert f"{n:,} label issues (~{real:,.0f} likely real" in text

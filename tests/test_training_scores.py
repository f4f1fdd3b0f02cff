"""AUM, dataset cartography, forgetting events and ATC on hand-made logits with literal answers."""

import numpy as np
import pytest

from dqwidgets.compute.atc import atc_accuracy, confidence_score, fit_atc_threshold
from dqwidgets.compute.aum import (area_under_margin, assign_threshold_samples, aum_label_issue_score,
                                   aum_threshold, margins)
from dqwidgets.compute.cartography import cartography, cartography_regions, label_probability
from dqwidgets.compute.forgetting import forgetting_events


def test_margin_is_assigned_logit_minus_the_largest_other():
    z = np.array([[3.0, 1.0, 2.0], [0.0, 4.0, 1.0], [1.0, 1.0, 1.0]])
    assert margins(z, np.array([0, 0, 2])).tolist() == [1.0, -4.0, 0.0]
    assert np.isnan(margins(z, np.array([-1, 1, 1]))[0])


def test_margin_refuses_a_label_beyond_the_outputs():
    with pytest.raises(ValueError, match="only 3 classes"):
        margins(np.zeros((2, 3)), np.array([0, 3]))


def test_aum_is_the_mean_margin_over_the_epochs_a_sample_was_seen():
    m = np.array([[1.0, -2.0, np.nan], [3.0, 0.0, np.nan], [np.nan, 1.0, np.nan]])
    aum = area_under_margin(m)
    assert aum[0] == 2.0 and aum[1] == pytest.approx(-1 / 3) and np.isnan(aum[2])


def test_threshold_samples_are_n_over_c_plus_one_moved_to_the_fake_class():
    y = np.repeat(np.arange(4), 25)  # N = 100, C = 4 -> 20 threshold samples
    train, is_thr = assign_threshold_samples(y, 4, seed=1)
    assert is_thr.sum() == 20
    assert (train[is_thr] == 4).all() and (train[~is_thr] == y[~is_thr]).all()
    _, again = assign_threshold_samples(y, 4, seed=2, exclude=is_thr)
    assert not (again & is_thr).any()


def test_threshold_is_the_90th_percentile_of_the_threshold_samples_aum():
    assert aum_threshold(np.arange(101.0)) == 90.0
    assert aum_threshold(np.arange(101.0), percentile=99) == 99.0  # the paper's
    assert aum_threshold(np.array([np.nan, 1.0, 1.0])) == 1.0
    with pytest.raises(ValueError, match="no threshold sample"):
        aum_threshold(np.array([np.nan]))
    s = aum_label_issue_score(np.array([2.0, 1.0, np.nan]), 1.0)
    assert s[1] == 0.5 and s[0] < 0.5 and np.isnan(s[2])


def test_cartography_confidence_variability_correctness():
    # sample 0: p(y) 0.2, 0.6, 1.0 -> mean 0.6, population std sqrt(0.32/3); correct at epochs 1, 2 (p>0.5 of 2 classes)
    z = [np.log(np.array([[0.2, 0.8], [0.5, 0.5]])), np.log(np.array([[0.6, 0.4], [0.5, 0.5]])),
         np.log(np.array([[1.0 - 1e-9, 1e-9], [0.5, 0.5]]))]
    y = np.array([0, 1])
    probs, correct = zip(*(label_probability(e, y) for e in z))
    c = cartography(np.array(probs), np.array(correct))
    assert c["confidence"][0] == pytest.approx(0.6)
    assert c["variability"][0] == pytest.approx(np.sqrt(0.32 / 3), rel=1e-5)
    assert c["correctness"][0] == pytest.approx(2 / 3)
    assert c["confidence"][1] == pytest.approx(0.5) and c["variability"][1] == pytest.approx(0.0)


def test_cartography_regions_partition_the_map():
    conf = np.array([0.9, 0.2, 0.5, 0.95, 0.1, np.nan])
    var = np.array([0.01, 0.02, 0.4, 0.03, 0.3, np.nan])
    r = cartography_regions(conf, var, ambiguous_share=0.4)  # 2 of the 5 seen samples are the most variable
    assert r.tolist() == ["easy", "hard", "ambiguous", "easy", "ambiguous", None]


def test_forgetting_counts_correct_then_wrong_transitions():
    correct = np.array([[0, 1, 1, 0],
                        [1, 1, 0, 0],
                        [0, 1, 1, 0],
                        [1, 1, 0, 0]], dtype=bool)
    events, never = forgetting_events(correct)
    assert events.tolist() == [1, 0, 2, 0]
    assert never.tolist() == [False, False, False, True]
    # an epoch where sample 0 was not presented is skipped: correct, (unseen), wrong = one event
    seen = np.array([[1], [0], [1]], dtype=bool)
    events, _ = forgetting_events(np.array([[1], [0], [0]], dtype=bool), seen)
    assert events.tolist() == [1]


def test_atc_threshold_makes_the_share_above_equal_the_accuracy():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    correct = np.array([0, 1, 0, 1, 1, 1, 0, 1, 1, 1], dtype=bool)  # accuracy 0.7
    t = fit_atc_threshold(scores, correct)
    assert t == 0.3
    assert atc_accuracy(scores, t) == pytest.approx(0.7)
    assert atc_accuracy(np.array([0.25, 0.35, 0.95, 0.05]), t) == 0.5
    assert atc_accuracy(scores, fit_atc_threshold(scores, np.ones(10, bool))) == 1.0
    assert atc_accuracy(scores, fit_atc_threshold(scores, np.zeros(10, bool))) == 0.0


def test_confidence_scores():
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert confidence_score(p, "max_softmax").tolist() == [0.5, 1.0]
    assert confidence_score(p, "negative_entropy") == pytest.approx([np.log(0.5), 0.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        confidence_score(p, "entropy")


def test_neighbour_agreement_counts_only_labelled_neighbours():
    from dqwidgets.compute.atc import neighbour_agreement

    got = neighbour_agreement(np.array([[0, 0, 1], [2, -1, -1], [-1, -1, -1]]), np.array([0, 1, 0]))
    assert got[:2].tolist() == [pytest.approx(2 / 3), 0.0]
    assert np.isnan(got[2])
    with pytest.raises(ValueError, match="N x k matrix"):
        neighbour_agreement(np.array([0, 1]), np.array([0, 1]))


def test_atc_cut_shares_ties_so_the_fitted_accuracy_is_exact():
    from dqwidgets.compute.atc import atc_accuracy_ties, fit_atc_cut

    scores = np.array([0.0, 1.0, 1.0, 1.0, 2.0])
    correct = np.array([1, 1, 1, 0, 0], bool)  # accuracy 0.6; three samples tie at 1.0
    t, w = fit_atc_cut(scores, correct)
    assert (t, w) == (1.0, pytest.approx(2 / 3))
    assert atc_accuracy_ties(scores, (t, w)) == pytest.approx(0.6)
    assert atc_accuracy_ties(np.array([1.0, 1.0, 2.0, 0.0, np.nan]), (t, w)) == pytest.approx(7 / 12)
    assert fit_atc_cut(scores, np.ones(5, bool)) == (0.0, 1.0)
    assert atc_accuracy_ties(scores, fit_atc_cut(scores, np.zeros(5, bool))) == 0.0
    assert np.isnan(atc_accuracy_ties(np.array([]), (t, w)))

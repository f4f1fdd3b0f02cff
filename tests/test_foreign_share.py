"""The share of random-label members of a region (compute.foreign): the maximum of the mixture
likelihood, also where the two components are nearly the same (a binary probe at chance)."""

import numpy as np

from dqwidgets.compute.foreign import _mixture_responsibility


def _loglik(f, a, b):
    return np.log(f * a + (1 - f) * b).sum()


def test_share_is_the_likelihood_maximum_on_a_mixture():
    rng = np.random.default_rng(0)
    m, C = 4000, 10
    is_random = rng.random(m) < 0.7
    probe = rng.dirichlet(np.full(C, 0.3), m)  # the probe's (peaked) probabilities per member
    labels = np.where(is_random, rng.integers(0, C, m),
                      [rng.choice(C, p=p) for p in probe])  # random labels, or drawn from the probe
    a = np.full(m, 1.0 / C)  # balanced classes: a random label has prior 1/C
    b = probe[np.arange(m), labels]
    r = _mixture_responsibility(a, b)
    f = r.mean()
    grid = np.linspace(0.001, 0.999, 999)
    best = grid[np.argmax([_loglik(g, a, b) for g in grid])]
    assert abs(f - best) < 2e-3
    assert 0.6 < f < 0.8  # near the planted 70%


def test_binary_probe_at_chance_on_random_labels_gives_share_one():
    # the case truncated EM got wrong: p_probe ~ p_prior ~ 1/2, every member random-labelled;
    # the likelihood still rises all the way to f = 1 (its slope there is m (1 - mean(b / a)) > 0)
    rng = np.random.default_rng(1)
    a = np.full(120, 0.5)
    b = np.clip(rng.normal(0.5, 0.12, 120), 0.05, 0.95)
    b *= 0.998 / np.mean(b / a)  # mean(b / a) = 0.998 < 1: the maximum is at the end (measured on
    # Rotten Tomatoes synopses: mean p_probe 0.4991 vs prior 0.4991; truncated EM stopped at 0.80)
    r = _mixture_responsibility(a, b)
    assert np.allclose(r, 1.0)
    assert _loglik(1.0, a, b) >= max(_loglik(g, a, b) for g in np.linspace(0.0, 0.999, 200))


def test_probe_that_reads_every_label_gives_share_zero():
    a = np.full(50, 0.1)
    b = np.full(50, 0.9)
    assert np.allclose(_mixture_responsibility(a, b), 0.0)
    assert len(_mixture_responsibility(np.zeros(0), np.zeros(0))) == 0


def test_spreading_to_the_neighbours_in_row_blocks_is_the_whole_array_pass(monkeypatch):
    """_spread_to_neighbours gathers the neighbours' probabilities in row blocks: the same result
    (each row's mean is its own) for a block of 7 rows, -1 padding included."""
    import dqwidgets.compute.slices as slices
    from dqwidgets.compute.foreign import _spread_to_neighbours

    rng = np.random.default_rng(6)
    nb = rng.integers(-1, 300, (300, 12))
    prob = np.where(rng.random(300) < 0.2, rng.random(300), 0.0)
    whole = _spread_to_neighbours(prob, nb)
    monkeypatch.setattr(slices, "_BLOCK", 7)
    assert np.array_equal(_spread_to_neighbours(prob, nb), whole) and (whole > prob).any()


def _star(k=15, inside=2, p_region=0.9):
    """Node 0 with ``inside`` of its k neighbours in a foreign region (P = p_region), the rest at 0."""
    nb = np.full((k + 1, k), -1)
    nb[0] = np.arange(1, k + 1)
    prob = np.zeros(k + 1)
    prob[1:1 + inside] = p_region
    return prob, nb


def test_a_random_label_beside_a_foreign_region_is_raised_a_label_the_probe_reads_is_not():
    from dqwidgets.compute.foreign import _neighbour_mean, neighbourhood_posterior

    prob, nb = _star()
    pi = _neighbour_mean(prob, nb)[0]
    assert abs(pi - 2 * 0.9 / 15) < 1e-12
    ones = np.ones(len(prob))
    # a label the probe does not read (a random one of 8 classes where the probe names another class)
    p_prior, p_probe = ones.copy(), ones.copy()
    p_prior[0], p_probe[0] = 1 / 8, 0.01
    raised = neighbourhood_posterior(prob, nb, p_prior, p_probe)
    assert raised[0] > 0.5  # Bayes: 0.12 x 0.125 / (0.12 x 0.125 + 0.88 x 0.01) = 0.63
    assert np.isclose(raised[0], pi / 8 / (pi / 8 + (1 - pi) * 0.01))
    # the same place, a label the probe reads: far below its neighbours' mean (0.12 -> 0.02)
    p_probe[0] = 0.9
    kept = neighbourhood_posterior(prob, nb, p_prior, p_probe)
    assert kept[0] < pi / 5 and np.array_equal(kept[1:], prob[1:])
    # no label (p_prior = p_probe = 1): the neighbours' mean, as the spreading gives
    assert np.isclose(neighbourhood_posterior(prob, nb, ones, ones)[0], pi)
    # it only raises: never below the probability it is given
    assert (neighbourhood_posterior(prob, nb, p_prior, p_probe) >= prob).all()


def test_no_foreign_region_means_no_change_and_no_probe_means_no_label_evidence():
    from dqwidgets.compute.foreign import ForeignClusters

    prob, nb = _star()
    zero = np.zeros(len(prob))
    ones = np.ones(len(prob))
    fc = ForeignClusters(np.zeros(len(prob), np.int64), zero, p_prior=ones / 8, p_probe=ones / 100)
    assert np.array_equal(fc.with_label_evidence(zero, nb), zero)  # nothing foreign anywhere: nothing raised
    assert fc.with_label_evidence(prob, nb)[0] > 0.5
    unread = ForeignClusters(np.zeros(len(prob), np.int64), prob)  # labels not read (no probe): unchanged
    assert np.array_equal(unread.with_label_evidence(prob, nb), prob)

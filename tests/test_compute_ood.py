import numpy as np

from dqwidgets.compute.ood import RobustScale, combine_ood, energy, fit_class_gaussians, z_to_score


def test_mahalanobis_catches_a_tight_foreign_cluster_inside_the_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 1500)
    X = rng.normal(0, 5, (3, 10))[y] + rng.normal(size=(1500, 10))
    X[:60] = rng.normal(0, 0.1, (60, 10)) + 12.0  # a tight cluster, labelled class 0, far from every class
    y[:60] = 0
    g = fit_class_gaussians(X, y, 3)
    d = g.distance(X)
    z = RobustScale.fit(d, log=True).z(d)
    assert (z_to_score(z[:60]) > 0.5).all()
    assert (z_to_score(z[60:]) > 0.5).mean() < 0.02


def test_scores_are_monotone_in_unit_interval_and_combined_by_max():
    z = np.array([-3.0, 0.0, 3.0, 10.0])
    s = z_to_score(z)
    assert (np.diff(s) > 0).all() and s[0] >= 0 and s[-1] <= 1 and abs(s[2] - 0.5) < 1e-6
    c = combine_ood({"a": np.array([0.0, 5.0]), "b": np.array([5.0, np.nan])})
    np.testing.assert_allclose(c, z_to_score(np.array([5.0, 5.0])))


def test_energy_is_higher_for_flat_logits():
    e = energy(np.array([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]]))
    assert e[1] > e[0]

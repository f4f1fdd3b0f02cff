"""analyze() input checks and the background layout."""

import threading

import numpy as np
import pandas as pd
import pytest

import dqwidgets as dq


def _blobs(n=400, d=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    return (rng.normal(0, 4, (c, d))[y] + rng.normal(size=(n, d))).astype(np.float32), np.array(list("abc"))[y]


def _run(ds, tmp_path, **kw):
    return dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path, **kw)


def test_nan_and_inf_rows_are_flagged_and_left_out(tmp_path):
    X, y = _blobs()
    X[3, 0], X[7, 2] = np.nan, np.inf
    an = _run(dq.Dataset.from_arrays(X, y), tmp_path)
    s = an.samples
    assert s.loc[[3, 7], "is_invalid"].all() and s["is_invalid"].sum() == 2
    assert (s.loc[[3, 7], "invalid_reason"] == "features contain NaN or inf").all()
    assert s.loc[[3, 7], ["label_issue_score", "ood_score", "x"]].isna().all().all()
    assert not s.loc[[3, 7], ["is_label_issue", "is_ood", "is_duplicate"]].any().any()
    assert (s.loc[[3, 7], "slice_id"] == -1).all()
    assert not np.isin([3, 7], np.flatnonzero(an.valid)[an.graph.indices]).any()  # never a neighbour
    assert s.drop(index=[3, 7])["ood_score"].notna().all()
    assert an.summary().loc["invalid", "count"] == 2


@pytest.mark.parametrize("make, match", [
    (lambda X, y: dq.Dataset.from_arrays(X, np.array(["a"] * len(X))), "at least two classes"),
    (lambda X, y: dq.Dataset.from_arrays(X[:10], y[:10]), "k=15"),
])
def test_bad_input_is_a_clear_value_error(tmp_path, make, match):
    X, y = _blobs()
    with pytest.raises(ValueError, match=match):
        _run(make(X, y), tmp_path)


def test_rows_that_repeat_within_each_class_are_analysed(tmp_path):
    # a table of two distinct rows, one per class: no spread inside any class (a singular covariance)
    df = pd.DataFrame({"a": [1.0, 2.0] * 20, "b": ["u", "v"] * 20, "y": ["x", "y"] * 20})
    an = _run(dq.Dataset.from_dataframe(df, label="y"), tmp_path)
    s = an.samples
    assert s["ood_score"].between(0, 1).all() and s["label_issue_score"].between(0, 1).all()
    assert not s["is_label_issue"].any()


def test_unhashable_labels_are_named(tmp_path):
    X, y = _blobs()
    labels = np.empty(len(X), dtype=object)
    labels[:] = list(y)
    labels[4] = ["a", "b"]
    with pytest.raises(ValueError, match=r"\['a', 'b'\]"):
        _run(dq.Dataset.from_arrays(X, labels), tmp_path)


def test_non_numeric_features_named(tmp_path):
    X, y = _blobs()
    Xo = X.astype(object)
    Xo[0, 0] = "seven"
    with pytest.raises(ValueError, match="numeric.*'seven'"):
        _run(dq.Dataset.from_arrays(Xo, y), tmp_path)


def test_mismatched_lengths_and_bad_probabilities(tmp_path):
    X, y = _blobs()
    with pytest.raises(ValueError, match="labels has 399 values"):
        dq.Dataset.from_arrays(X, y[:-1])
    ds = dq.Dataset.from_arrays(X, y)
    with pytest.raises(ValueError, match="pred_probs must be N x C"):
        _run(ds, tmp_path, pred_probs=np.full((400, 2), 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        _run(ds, tmp_path, pred_probs=np.full((400, 3), 0.5))


def test_user_logits_are_used_and_add_an_energy_score(tmp_path):
    _, y = _blobs()
    X = np.random.default_rng(5).normal(size=(400, 8)).astype(np.float32)   # no class information: only the
    #                                                                          logits can tell which labels are wrong
    codes = np.searchsorted(["a", "b", "c"], y)
    logits = np.eye(3)[codes] * 5.0
    logits[:20] = np.eye(3)[(codes[:20] + 1) % 3] * 5.0  # the model disagrees with these labels
    flat = np.arange(20, 40)
    logits[flat] = 0.0               # the model has no idea about these: high energy, far from confident
    an = _run(dq.Dataset.from_arrays(X, y), tmp_path, logits=logits)
    s = an.samples
    assert s["label_issue_score"].iloc[:20].mean() > s["label_issue_score"].iloc[40:].mean() + 0.3
    energy = s["ood_energy_score"]
    assert energy.between(0, 1).all()
    confident = np.setdiff1d(np.arange(400), flat)
    assert energy.iloc[flat].min() > energy.iloc[confident].max()
    # the same features and labels without logits: the flat-logit rows' ood_score goes up with them
    plain = _run(dq.Dataset.from_arrays(X, y), tmp_path / "plain").samples
    assert (s["ood_score"].iloc[flat] - plain["ood_score"].iloc[flat]).mean() > \
        (s["ood_score"].iloc[confident] - plain["ood_score"].iloc[confident]).mean() + 0.05


def test_unlabelled_samples_and_splits(tmp_path):
    X, y = _blobs()
    y = y.astype(object)
    y[:5] = None
    split = np.where(np.arange(400) < 300, "train", "test")
    X[350] = X[10]  # a copy of a train sample in test: leakage
    an = _run(dq.Dataset.from_arrays(X, y, split=split), tmp_path)
    s = an.samples
    assert s["is_unlabeled"].iloc[:5].all() and s["label_issue_score"].iloc[:5].isna().all()
    assert s.loc[350, "duplicate_group"] == s.loc[10, "duplicate_group"] >= 0
    summ = an.summary()
    assert summ.loc["cross_split_duplicate", "count"] >= 2


def test_background_umap_replaces_the_provisional_layout(tmp_path):
    X, y = _blobs(n=600)
    an = dq.analyze(dq.Dataset.from_arrays(X, y), layout="umap", wait_layout=False, progress=False,
                    workdir=tmp_path)
    got = threading.Event()
    an.observe(lambda e: e == "layout" and got.set())
    pca = an.samples[["x", "y"]].to_numpy().copy()
    assert an.layout_status != "final"            # analyze returned before UMAP finished
    an.wait_layout(timeout=300)
    assert an.layout_status == "final"
    assert got.wait(timeout=10), "observers were not told that the final layout arrived"
    umap_xy = an.samples[["x", "y"]].to_numpy()
    assert np.isfinite(umap_xy).all() and not np.allclose(pca, umap_xy)
    # clusters stay apart on the map: each sample's nearest map neighbour mostly shares its label
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=2).fit(umap_xy).kneighbors(umap_xy, return_distance=False)[:, 1]
    assert (y[nn] == y).mean() > 0.9


@pytest.mark.parametrize("how", ["rows shuffled", "constant", "random"])
def test_features_that_do_not_predict_the_labels_get_no_label_score_and_a_warning(tmp_path, how):
    """Features in another row order than the labels (or a constant / random embedding) tell nothing
    about the labels: every label outside the largest class was flagged "wrong" before; now none is
    scored, and a warning says why. The same features in the right order are scored."""
    X, y = _blobs(seed=4)
    rng = np.random.default_rng(4)
    bad = {"rows shuffled": X[rng.permutation(len(X))], "constant": np.ones_like(X),
           "random": rng.normal(size=X.shape).astype(np.float32)}[how]
    with pytest.warns(UserWarning, match="do not predict the labels"):
        an = _run(dq.Dataset.from_arrays(bad, y), tmp_path / "bad")
    s = an.samples
    assert s["label_issue_score"].isna().all() and not s["is_label_issue"].any()
    assert an.info["label_information_z"] <= 3 and an.info["label_information"] < 0.02
    assert an.summary().loc["label_issue", "count"] == 0
    good = _run(dq.Dataset.from_arrays(X, y), tmp_path / "good")
    assert good.info["label_information"] > 0.5 and good.info["label_information_z"] > 10
    assert good.samples["label_issue_score"].notna().all()


@pytest.mark.parametrize("seed", range(8))
def test_random_binary_features_are_not_scored(tmp_path, seed):
    # an out-of-fold probe is anti-correlated with random labels (a held-out sample's class is short in its
    # training folds), and the noise model read that as labels all wrong (bench_label_information: 1,864 of 2,000)
    rng = np.random.default_rng(100 + seed)
    X = rng.normal(size=(2000, 32)).astype(np.float32)
    with pytest.warns(UserWarning, match="do not predict the labels"):
        an = _run(dq.Dataset.from_arrays(X, rng.integers(0, 2, 2000)), tmp_path)
    assert not an.samples["is_label_issue"].any()


def test_noisy_labels_on_informative_features_are_still_scored(tmp_path):
    # two classes, 30% of the labels flipped: little information per label, but enough to score them
    X, y = _blobs(n=600, c=2, seed=5)
    rng = np.random.default_rng(5)
    flip = rng.random(len(y)) < 0.3
    given = np.where(flip, np.where(y == "a", "b", "a"), y)
    an = _run(dq.Dataset.from_arrays(X, given), tmp_path)
    s = an.samples
    assert an.info["label_information"] < 0.3 and an.info["label_information_z"] > 3
    flagged = s["is_label_issue"].to_numpy()
    assert flagged.sum() > 0.2 * len(y) and flip[flagged].mean() > 0.9


def test_values_that_overflow_float32_make_their_rows_invalid_and_a_whole_table_of_them_an_error(tmp_path):
    X, y = _blobs()
    X[[2, 9]] *= 1e20  # squares beyond float32's range: the class Gaussians' covariance failed on these
    an = _run(dq.Dataset.from_arrays(X, y), tmp_path / "rows")
    s = an.samples
    assert s.loc[[2, 9], "is_invalid"].all() and s["is_invalid"].sum() == 2
    assert s.loc[[2, 9], "invalid_reason"].str.contains("rescale").all()
    with pytest.raises(ValueError, match=r"0 valid samples of 400 \(400 rows: features reach 1e\+18.*rescale"):
        _run(dq.Dataset.from_arrays(_blobs()[0] * 1e19, y), tmp_path / "all")


def test_too_few_valid_rows_name_why_the_others_were_left_out(tmp_path):
    X, y = _blobs()
    X[10:] = np.nan
    with pytest.raises(ValueError, match=r"10 valid samples of 400 \(390 rows: features contain NaN or inf\) "
                                         r"but k=15 .* pass k=9 or fewer"):
        _run(dq.Dataset.from_arrays(X, y), tmp_path / "ten")
    X[:] = np.nan
    with pytest.raises(ValueError, match=r"0 valid samples of 400 .*needs at least 2: fix those rows"):
        _run(dq.Dataset.from_arrays(X, y), tmp_path / "none")


def test_texts_that_are_all_empty_are_a_clear_error(tmp_path):
    df = pd.DataFrame({"t": ["", "  ", None, float("nan")] * 10, "label": ["a", "b"] * 20})
    with pytest.raises(ValueError, match=r"none of the 40 samples could be embedded \(.*empty text.*\)"):
        _run(dq.Dataset.from_dataframe(df, text="t", label="label"), tmp_path)


def test_a_reference_of_another_width_and_numbered_columns_are_handled(tmp_path):
    X, y = _blobs()
    ref = _run(dq.Dataset.from_arrays(X, y), tmp_path / "ref")
    with pytest.raises(ValueError, match="features have 4 columns but the reference analysis' have 8"):
        _run(dq.Dataset.from_arrays(X[:50, :4], y[:50]), tmp_path / "new", reference=ref)
    # a table whose columns are numbered (pd.DataFrame(X)): explain and export read past the int column names
    an = _run(dq.Dataset.from_dataframe(pd.DataFrame(X).assign(label=y), label="label"), tmp_path / "int")
    assert "label_issue_score" in an.explain(an.samples.index[0]).scores
    assert (an.export(tmp_path / "out", format="csv") / "manifest.json").exists()

"""dq.analyze(ds, training=rec), the low_aum issue type, predicted_label and estimate_accuracy (ATC)."""

import numpy as np
import pandas as pd
import pytest
import torch

import dqwidgets as dq
from dqwidgets.examples import train_recorded


def _blobs(n=300, d=8, c=3, seed=0, noise=0.1, shift=0.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (c, d))
    y = rng.integers(0, c, n)
    X = (centres[y] + rng.normal(0, 1.0, (n, d)) + shift).astype(np.float32)
    given = y.copy()
    flip = rng.random(n) < noise
    given[flip] = (y[flip] + 1) % c
    return X, y, given, flip


def _record(tmp_path, X, given, ids, epochs=6, name="run"):
    rec = dq.TrainingRecorder(tmp_path, name=name, classes=["a", "b", "c"])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    train_recorded(model, torch.as_tensor(X), torch.as_tensor(given), ids, rec, epochs, lr=0.1, momentum=0.9)
    return rec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    X, y, given, flip = _blobs()
    names = np.array(["a", "b", "c"], dtype=object)
    ids = [f"s{i}" for i in range(len(X))]
    rec = _record(tmp, X, given, ids)
    ds = dq.Dataset.from_arrays(X, labels=names[given], ids=ids)
    an = dq.analyze(ds, workdir=tmp, layout="pca", progress=False, training=rec)
    return an, flip, rec, ds, tmp


def test_training_columns_are_in_samples(trained):
    an, flip, *_ = trained
    s = an.samples
    for c in ("aum", "aum_score", "is_low_aum", "cartography_confidence", "cartography_variability",
              "cartography_correctness", "cartography_region", "forgetting_events", "predicted_label"):
        assert c in s.columns, c
    assert s["aum"].notna().all()
    assert set(s["cartography_region"].unique()) <= {"easy", "ambiguous", "hard"}
    assert s["cartography_confidence"].between(0, 1).all()
    # the planted flips have low AUM
    assert s.loc[flip, "aum"].mean() < s.loc[~flip, "aum"].mean()
    assert an.info["training"]["aum_rule"].startswith("fallback")


def test_low_aum_is_an_issue_type_with_a_threshold_that_round_trips(trained):
    an, *_ = trained
    s = an.samples
    assert (s["is_low_aum"] == (s["aum"] < 0)).all()
    assert an.thresholds["aum_score"] == 0.5
    before = s["is_low_aum"].copy()
    an.set_threshold("aum_score", 0.9)
    assert an.samples["is_low_aum"].sum() <= before.sum()
    an.set_threshold("aum_score", 0.5)
    assert (an.samples["is_low_aum"] == before).all()
    assert "low_aum" in an.summary().index


def test_analyze_without_training_has_no_training_columns(trained):
    _, _, _, ds, tmp = trained
    an = dq.analyze(ds, workdir=tmp, layout="pca", progress=False)
    assert "aum" not in an.samples and "aum_score" not in an.thresholds
    assert "low_aum" not in an.summary().index
    assert an.samples["predicted_label"].notna().all()


def test_training_ids_the_dataset_lacks_fail_analyze_clearly(trained, tmp_path):
    _, _, _, ds, _ = trained
    rec = dq.TrainingRecorder(tmp_path)
    rec.log(["s1", "not-a-sample"], np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="not in the dataset"):
        dq.analyze(ds, workdir=tmp_path, layout="pca", progress=False, training=rec)


def test_predicted_label_is_the_probes_most_likely_class_for_every_sample(trained):
    an, *_ = trained
    expected = np.asarray(an.classes, dtype=object)[np.nanargmax(an.pred_probs, 1)]
    assert (an.samples["predicted_label"].to_numpy() == expected).all()


def test_estimate_accuracy_per_split_of_labelled_and_unlabelled_samples(tmp_path):
    X, y, given, _ = _blobs(n=400, noise=0.0)
    names = np.array(["a", "b", "c"], dtype=object)
    labels = pd.Series(names[given], dtype=object)
    split = np.where(np.arange(400) < 300, "train", "unlabelled")
    labels[split == "unlabelled"] = None
    ds = dq.Dataset.from_arrays(X, labels=labels.to_numpy(), split=split)
    an = dq.analyze(ds, workdir=tmp_path, layout="pca", progress=False)
    acc = an.estimate_accuracy(by="split")
    assert list(acc.index) == ["train", "unlabelled"]
    assert list(acc.columns[:4]) == ["n", "atc_accuracy", "average_confidence", "labelled_accuracy"]
    assert acc.loc["train", "n"] == 300 and acc.loc["unlabelled", "n"] == 100
    assert np.isnan(acc.loc["unlabelled", "labelled_accuracy"])
    # on the labelled samples the ATC threshold reproduces the out-of-fold accuracy
    assert acc.loc["train", "atc_accuracy"] == pytest.approx(acc.loc["train", "labelled_accuracy"], abs=0.01)
    truth = (an.samples["predicted_label"].to_numpy()[300:] == names[y[300:]]).mean()
    assert abs(acc.loc["unlabelled", "atc_accuracy"] - truth) < 0.1
    summary = an.summary()
    assert {"accuracy[train]", "accuracy[unlabelled]"} <= set(summary.index)
    assert summary.loc["accuracy[unlabelled]", "statistic"] == pytest.approx(acc.loc["unlabelled", "atc_accuracy"])
    by_slice = an.estimate_accuracy(by="slice")
    assert by_slice["n"].sum() == 400
    assert {"atc_accuracy", "average_confidence"} <= set(an.slices.columns)
    with pytest.raises(ValueError, match="by must be one of"):
        an.estimate_accuracy(by="class")


def test_estimate_accuracy_of_a_new_batch_uses_the_reference_threshold(tmp_path):
    X, y, given, _ = _blobs(n=400, noise=0.0)
    names = np.array(["a", "b", "c"], dtype=object)
    ref = dq.analyze(dq.Dataset.from_arrays(X, labels=names[given]), workdir=tmp_path, layout="pca", progress=False)
    Xn, yn, _, _ = _blobs(n=200, seed=5, noise=0.0, shift=1.5)
    new = dq.analyze(dq.Dataset.from_arrays(Xn), reference=ref, workdir=tmp_path, layout="pca", progress=False)
    acc = new.estimate_accuracy()
    assert list(acc.index) == ["all"] and acc.loc["all", "n"] == 200
    assert np.isnan(acc.loc["all", "labelled_accuracy"])
    truth = (new.samples["predicted_label"].to_numpy() == names[yn]).mean()
    assert abs(acc.loc["all", "atc_accuracy"] - truth) < 0.1
    assert new.calibration.atc["negative_entropy"].threshold == ref.calibration.atc["negative_entropy"].threshold
    assert "accuracy" in new.summary().index


def test_unlabelled_pred_probs_without_a_reference_have_no_atc_estimate_but_say_why(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 80).astype(np.float32)
    ds = dq.Dataset.from_arrays(rng.normal(size=(80, 4)).astype(np.float32), pred_probs=probs, classes=["a", "b", "c"])
    an = dq.analyze(ds, workdir=tmp_path, layout="pca", progress=False)
    acc = an.estimate_accuracy()
    assert acc.loc["all", "n"] == 80 and np.isnan(acc.loc["all", "atc_accuracy"])
    assert acc.loc["all", "average_confidence"] == pytest.approx(probs.max(1).mean(), rel=1e-5)
    assert "no ATC estimate" in an.summary().loc["accuracy", "detail"]


def test_neighbour_agreement_is_the_share_of_reference_neighbours_with_the_predicted_label(tmp_path):
    from dqwidgets.compute.knn import knn_query

    X, y, given, _ = _blobs(n=400, noise=0.0)
    names = np.array(["a", "b", "c"], dtype=object)
    ref = dq.analyze(dq.Dataset.from_arrays(X, labels=names[given]), workdir=tmp_path, layout="pca", progress=False)
    # within the analysis: the graph neighbours' labels, self excluded
    pred = np.nanargmax(ref.pred_probs, 1)
    expected = (given[ref.graph.indices] == pred[:, None]).mean(1)
    np.testing.assert_allclose(ref.samples["neighbour_agreement"].to_numpy(), expected)
    # its cut reproduces the out-of-fold accuracy exactly (ties shared)
    acc = ref.estimate_accuracy()
    assert acc.loc["all", "atc_accuracy"] == pytest.approx(acc.loc["all", "labelled_accuracy"], abs=1e-9)
    assert set(ref.calibration.atc) == {"neighbour_agreement", "negative_entropy", "max_softmax"}
    # a new batch: its k nearest reference samples' labels, against the reference probe's prediction
    Xn, yn, _, _ = _blobs(n=200, seed=5, noise=0.0, shift=1.5)
    new = dq.analyze(dq.Dataset.from_arrays(Xn), reference=ref, workdir=tmp_path, layout="pca", progress=False)
    q = knn_query(Xn, X, ref.graph.k, ref.graph.metric, "cpu")
    pred_n = np.nanargmax(new.pred_probs, 1)
    np.testing.assert_allclose(new.samples["neighbour_agreement"].to_numpy(), (given[q.indices] == pred_n[:, None]).mean(1))
    t, w = ref.calibration.atc["neighbour_agreement"].cut
    a = new.samples["neighbour_agreement"].to_numpy()
    assert new.estimate_accuracy().loc["all", "atc_accuracy"] == pytest.approx(((a > t) + w * (a == t)).mean())

"""analyze() on Fashion-MNIST with planted truth, and on bad input."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import dqwidgets as dq
from dqwidgets.planted import planted_fashion_mnist

CONTRACT = ["label", "x", "y", "label_issue_score", "is_label_issue", "suggested_label", "ood_score", "is_ood",
            "duplicate_group", "is_duplicate", "slice_id", "is_invalid", "invalid_reason", "is_unreadable",
            "is_empty", "is_unlabeled", "given_label"]


@pytest.fixture(scope="module")
def planted():
    return planted_fashion_mnist(n=3000, seed=0)


@pytest.fixture(scope="module")
def an(planted, tmp_path_factory):
    ds = dq.Dataset.from_arrays(planted.features, planted.labels, metadata=planted.metadata)
    return dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path_factory.mktemp("wd"))


def test_samples_have_every_contract_column_with_scores_in_unit_interval(an, planted):
    s = an.samples
    assert list(s.index) == list(range(3000))
    for c in CONTRACT:
        assert c in s.columns, c
    for c in ["label_issue_score", "ood_score"]:
        assert s[c].between(0, 1).all(), c
    assert set(s["suggested_label"].dropna()) <= set(an.classes)
    # no class fits a sample flagged out of distribution: no suggested label, the action is "drop"
    assert (s["suggested_label"].isna() == (s["suggested_action"] == "drop")).all()
    assert "corner_patch" in s.columns  # metadata travels along
    assert an.layout_status == "final" and s[["x", "y"]].notna().all().all()


def test_planted_label_noise_is_found(an, planted):
    s, clean = an.samples, ~planted.is_ood
    assert roc_auc_score(planted.is_noisy[clean], s["label_issue_score"][clean]) > 0.9
    flagged = s["is_label_issue"].to_numpy()
    # the default count is the expected-F1 count of calibrated probabilities: precision and recall balance
    assert flagged[planted.is_noisy].mean() > 0.6  # recall
    wrong = planted.is_noisy | planted.is_ood  # a sample no class fits has a wrong label too (its action: drop)
    assert wrong[flagged].mean() > 0.6  # precision, 5x the base rate
    assert flagged[planted.is_ood].mean() > 0.5  # the foreign ones among them
    # where flagged, the suggestion is mostly the true class
    hit = flagged & planted.is_noisy
    assert (s["suggested_label"][hit] == planted.true_labels[hit]).mean() > 0.6


def test_foreign_samples_and_the_tight_foreign_cluster_are_out_of_distribution(an, planted):
    s = an.samples
    assert roc_auc_score(planted.is_ood, s["ood_score"]) > 0.8
    assert s["is_ood"][planted.is_cluster].mean() > 0.9  # kNN distance alone misses it:
    assert (s["ood_knn_score"][planted.is_cluster] < 0.5).all()
    assert s["is_ood"][~planted.is_ood].mean() < 0.02


def test_near_copies_are_grouped_with_their_original_and_one_is_kept(an, planted):
    s = an.samples
    copies = np.flatnonzero(planted.copy_of >= 0)
    g = s["duplicate_group"].to_numpy()
    assert (g[copies] >= 0).mean() > 0.95
    assert (g[copies] == g[planted.copy_of[copies]]).mean() > 0.95
    for grp in np.unique(g[g >= 0]):
        assert (~s["is_duplicate"][g == grp]).sum() == 1  # one member kept
    # besides the copies, only the planted checkerboards (9 shifts of one pattern with pixel noise: noisy copies too)
    assert s["is_duplicate"][~planted.is_cluster].sum() < 1.5 * len(copies)


def test_slices_summary_and_thresholds(an):
    assert len(an.slices) >= 2 and an.slices["size"].sum() == (an.samples["slice_id"] >= 0).sum()
    summ = an.summary()
    assert {"label_issue", "ood", "duplicate", "invalid"} <= set(summ["issue"])
    assert summ.loc["label_issue", "count"] == an.samples["is_label_issue"].sum()
    saved = dict(an.thresholds)
    flags = {c: an.samples[c].to_numpy().copy() for c in ("is_ood", "is_duplicate", "is_label_issue")}
    events = []
    record = an.observe(events.append)
    an.set_threshold("ood_score", 0.01)
    assert events == ["flags"] and an.samples["is_ood"].sum() > summ.loc["ood", "count"]
    an.set_threshold("duplicate_score", 0.99)
    assert an.samples["is_duplicate"].sum() < flags["is_duplicate"].sum()
    for column, value in saved.items():  # back to the thresholds analyze chose: the same flags again
        an.set_threshold(column, value)
    an.unobserve(record)
    assert an.thresholds == saved
    for c, before in flags.items():
        assert np.array_equal(an.samples[c].to_numpy(), before), c
    with pytest.raises(ValueError, match="no threshold"):
        an.set_threshold("nonsense", 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        an.set_threshold("ood_score", 3)


def test_spurious_shortcut_ranks_first(an):
    top = an.spurious.iloc[0]
    assert (top["attribute"], str(top["value"]), top["label"]) == ("corner_patch", "True", "Trouser")
    assert top["lift"] > 5


def test_reference_mode_scores_a_new_batch_against_an_earlier_analysis(an, planted, tmp_path):
    rng = np.random.default_rng(5)
    clean = np.flatnonzero(~planted.is_ood & ~planted.is_noisy)[:300]
    foreign = np.flatnonzero(planted.is_foreign)[:20]
    far = planted.features[clean[:20]] * 4  # scaled far outside the reference
    X = np.vstack([planted.features[clean] + rng.normal(0, 0.05, (300, planted.features.shape[1])), far,
                   planted.features[foreign]]).astype(np.float32)
    y = np.concatenate([planted.labels[clean], planted.labels[clean[:20]], planted.labels[foreign]])
    new = dq.analyze(dq.Dataset.from_arrays(X, y), reference=an, layout="pca", progress=False, workdir=tmp_path)
    s = new.samples
    assert s["is_ood"].iloc[:300].mean() < 0.05
    assert s["is_ood"].iloc[300:320].all()
    assert roc_auc_score(np.r_[np.zeros(300), np.ones(40)], s["ood_score"]) > 0.85
    with pytest.raises(ValueError, match="not in the reference"):
        dq.analyze(dq.Dataset.from_arrays(X[:40], ["cat"] * 40), reference=an, layout="pca", progress=False,
                   workdir=tmp_path)


def test_review_and_export_are_wired(planted, tmp_path):
    ds = dq.Dataset.from_arrays(planted.features, planted.labels, metadata=planted.metadata)
    an = dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path)
    rv = an.review
    assert (tmp_path / an.dataset.fingerprint / "journal.sqlite").exists()
    events = []
    an.observe(events.append)
    rv.relabel([0], an.classes[1])
    assert "review" in events
    assert an.samples.loc[0, "label"] == an.dataset.labels[0]  # given labels are never mutated
    out = an.export(tmp_path / "clean")
    assert out == tmp_path / "clean" and (out / "manifest.json").exists()
    exported = pd.read_parquet(out / "all.parquet").set_index("id")
    dropped = an.samples["is_ood"] | an.samples["is_duplicate"]      # the default drops
    assert set(exported.index) == set(an.samples.index[~dropped])
    if 0 in exported.index:
        assert exported.loc[0, "label"] == an.classes[1]              # the relabel is exported

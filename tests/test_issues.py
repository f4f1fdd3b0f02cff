"""The registry of issue types: one flag rule per issue, so thresholds round-trip, and every
consumer (summary, map, grid, counts line, export) lists the same issues."""

import inspect

import numpy as np
import pytest

import dqwidgets as dq
from dqwidgets import issues
from dqwidgets.export import export_analysis
from dqwidgets.planted import planted_fashion_mnist
from dqwidgets.widgets import grid, map as map_columns

THRESHOLDED = [i for i in issues.ISSUES if i.score_column and not i.requires]  # low_aum needs training=


@pytest.fixture(scope="module")
def planted():
    return planted_fashion_mnist(n=1200, seed=3, foreign_rate=0.05)  # foreign Sandal/Bag regions of 30 each (2.5%)


@pytest.fixture(scope="module")
def dataset(planted):
    return dq.Dataset.from_arrays(planted.features, planted.labels, metadata=planted.metadata)


@pytest.fixture(scope="module")
def an(dataset, tmp_path_factory):
    return dq.analyze(dataset, layout="pca", progress=False, workdir=tmp_path_factory.mktemp("wd"))


def flag_state(an, issue) -> dict:
    """Every column the issue's rule sets, as plain arrays."""
    cols = [issue.flag_column] + (["duplicate_group"] if issue.name == "duplicate" else [])
    return {c: an.samples[c].to_numpy().copy() for c in cols}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for c in a:
        np.testing.assert_array_equal(a[c], b[c], err_msg=c)


def test_every_scored_issue_has_a_threshold_and_flags_something(an):
    assert set(an.thresholds) == {i.score_column for i in THRESHOLDED}
    for issue in THRESHOLDED:
        assert an.samples[issue.flag_column].dtype == bool
        assert 0 < an.samples[issue.flag_column].sum() < len(an.samples), issue.name


@pytest.mark.parametrize("issue", THRESHOLDED, ids=lambda i: i.name)
def test_setting_the_threshold_it_has_changes_nothing(an, issue):
    before = flag_state(an, issue)
    an.set_threshold(issue.score_column, an.thresholds[issue.score_column])
    assert_same(before, flag_state(an, issue))


@pytest.mark.parametrize("issue", THRESHOLDED, ids=lambda i: i.name)
def test_moving_the_threshold_away_and_back_restores_the_same_ids(an, issue):
    start = an.thresholds[issue.score_column]
    before = flag_state(an, issue)
    ids_before = an.samples.index[an.samples[issue.flag_column]]
    for away in (min(1.0, start + 0.3), max(0.0, start - 0.3)):  # far enough to cross the gap below near copies
        an.set_threshold(issue.score_column, away)
        assert not an.samples.index[an.samples[issue.flag_column]].equals(ids_before), "the move must change flags"
        an.set_threshold(issue.score_column, start)
        assert an.samples.index[an.samples[issue.flag_column]].equals(ids_before)
        assert_same(before, flag_state(an, issue))


def test_analyze_with_thresholds_flags_what_set_threshold_flags_afterwards(an, dataset, tmp_path):
    chosen = {i.score_column: round(float(an.thresholds[i.score_column]) - 0.05, 3) for i in THRESHOLDED}
    direct = dq.analyze(dataset, layout="pca", progress=False, workdir=tmp_path, thresholds=chosen)
    assert direct.thresholds == chosen
    saved = dict(an.thresholds)
    try:
        for column, value in chosen.items():
            an.set_threshold(column, value)
        for issue in THRESHOLDED:
            assert_same(flag_state(direct, issue), flag_state(an, issue))
    finally:
        for column, value in saved.items():
            an.set_threshold(column, value)


def test_label_issues_are_the_confident_learning_count_and_only_where_another_label_is_likelier(an):
    s, ctx = an.samples, an.context
    flagged = s["is_label_issue"].to_numpy()
    assert flagged.sum() == ctx.label_issue_count  # no ties among float scores
    assert (ctx.suggested_codes[flagged] != ctx.label_codes[flagged]).all()
    assert (s["suggested_label"][flagged] != s["given_label"][flagged]).all()
    # the default is the score of the last sample flagged
    assert an.thresholds["label_issue_score"] == pytest.approx(s["label_issue_score"][flagged].min())


def test_a_plain_cut_is_not_the_rule_a_sample_the_data_labels_as_given_is_never_flagged(an):
    s = an.samples
    agree = (s["suggested_label"] == s["given_label"]).to_numpy()
    saved = an.thresholds["label_issue_score"]
    try:
        an.set_threshold("label_issue_score", 0.0)
        assert not s["is_label_issue"].to_numpy()[agree].any()
        assert s["is_label_issue"].to_numpy()[~agree].all()
    finally:
        an.set_threshold("label_issue_score", saved)


def test_bad_thresholds_are_clear_errors(dataset, planted, tmp_path):
    with pytest.raises(ValueError, match="no issue type scores"):
        dq.analyze(dataset, layout="pca", progress=False, workdir=tmp_path, thresholds={"is_ood": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dq.analyze(dataset, layout="pca", progress=False, workdir=tmp_path, thresholds={"ood_score": 1.5})
    with pytest.raises(ValueError, match="a number"):
        dq.analyze(dataset, layout="pca", progress=False, workdir=tmp_path, thresholds={"ood_score": "high"})
    unlabelled = dq.Dataset.from_arrays(planted.features[:200])
    with pytest.raises(ValueError, match="no label issue scores"):
        dq.analyze(unlabelled, layout="pca", progress=False, workdir=tmp_path, thresholds={"label_issue_score": .5})
    an = dq.analyze(unlabelled, layout="pca", progress=False, workdir=tmp_path)
    assert "label_issue_score" not in an.thresholds and not an.samples["is_label_issue"].any()
    with pytest.raises(ValueError, match="no threshold for 'label_issue_score'"):
        an.set_threshold("label_issue_score", 0.5)


def test_every_consumer_lists_the_registry(an, tmp_path):
    present = [i for i in issues.ISSUES if not i.requires]  # low_aum only with analyze(training=...)
    names = [i.name for i in present]
    summary = an.summary()
    assert names == [n for n in summary["issue"] if n in [i.name for i in issues.ISSUES]]
    for issue in present:
        assert summary.loc[issue.name, "count"] == an.samples[issue.flag_column].sum()
    assert map_columns.issue_order(an.samples) == ["fine", *[i.display for i in sorted(present, key=lambda i: i.rank)],
                                                   "dropped"]
    absent = [i.display for i in issues.ISSUES if i.flag_column not in an.samples]  # e.g. low AUM without training=
    assert absent and not set(absent) & set(map_columns.issue_order(an.samples))   # not in the legend
    assert {v[0] for v in grid.ISSUE_FILTERS.values()} == set(issues.FLAG_COLUMNS)
    assert inspect.signature(export_analysis).parameters["drop"].default == issues.EXPORT_DROPS == ("is_ood", "is_duplicate")
    shown = map_columns.issue_categories(an.samples)
    worst = max((i for i in present if an.samples[i.flag_column].any()), key=lambda i: i.rank)
    assert (shown[an.samples[worst.flag_column]] == worst.display).all()
    assert f"label_issue={int(an.samples['is_label_issue'].sum())}" in repr(an)


def test_the_registry_is_frozen_and_consistent():
    with pytest.raises(AttributeError):
        issues.ISSUES[0].rank = 9
    with pytest.raises(TypeError):
        issues.BY_NAME["new"] = issues.ISSUES[0]
    with pytest.raises(ValueError, match="share a rank"):
        issues._check(issues.ISSUES + (issues.IssueType("copy", "is_copy", "copy", rank=1, filter_key="copy",
                                                          filter_text="", count_text=None, export_drops=False),))
    assert issues.score_at_count(np.array([0.1, 0.9, 0.5, np.nan]), 2) == 0.5
    assert issues.score_at_count(np.array([0.1, 0.9]), 0) == 1.0
    assert issues.score_at_count(np.array([0.1, 0.9]), 5) == 0.1
    assert issues.at_least(np.array([np.nan, 0.5, 0.4]), 0.5).tolist() == [False, True, False]

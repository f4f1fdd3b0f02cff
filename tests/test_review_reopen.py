"""Analysing the same dataset again with the same workdir reopens its review journal."""

import numpy as np

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist


def test_a_second_analyze_sees_the_first_ones_review(tmp_path):
    images, y, names = load_fashion_mnist("test", 200, seed=7)
    features = images.reshape(200, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(200, 49).astype(np.float32)
    labels = np.array(names, dtype=object)[y]
    first = dq.analyze(dq.Dataset.from_arrays(features, labels), workdir=tmp_path, layout="pca", progress=False)
    first.review.relabel([3, 4], "Bag", note="handles")
    first.review.drop([5])
    first.review.mark_ok([6])

    again = dq.analyze(dq.Dataset.from_arrays(features, labels), workdir=tmp_path, layout="pca", progress=False)
    assert again.review.path == first.review.path
    assert again.review.labels()[[3, 4]].tolist() == ["Bag", "Bag"]
    assert again.review.dropped().tolist() == [5] and again.review.marked_ok().tolist() == [6]
    assert again.review.history()["note"].tolist() == ["handles", None, None]
    assert again.review.given_labels()[3] == labels[3]         # the given labels are not overwritten
    other = dq.analyze(dq.Dataset.from_arrays(features[:100], labels[:100]), workdir=tmp_path, layout="pca",
                       progress=False)
    assert other.review.history().empty                        # another dataset, another journal


def test_analyze_shows_the_journal_in_samples_and_summary(tmp_path):
    images, y, names = load_fashion_mnist("test", 200, seed=7)
    features = images.reshape(200, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(200, 49).astype(np.float32)
    labels = np.array(names, dtype=object)[y]
    first = dq.analyze(dq.Dataset.from_arrays(features, labels), workdir=tmp_path, layout="pca", progress=False)
    assert "review_status" not in first.samples            # nothing reviewed, no journal opened yet
    first.review.relabel([3, 4], "Bag")
    assert first.samples.loc[[3, 4], "current_label"].tolist() == ["Bag", "Bag"]   # live, without reopening
    first.review.drop([5])
    assert first.samples.loc[5, "review_status"] == "dropped"

    again = dq.analyze(dq.Dataset.from_arrays(features, labels), workdir=tmp_path, layout="pca", progress=False)
    s = again.samples
    assert s.loc[[3, 4], "current_label"].tolist() == ["Bag", "Bag"]
    assert s.loc[[3, 4], "label"].tolist() == labels[[3, 4]].tolist()   # the given labels stay as given
    assert s.loc[5, "review_status"] == "dropped" and s["review_status"].notna().sum() == 1
    reviewed = again.summary().loc["reviewed"]
    relabelled = int((labels[[3, 4]] != "Bag").sum())
    assert reviewed["count"] == relabelled + 1
    assert f"{relabelled} relabelled, 1 dropped" in reviewed["detail"]
    again.review.undo()
    assert again.samples.loc[5, "review_status"] is None

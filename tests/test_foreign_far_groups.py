"""Foreign groups far out on the per-sample scores, and regions too small to be a foreign group
(#11 item 4, compute.foreign._far_components and _large_groups), on planted truth: rows pasted from
another table lie far from every real row but are too few to hold a community of their own; a heavy
tail of real rows is connected the same way but its labels are real; a clean table whose classes
overlap has small regions of random-looking labels that are not foreign."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
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
    # without the far groups only the community that happens to hold a majority of them is found
    monkeypatch.setattr(fm, "_far_components", lambda adjacency, z: [])
    flags = _analyze(table, labels, tmp_path).samples["is_ood"].to_numpy()
    assert flags[foreign].mean() < 0.8


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

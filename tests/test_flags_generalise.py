"""The default flags on data the flag rules were not developed on (bench/bench_generalisation.py has
the full set; these are the few checks that are plainly product requirements, on tables that ship
with scikit-learn, so they run in seconds): a clean dataset gets few flags of each kind, and planted
label noise or a block of foreign rows is flagged at a useful precision and recall, with a
precision estimate a reviewer can believe (#11 items 1, 2, 4, 5).

Known failures are marked ``xfail(strict=True)`` with the measured numbers: the test turns red when
the rule is fixed, so whoever fixes it removes the mark and the check guards the fix."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dqwidgets as dq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_generalisation import _table, flip_to_neighbour, flip_uniform, other_table_block  # noqa: E402


def analyze_table(df: pd.DataFrame, labels, workdir) -> pd.DataFrame:
    frame = df.copy()
    frame["label"] = labels
    an = dq.analyze(dq.Dataset.from_dataframe(frame, label="label"), layout="pca", progress=False, workdir=workdir)
    return an


def best_f1(truth, score):
    order = np.argsort(-np.nan_to_num(np.asarray(score, float), nan=-1.0))
    tp = np.cumsum(truth[order])
    return float((2 * tp / (np.arange(1, len(truth) + 1) + truth.sum())).max())


def label_figures(an, wrong):
    s, summ = an.samples, an.summary()
    flags = s["is_label_issue"].to_numpy()
    tp = (flags & wrong).sum()
    return {"precision": tp / max(flags.sum(), 1), "recall": tp / wrong.sum(),
            "f1": 2 * tp / (flags.sum() + wrong.sum()), "best_f1": best_f1(wrong, s["label_issue_score"].to_numpy()),
            "estimated": float(summ.loc["label_issue", "estimated_precision"]) if flags.any() else np.nan}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("generalise")


@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
def test_a_clean_table_gets_few_flags_of_each_kind(name, workdir):
    """No planted issue: OOD flags and samples in duplicate groups at most 0.5% of the rows (one
    false pair tolerated on a small table), label flags at most 3% (real tables have a few).
    Not iris: 4 columns measured to 0.1 cm, where distinct flowers share rows up to one step
    (8 samples in groups beside the exact pair: reported in bench_generalisation, not asserted)."""
    df, y = _table(name)
    an = analyze_table(df, y, workdir)
    s, n = an.samples, len(y)
    exact = pd.Series([tuple(r) for r in df.to_numpy()]).duplicated(keep=False).to_numpy()  # real copies
    assert s["is_ood"].sum() <= 0.005 * n, s["is_ood"].sum()
    in_group = (s["duplicate_group"].to_numpy() >= 0) & ~exact
    assert in_group.sum() <= max(2, 0.005 * n), in_group.sum()
    assert s["is_label_issue"].sum() <= 0.03 * n, s["is_label_issue"].sum()


def test_a_clean_table_with_several_clusters_per_class_gets_no_foreign_flags(workdir):
    df, y = _table("make_classification")
    an = analyze_table(df, y, workdir)
    assert an.samples["is_ood"].sum() <= 0.005 * len(y)


@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
def test_uniform_label_noise_on_a_table_is_found_at_a_useful_precision(name, workdir):
    """10% uniform flips: precision and recall >= 0.8, F1 >= 0.9 x the best its score allows, and the
    estimated precision within 0.10 of the measured one."""
    df, y = _table(name)
    given = flip_uniform(y, 0.10, np.random.default_rng(7))
    f = label_figures(analyze_table(df, given, workdir), given != y)
    assert f["precision"] >= 0.8 and f["recall"] >= 0.8, f
    assert f["f1"] >= 0.9 * f["best_f1"], f
    assert abs(f["estimated"] - f["precision"]) <= 0.10, f


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
def test_one_sided_noise_to_the_neighbour_class_is_flagged_at_the_right_count(name, seed, workdir):
    """30% of one class to its neighbour class (asymmetric noise): the default flags' F1 >= 0.95 x the
    best its score allows and the estimated precision within 0.10 of the measured one (#11 items 1, 2).
    A temperature alone in the noise model read this noise as no noise (wine F1 0.385 of best 0.952, est.
    P 0.134 for 1.000; breast_cancer 0.537 of 0.954, est. 0.274); the class biases fix it."""
    df, y = _table(name)
    given = flip_to_neighbour(y, df.to_numpy(np.float64), 0.30, np.random.default_rng(seed))
    f = label_figures(analyze_table(df, given, workdir), given != y)
    assert f["f1"] >= 0.95 * f["best_f1"], f
    assert abs(f["estimated"] - f["precision"]) <= 0.10, f


def test_a_block_of_rows_from_another_table_is_flagged_foreign(workdir):
    """2% of the rows from another table with the same schema, random labels: >= 80% of them flagged
    OOD, precision >= 0.7 (#11 item 4)."""
    table, labels, foreign, _ = other_table_block(40)
    flags = analyze_table(table, labels, workdir).samples["is_ood"].to_numpy()
    assert (flags & foreign).sum() >= 0.8 * foreign.sum(), (flags & foreign).sum()
    assert (flags & foreign).sum() >= 0.7 * flags.sum(), flags.sum()

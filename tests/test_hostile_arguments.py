"""Inputs a user with unusual data passes (a hostile-input sweep of 2026-12-08): each gets a clear error
that names what is wrong and what to do, or works; none reaches an internal traceback or hangs."""

import numpy as np
import pandas as pd
import pytest

import dqwidgets as dq


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, 300)]
    return X, y


def _analyze(ds, tmp_path, **kw):
    return dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path, **kw)


@pytest.mark.parametrize("k", [5.5, "15", True])
def test_a_k_that_is_no_whole_number_is_refused(data, tmp_path, k):
    with pytest.raises(ValueError, match="k .*whole number"):
        _analyze(dq.Dataset.from_arrays(*data), tmp_path, k=k)


def test_tuple_ids_and_a_multiindex_frame_are_refused_with_the_fix(data):
    X, y = data
    with pytest.raises(ValueError, match="ids must be single values.*join"):
        dq.Dataset.from_arrays(X, y, ids=[(i, "x") for i in range(len(X))])
    frame = pd.DataFrame(X[:, :3], columns=list("pqr")).assign(label=y, g=np.arange(300) % 3, h=np.arange(300))
    with pytest.raises(ValueError, match="MultiIndex.*reset_index"):
        dq.Dataset.from_dataframe(frame.set_index(["g", "h"]), label="label")
    ds = dq.Dataset.from_dataframe(frame.set_index(["g", "h"]).reset_index(), label="label")
    assert len(ds) == 300


def test_ragged_feature_rows_are_refused(data):
    with pytest.raises(ValueError, match="from_arrays: features must be N x D"):
        dq.Dataset.from_arrays([[1.0, 2.0], [3.0]] * 150, data[1])


def test_a_nan_split_fraction_is_refused_not_a_hang(data, tmp_path):
    an = _analyze(dq.Dataset.from_arrays(*data), tmp_path / "w")
    with pytest.raises(ValueError, match="split fractions"):
        an.export(tmp_path / "out", splits={"train": float("nan"), "val": 1.0})
    with pytest.raises(ValueError, match="split fractions must be numbers"):
        an.export(tmp_path / "out", splits={"train": "most", "val": 0.2})
    from dqwidgets.compute.splits import split_by_fraction

    with pytest.raises(ValueError, match="finite"):
        split_by_fraction(np.zeros(10, np.int64), np.arange(10), [np.nan, 1.0])


def test_too_few_labelled_samples_for_the_probe_is_refused_with_the_counts(data, tmp_path):
    X, _ = data
    y = np.array([None] * len(X), dtype=object)
    y[:2] = ["a", "b"]
    with pytest.raises(ValueError, match=r"only 2 labelled samples \('a': 1, 'b': 1\).*two labelled samples each"):
        _analyze(dq.Dataset.from_arrays(X, y), tmp_path)
    y[2:4] = ["a", "b"]  # two of each: scored
    an = _analyze(dq.Dataset.from_arrays(X, y), tmp_path / "four")
    assert an.samples["is_unlabeled"].sum() == len(X) - 4


@pytest.mark.parametrize("modality", ["table", "text"])
def test_unlabelled_rows_stay_in_the_graph_from_a_dataframe(tmp_path, modality):
    """One row in ten labelled: every row gets a map position, OOD and duplicate scores and a predicted
    label; only the labelled ones a label-issue score (was: the unlabelled rows left out of the graph,
    and with 90% of them missing the run refused)."""
    rng = np.random.default_rng(1)
    n = 200
    y = np.array(["pos", "neg"])[rng.integers(0, 2, n)]
    if modality == "table":
        frame = pd.DataFrame({"x1": rng.normal(size=n) + (y == "pos") * 2, "x2": rng.normal(size=n),
                              "x3": rng.normal(size=n)})
        kw = {}
    else:
        words = {"pos": ["great", "fine", "lovely", "superb"], "neg": ["awful", "dull", "poor", "bad"]}
        frame = pd.DataFrame({"text": [" ".join(rng.choice(words[c], 5)) + f" film {i}" for i, c in enumerate(y)]})
        kw = {"text": "text"}
    labels = pd.Series(y, dtype=object)
    labels[np.arange(n) % 10 != 0] = None
    frame["label"] = labels
    embedder = "auto" if modality == "table" else (lambda texts: np.stack(
        [[t.count(w) for w in ("great", "fine", "lovely", "superb", "awful", "dull", "poor", "bad")] for t in texts]
    ).astype(np.float32) + rng.normal(0, 0.01, (len(texts), 8)).astype(np.float32))
    an = _analyze(dq.Dataset.from_dataframe(frame, label="label", **kw), tmp_path, embedder=embedder)
    s = an.samples
    assert s["is_unlabeled"].sum() == n - n // 10
    assert not s["is_invalid"].any()
    assert s[["x", "y", "ood_score"]].notna().all().all()
    assert s["predicted_label"].notna().all()
    assert s.loc[s["is_unlabeled"], "label_issue_score"].isna().all()
    assert s.loc[~s["is_unlabeled"], "label_issue_score"].notna().all()


@pytest.mark.parametrize("value", [1.0, 7.0])
def test_rows_that_are_all_one_constant_vector_are_one_duplicate_group(data, tmp_path, value):
    """np.ones rows have cosine self-distances of float32 rounding (5.96e-08), not 0: they are exact copies
    (compute.duplicates.COSINE_ZERO; was: 0 duplicates, the rounding error read as their spacing)."""
    X = np.full((300, 8), value, np.float32)
    s = _analyze(dq.Dataset.from_arrays(X, data[1]), tmp_path).samples
    assert (s["duplicate_group"] >= 0).all() and s["is_duplicate"].sum() == 299


def test_an_image_folder_with_eval_and_an_odd_top_folder_says_how_it_was_read(tmp_path):
    """train/ and eval/ are splits; beside an odd folder the top folders are read as labels, with a warning
    that names them and says how to read them as splits (was: silent, the real classes lost)."""
    from PIL import Image

    for rel in ("train/red/a.png", "train/blue/b.png", "eval/red/c.png", "eval/blue/d.png"):
        (tmp_path / "ok" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "ok" / rel)
    ds = dq.Dataset.from_image_folder(tmp_path / "ok")
    assert sorted(set(ds.splits)) == ["eval", "train"] and ds.classes == ["blue", "red"]
    (tmp_path / "ok" / "weird" / "x").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "ok" / "weird" / "x" / "e.png")
    with pytest.warns(UserWarning, match=r"look like splits.*split_folders=True"):
        ds = dq.Dataset.from_image_folder(tmp_path / "ok")
    assert "train" in ds.classes
    assert dq.Dataset.from_image_folder(tmp_path / "ok", split_folders=True).classes == ["blue", "red", "x"]


def test_reanalysing_with_a_row_added_warns_that_the_earlier_review_is_in_another_journal(data, tmp_path):
    """The journal is keyed by the exact set of ids: with one row added, a new empty journal opens, and the
    user is told where the earlier review is (was: silently empty)."""
    X, y = data
    a = _analyze(dq.Dataset.from_arrays(X[:299], y[:299]), tmp_path)
    a.review.drop([1, 2])
    b = _analyze(dq.Dataset.from_arrays(X, y), tmp_path)
    a.review.relabel([5], "c")
    a.review.relabel([6], "brand-new", new_label=True)
    a.review.mark_ok([7])
    a.review.drop([8])
    a.review.undo()  # the drop of 8 undone: not carried over
    with pytest.warns(UserWarning, match=r"reviewed 6 samples, 6 of them here.*another version.*adopt"):
        assert len(b.review.history()) == 0
    old = a.journal_path
    got = b.review.adopt(old)
    assert got == {"relabelled": 2 - (y[5] == "c"), "dropped": 2, "marked_ok": 1, "not_here": 0}
    assert sorted(b.review.dropped()) == [1, 2] and list(b.review.marked_ok()) == [7]
    assert b.review.labels()[5] == "c" and b.review.labels()[6] == "brand-new"
    assert b.samples.loc[6, "current_label"] == "brand-new"
    entries = len(b.review.history())
    assert entries <= 4
    for _ in range(entries):
        b.review.undo()
    assert list(b.review.dropped()) == [] and b.review.labels()[6] == y[6]
    assert b.review.adopt(old)["dropped"] == 2  # again after the undo: the same decisions
    assert b.review.adopt(old) == {"relabelled": 0, "dropped": 0, "marked_ok": 0, "not_here": 0}
    with pytest.raises(ValueError, match="own journal"):
        b.review.adopt(b.journal_path)
    with pytest.raises(ValueError, match="no journal"):
        b.review.adopt(tmp_path / "nowhere")
    c = _analyze(dq.Dataset.from_arrays(X[:299], y[:299]), tmp_path)  # the same data: its journal, no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(c.review.dropped()) == [1, 2]


def test_a_labelled_batch_against_an_unlabelled_reference_says_what_to_do(data, tmp_path):
    X, y = data
    ref = _analyze(dq.Dataset.from_arrays(X[:200]), tmp_path / "ref")
    with pytest.raises(ValueError, match="reference analysis has no labels.*without labels"):
        _analyze(dq.Dataset.from_arrays(X[200:], y[200:]), tmp_path / "new", reference=ref)
    assert len(_analyze(dq.Dataset.from_arrays(X[200:]), tmp_path / "new2", reference=ref).samples) == 100


def test_a_one_column_table_is_not_read_as_copies_of_itself(tmp_path):
    """One numeric column, standardised, was +1 or -1 after the cosine graph's normalising: 298 of 300 rows
    flagged as duplicates. The table's constant column (embed.tabular) keeps the values apart; 20 planted
    exact copies are still all found."""
    rng = np.random.default_rng(0)
    y = np.array(["a", "b"])[rng.integers(0, 2, 300)]
    v = rng.normal(size=300) + (y == "a") * 2
    frame = pd.DataFrame({"v": np.r_[v[:280], v[:20]], "label": np.r_[y[:280], y[:20]]})
    s = _analyze(dq.Dataset.from_dataframe(frame, label="label"), tmp_path).samples
    copies = np.r_[np.arange(20), np.arange(280, 300)]
    assert (s["duplicate_group"].to_numpy()[copies] >= 0).all()
    assert s["is_duplicate"].sum() <= 0.3 * len(frame), s["is_duplicate"].sum()


def test_precomputed_features_of_two_columns_warn_that_the_graph_sees_only_their_direction(tmp_path):
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(18, 80, 300), rng.uniform(1e4, 1e5, 300)].astype(np.float32)  # age, income
    with pytest.warns(UserWarning, match="2 column.*direction.*from_dataframe"):
        _analyze(dq.Dataset.from_arrays(X, np.array(["a", "b"])[rng.integers(0, 2, 300)]), tmp_path)


def test_a_journal_relabelling_to_classes_since_renamed_says_so(data, tmp_path):
    X, y = data
    a = _analyze(dq.Dataset.from_arrays(X, y), tmp_path)
    a.review.relabel([3], "c" if y[3] != "c" else "a")
    renamed = np.array(["q" + v for v in y], object)  # the same ids, the labels renamed
    b = _analyze(dq.Dataset.from_arrays(X, renamed), tmp_path / "other")
    assert len(b.samples) == len(X)
    import shutil

    shutil.copytree(a.journal_path.parent, (tmp_path / "renamed" / a.journal_path.parent.name))
    with pytest.warns(UserWarning, match="relabels 1 sample.*classes this data does not have.*renamed"):
        _analyze(dq.Dataset.from_arrays(X, renamed), tmp_path / "renamed")

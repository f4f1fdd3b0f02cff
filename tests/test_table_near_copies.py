"""Near-copies in tables and precomputed features at the DEFAULT duplicate threshold (issue 11, item 5):
rows copied with a few cells edited are flagged (recall >= 0.95), distinct rows are not (false positives
<= 0.5% of the other samples), whatever the columns: small integers (scikit-learn's digits: 3 of 64
cells moved by 1), continuous measurements on mixed scales (breast cancer, wine: a few cells changed by
10-30%), many columns; dense embeddings (where no cell of two vectors is equal) keep the embedding's
closeness, and copies across splits are reported as leakage."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

import dqwidgets as dq
from dqwidgets.compute.duplicates import (cell_mismatches, duplicate_groups, near_copy_edges,
                                          with_cells)
from dqwidgets.compute.knn import knn_graph


def _figures(an, copy_of):
    """(share of copies in their source's duplicate group, false positives / the other samples)."""
    pair = copy_of >= 0
    pair[copy_of[copy_of >= 0]] = True
    group = an.samples["duplicate_group"].to_numpy()
    cp = np.flatnonzero(copy_of >= 0)
    recall = ((group[cp] >= 0) & (group[cp] == group[copy_of[cp]])).mean()
    return float(recall), float(((group >= 0) & ~pair).sum() / (~pair).sum())


def _analyze(frame, labels, tmp_path, split=None):
    df = frame.copy()
    df["label"] = labels
    if split is not None:
        df["split"] = split
    ds = dq.Dataset.from_dataframe(df, label="label", **({"split": "split"} if split is not None else {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path)


def _copies(X, rng, n_copies, n_cells, edit):
    """``n_copies`` rows of ``X`` copied with ``n_cells`` random cells changed by ``edit(values, rng)``."""
    src = rng.choice(len(X), n_copies, replace=False)
    C = X[src].astype(np.float64).copy()
    for row in C:
        cols = rng.choice(X.shape[1], n_cells, replace=False)
        row[cols] = edit(row[cols], rng)
    return np.vstack([X, C]), np.concatenate([np.full(len(X), -1), src]).astype(np.int64)


def _relative(sd):
    def edit(v, rng):  # each cell scaled by 1 +- ~sd (never unchanged)
        return v * (1 + rng.choice([-1, 1], len(v)) * np.abs(rng.normal(sd, sd / 4, len(v))))
    return edit


def test_digits_rows_with_three_cells_moved_by_one_are_flagged(tmp_path):
    """The bench's table case (dqwidgets.planted.digits_table_case, 36 copies with 3 of 64 cells +-1):
    as a table and as the same features passed as arrays. An edited border cell (almost always 0, sd
    0.3) moves a copy 3 sd away in the z-scored embedding: on the embedding's closeness alone a sixth
    of the copies are missed (recall 0.83, as bench_quality measured before the cell channel)."""
    from dqwidgets.planted import digits_table_case

    case = digits_table_case()
    an = dq.analyze(case.dataset(), layout="pca", progress=False, workdir=tmp_path / "table")
    recall, fp = _figures(an, case.copy_of)
    assert recall >= 0.95 and fp <= 0.005, (recall, fp)
    arrays = dq.analyze(case.dataset(an.features), layout="pca", progress=False, workdir=tmp_path / "arrays")
    assert (arrays.samples["duplicate_group"].to_numpy() == an.samples["duplicate_group"].to_numpy()).all()
    # without the cell channel the same graph misses them
    g = an.graph
    edges, threshold, _ = near_copy_edges(g.distances, g.metric, g.indices)
    group, _ = duplicate_groups(g.indices, edges, threshold)
    cp = np.flatnonzero(case.copy_of >= 0)
    assert ((group[cp] >= 0) & (group[cp] == group[case.copy_of[cp]])).mean() < 0.9


@pytest.mark.parametrize("name,n_cells,sd", [("breast_cancer", 3, 0.1), ("breast_cancer", 3, 0.3),
                                             ("wine", 3, 0.1), ("wine", 2, 0.3)])
def test_continuous_table_rows_with_a_few_cells_changed_are_flagged(tmp_path, name, n_cells, sd):
    """Measurements on mixed scales (breast cancer: 30 columns from 0.001 to 4,000; wine: 13), 4% of the
    rows copied with a few cells changed by ~10-30% of their value. On the embedding's closeness alone:
    recall 0.83 / 0.22 (breast cancer), 0.29 / 0.0 (wine), measured when this test was written."""
    data = getattr(datasets, f"load_{name}")()
    rng = np.random.default_rng(0)
    X, copy_of = _copies(data.data, rng, int(0.04 * len(data.data)), n_cells, _relative(sd))
    y = data.target.astype(str)
    an = _analyze(pd.DataFrame(X, columns=data.feature_names), np.concatenate([y, y[copy_of[copy_of >= 0]]]),
                  tmp_path)
    recall, fp = _figures(an, copy_of)
    assert recall >= 0.95 and fp <= 0.005, (recall, fp)


def test_wide_table_copies_are_flagged(tmp_path):
    """200 correlated columns rounded to 2 decimals; copies with 8 cells changed by ~10%."""
    rng = np.random.default_rng(3)
    X = np.round(rng.normal(0, 1, (1500, 200)) @ rng.normal(0, 1, (200, 200)) / 10, 2)
    X, copy_of = _copies(X, rng, 30, 8, _relative(0.1))
    an = _analyze(pd.DataFrame(X, columns=[f"w{j}" for j in range(200)]), rng.choice(["u", "v"], len(X)), tmp_path)
    recall, fp = _figures(an, copy_of)
    assert recall >= 0.95 and fp <= 0.005, (recall, fp)


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine"])
def test_clean_tables_of_similar_distinct_rows_are_not_flagged(tmp_path, name):
    """No planted copies: digits written alike (the closest two distinct digits still differ in 12 of 64
    cells; copies above differ in <= 3), breast cancer, wine. Flags stay <= 0.5%, and the cell channel
    adds none of them."""
    data = getattr(datasets, f"load_{name}")()
    an = _analyze(pd.DataFrame(data.data, columns=[str(c) for c in data.feature_names]),
                  data.target.astype(str), tmp_path)
    flagged = an.samples["duplicate_group"].to_numpy() >= 0
    assert flagged.mean() <= 0.005, flagged.sum()
    g = an.graph
    cells_only, extra = with_cells(np.zeros(g.indices.shape, np.float32), np.asarray(g.indices), an.features,
                                   an.context.duplicate_default)
    assert (cells_only >= an.context.duplicate_default).sum() == 0
    assert extra is None or (extra[2] >= an.context.duplicate_default).sum() == 0


def test_dense_embeddings_keep_the_embedding_closeness(tmp_path):
    """Dense vectors (64 pixel PCs of Fashion-MNIST): no cell of two different vectors is equal, so the
    cell channel raises no edge; a vector plus light noise is still found by the embedding's closeness
    (with the cell channel on, as for any precomputed features), and nothing else is flagged."""
    from dqwidgets.examples import load_fashion_mnist
    from dqwidgets.planted import pixel_pca

    images, y, classes = load_fashion_mnist("train", n=1500, seed=2)
    X = pixel_pca(images, 64)
    g = knn_graph(X, 15, device="cpu")
    m = cell_mismatches(X, np.asarray(g.indices))
    assert (m >= X.shape[1] - 1).mean() > 0.999  # a cell equal by chance: rare
    raised, extra = with_cells(np.zeros(g.indices.shape, np.float32), np.asarray(g.indices), X, 0.5)
    assert raised.max() <= 0.05 and extra is None  # ratio ~63/64 of the neighbourhood's: closeness ~0.02
    rng = np.random.default_rng(0)
    src = rng.choice(len(X), 40, replace=False)
    scale = np.median(np.linalg.norm(X - X.mean(0), axis=1))
    noisy = X[src] + rng.normal(0, 0.01 * scale / np.sqrt(X.shape[1]), (len(src), X.shape[1])).astype(np.float32)
    copy_of = np.concatenate([np.full(len(X), -1), src]).astype(np.int64)
    an = dq.analyze(dq.Dataset.from_arrays(np.vstack([X, noisy]), [classes[c] for c in np.concatenate([y, y[src]])]),
                    layout="pca", progress=False, workdir=tmp_path)
    recall, fp = _figures(an, copy_of)
    assert recall >= 0.95 and fp <= 0.005, (recall, fp)


def test_table_copies_across_splits_are_reported_as_leakage(tmp_path):
    """Digits copies (3 cells +-1) placed in the test split, their sources in train: every such group
    spans both splits and summary() counts its members as cross-split duplicates."""
    from dqwidgets.planted import digits_table_case

    case = digits_table_case()
    split = np.where(case.copy_of >= 0, "test", "train").astype(object)
    rng = np.random.default_rng(0)
    split[(case.copy_of < 0) & (rng.random(len(split)) < 0.2)] = "test"
    sources = case.copy_of[case.copy_of >= 0]
    split[sources] = "train"
    an = _analyze(case.data, case.labels, tmp_path, split=split)
    group = an.samples["duplicate_group"].to_numpy()
    cp = np.flatnonzero(case.copy_of >= 0)
    found = (group[cp] >= 0) & (group[cp] == group[sources])
    assert found.mean() >= 0.95, found.mean()
    row = an.summary().loc["cross_split_duplicate"]
    n_groups = int(row["detail"].split()[0])  # "<n> duplicate groups span more than one split ..."
    assert len(np.unique(group[cp][found])) <= n_groups <= len(cp) + 0.005 * len(group)
    assert row["count"] >= 2 * found.sum()


@pytest.mark.xfail(strict=True, reason="known: on a table of 6 categorical + 3 integer + 3 continuous columns "
                   "(3,000 independent rows) the embedding's closeness flags 18 rows (0.6%; main: the same 18): pairs equal in every "
                   "discrete column whose continuous cells differ by ~0.4 sd are far closer than the neighbourhood's "
                   "spacing, which a categorical step (sqrt 2 in one-hot) dominates; the cell channel adds none")
def test_mixed_categorical_table_of_distinct_rows_is_not_flagged(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({**{f"c{j}": rng.choice(list("abcd")[: 2 + j % 3], n) for j in range(6)},
                          **{f"x{j}": np.round(rng.normal(50, 10, n), 1) for j in range(3)},
                          **{f"i{j}": rng.integers(0, 5, n) for j in range(3)}})
    an = _analyze(frame, rng.choice(["u", "v"], n), tmp_path)
    assert (an.samples["duplicate_group"].to_numpy() >= 0).mean() <= 0.005


def test_the_gpu_path_of_the_cell_channel_gives_the_numpy_results():
    """``with_cells`` on a GPU compares the cells there (``gpu_cells``); the code is device-agnostic
    torch, so on a CPU tensor it must give exactly the numpy path's mismatches and band candidates."""
    import torch

    from dqwidgets.compute.duplicates import cell_candidates

    rng = np.random.default_rng(3)
    X, copy_of = _copies(datasets.load_digits().data[:600], rng, 40, 3,
                         lambda v, r: v + r.choice([-1, 1], len(v)))
    X = X.astype(np.float32)
    X[5, :4] = -0.0  # -0 and 0 are the same cell for both paths
    g = knn_graph(X, 10, device="cpu")
    rows = rng.permutation(len(X))
    t = torch.as_tensor(X)
    np.testing.assert_array_equal(cell_mismatches(X, g.indices, rows, gpu_cells=t),
                                  cell_mismatches(X, g.indices, rows))
    a_np, b_np = cell_candidates(X, rows)
    a_t, b_t = cell_candidates(X, rows, gpu_cells=t)
    assert len(a_np) > 0
    np.testing.assert_array_equal(a_np, a_t)
    np.testing.assert_array_equal(b_np, b_t)

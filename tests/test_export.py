"""Export of real analyze() output: journal applied, leak-free stratified splits, manifest, formats, atomicity."""

import json

import numpy as np
import pandas as pd
import pytest

import dqwidgets as dq
from dqwidgets.compute.splits import group_ids, keep_groups_together, split_by_fraction
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.export import ExportExistsError

N, N_DUP = 600, 40


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """Fashion-MNIST (7 x 7 average-pooled pixels as features) with 40 near-copies and a given split."""
    images, y, names = load_fashion_mnist("train", N, seed=1)
    X = images.reshape(N, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(N, 49).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    copies = rng.choice(N, N_DUP, replace=False)
    X = np.vstack([X, X[copies] + rng.normal(0, 1e-4, (N_DUP, 49)).astype(np.float32)])
    labels = np.array(names, dtype=object)[np.r_[y, y[copies]]]
    split = rng.choice(["train", "val", "test"], len(X), p=[.7, .15, .15])
    ds = dq.Dataset.from_arrays(X, labels, split=split)
    an = dq.analyze(ds, workdir=tmp_path_factory.mktemp("workdir"), layout="pca", progress=False)
    assert an.samples["is_duplicate"].sum() >= N_DUP // 2, "the near-copies must be found for these tests to mean much"
    return an


@pytest.fixture
def reviewed(analysis, tmp_path):
    """A fresh analysis of the same dataset in its own workdir, for a test that writes to the review
    journal (an.review): the module's ``analysis`` keeps an empty journal for the other tests."""
    return dq.analyze(analysis.dataset, workdir=tmp_path / "work", layout="pca", progress=False)


def read_splits(path, names=("train", "val", "test")):
    return {name: pd.read_parquet(path / f"{name}.parquet") for name in names}


def test_resplit_is_leak_free_stratified_and_counted_in_the_manifest(analysis, tmp_path):
    fractions = {"train": .8, "val": .1, "test": .1}
    out = analysis.export(tmp_path / "clean", splits=fractions)      # the public API, default drops
    parts = read_splits(out)
    ids = pd.concat([p["id"] for p in parts.values()])
    assert not ids.duplicated().any()                                   # no id in two splits
    samples = analysis.samples
    dropped = samples.index[samples["is_duplicate"] | samples["is_ood"]]
    assert set(ids) == set(samples.index.difference(dropped))
    kept_labels = samples["label"].drop(dropped).value_counts()
    for name, part in parts.items():                                    # within one sample of the target
        got = part["label"].value_counts().reindex(kept_labels.index, fill_value=0)
        assert (abs(got - kept_labels * fractions[name]) <= 1).all(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["per_split"] == {n: len(p) for n, p in parts.items()}
    for name, part in parts.items():
        assert manifest["counts"]["per_split_label"][name] == part["label"].value_counts().to_dict()
    assert manifest["counts"]["exported"] == len(ids)
    assert manifest["seed"] == 0 and manifest["dqwidgets_version"] == dq.__version__
    assert manifest["dropped"]["by_reason"]["is_duplicate"]["count"] == int(samples["is_duplicate"].sum())
    assert manifest["split_source"] == "re-split"


def test_duplicate_groups_never_cross_splits(analysis, tmp_path):
    out = analysis.export(tmp_path / "clean", drop=("is_ood",), splits={"train": .6, "val": .2, "test": .2})
    parts = read_splits(out)
    rows = pd.concat([p.assign(split=n) for n, p in parts.items()]).set_index("id")
    groups = analysis.samples["duplicate_group"].reindex(rows.index)
    grouped = rows[groups >= 0].assign(group=groups[groups >= 0])
    assert grouped["group"].nunique() >= N_DUP // 2
    assert (grouped.groupby("group")["split"].nunique() == 1).all()
    kept_labels = rows["label"].value_counts()
    for name, part in parts.items():   # pairs are placed first, so each count is within one pair of the target
        got = part["label"].value_counts().reindex(kept_labels.index, fill_value=0)
        assert (abs(got - kept_labels * {"train": .6, "val": .2, "test": .2}[name]) <= 2).all(), name


def test_given_splits_are_kept_and_leaking_groups_moved_whole(analysis, tmp_path):
    out = analysis.export(tmp_path / "clean", drop=())
    parts = read_splits(out)
    rows = pd.concat([p.assign(split=n) for n, p in parts.items()]).set_index("id")
    given = analysis.dataset.splits.reindex(rows.index)
    moved = json.loads((out / "manifest.json").read_text())["leakage_fixed"]["samples"]
    moved_ids = {m["id"] for m in moved}
    assert moved_ids, "random given splits put some near-copies in different splits"
    assert (rows["split"] == given).drop(list(moved_ids)).all()          # everything else keeps its split
    assert all(rows.at[m["id"], "split"] == m["to"] != m["from"] for m in moved)
    groups = analysis.samples["duplicate_group"].reindex(rows.index)
    assert (rows[groups >= 0].groupby(groups[groups >= 0])["split"].nunique() == 1).all()


def test_journal_fixes_are_applied_and_explained(reviewed, tmp_path):
    an, samples = reviewed, reviewed.samples
    if not samples["is_ood"].any():  # clean Fashion-MNIST has no OOD flag by default: flag the most unusual one
        an.set_threshold("ood_score", float(samples["ood_score"].max()))
    clean = samples.index[~(samples["is_ood"] | samples["is_duplicate"] | samples["is_label_issue"])]
    ood = samples.index[samples["is_ood"]][0]
    issue = samples.index[samples["is_label_issue"] & ~samples["is_ood"] & ~samples["is_duplicate"]][0]
    target = next(c for c in an.classes if c != samples.at[clean[0], "label"])
    an.review.relabel(clean[0], target, note="sleeve visible")
    an.review.relabel(issue, samples.at[issue, "suggested_label"])
    an.review.drop(clean[1:3], note="two items in one picture")
    an.review.mark_ok(ood, note="rare but real")
    out = an.export(tmp_path / "clean", drop=("is_ood", "is_duplicate", "is_label_issue"), splits={"train": .5, "test": .5})
    rows = pd.concat(read_splits(out, ("train", "test")).values()).set_index("id")
    assert rows.at[clean[0], "label"] == target and rows.at[clean[0], "given_label"] == samples.at[clean[0], "label"]
    assert not rows.index.isin(clean[1:3]).any()
    assert ood in rows.index               # marked ok beats the flag
    assert issue in rows.index             # a corrected label issue is kept
    manifest = json.loads((out / "manifest.json").read_text())
    changes = {r["id"]: r for r in manifest["relabelled"]["samples"]}
    assert changes[int(clean[0])]["to"] == target and changes[int(clean[0])]["note"] == "sleeve visible"
    assert {r["id"]: r["note"] for r in manifest["dropped"]["journal"]} == {
        int(i): "two items in one picture" for i in clean[1:3]}


def test_same_seed_same_splits_other_seed_other_splits(analysis, tmp_path):
    runs = [analysis.export(tmp_path / f"run{i}", splits={"train": .8, "test": .2}, seed=s)
            for i, s in enumerate([5, 5, 6])]
    tests = [set(pd.read_parquet(r / "test.parquet")["id"]) for r in runs]
    assert tests[0] == tests[1] and tests[0] != tests[2]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_formats_hold_the_same_rows(analysis, tmp_path, fmt):
    pq = analysis.export(tmp_path / "pq", splits={"train": .8, "test": .2})
    out = analysis.export(tmp_path / fmt, format=fmt, splits={"train": .8, "test": .2})
    for name in ("train", "test"):
        want = pd.read_parquet(pq / f"{name}.parquet")
        got = pd.read_csv(out / f"{name}.csv") if fmt == "csv" else pd.read_json(out / f"{name}.jsonl", lines=True)
        assert got["id"].tolist() == want["id"].tolist() and got["label"].tolist() == want["label"].tolist()


def test_existing_exports_are_only_replaced_on_request(reviewed, tmp_path):
    an, folder = reviewed, tmp_path / "out"
    out = an.export(folder / "clean", splits={"train": .5, "test": .5})
    with pytest.raises(ExportExistsError, match="overwrite=True"):
        an.export(out)
    an.review.drop(an.samples.index[:10])
    an.export(out, splits={"train": .5, "test": .5}, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["dropped"]["by_reason"]["dropped in review"]["count"] == 10
    precious = folder / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ExportExistsError, match="not a dqwidgets export"):
        an.export(precious, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in folder.iterdir()) == ["clean", "precious"]   # no temporary folder left behind


def test_bad_arguments_are_clear_errors(analysis, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        analysis.export(tmp_path / "x", format="xlsx")
    with pytest.raises(ValueError, match="'is_blurry' is not a column of an.samples; flags there: .*is_ood"):
        analysis.export(tmp_path / "x", drop=("is_blurry",))
    with pytest.raises(ValueError, match="sum to 1"):
        analysis.export(tmp_path / "x", splits={"train": .8, "test": .8})
    with pytest.raises(ValueError, match="needs images"):
        analysis.export(tmp_path / "x", format="imagefolder")
    assert not (tmp_path / "x").exists()


def test_split_by_fraction_is_within_one_sample_per_stratum():
    rng = np.random.default_rng(3)
    strata = rng.choice(["a", "b", "c", "d"], 1001, p=[.6, .3, .09, .01])
    fractions = [.7, .2, .1]
    assignment = split_by_fraction(strata, np.full(len(strata), -1), fractions, seed=0)
    for label in np.unique(strata):
        counts = np.bincount(assignment[strata == label], minlength=3)
        assert (abs(counts - (strata == label).sum() * np.array(fractions)) < 1).all()


def test_leaking_groups_go_where_most_of_them_are_ties_to_the_preferred_split():
    groups = group_ids(np.array([0, 0, 0, 1, 1, 2, -1, 3, 3]))
    assert groups.tolist() == [0, 0, 0, 1, 1, -1, -1, 3, 3]          # a group of one keeps nothing together
    splits = np.array([2, 2, 0, 1, 2, 0, 1, 1, 1])                     # codes: 0 = train, 1 = val, 2 = test
    assert keep_groups_together(splits, groups).tolist() == [2, 2, 2, 1, 1, 0, 1, 1, 1]


def test_hostile_split_names_stay_inside_and_unstratified_splits_keep_sizes(analysis, tmp_path):
    out = analysis.export(tmp_path / "clean", splits={"../../up": .5, "/abs": .25, "ok": .25}, stratify=False)
    files = sorted(p.name for p in out.iterdir())
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"].values()) | {"manifest.json"} == set(files)
    assert all("/" not in name and not name.startswith(".") for name in files)
    assert not (tmp_path / "up.parquet").exists() and not any(tmp_path.parent.glob("up*"))
    sizes = {name: len(pd.read_parquet(out / f)) for name, f in manifest["files"].items()}
    total = sum(sizes.values())
    assert all(abs(sizes[name] - total * f) <= 1 for name, f in {"../../up": .5, "/abs": .25, "ok": .25}.items())


def test_an_unlabelled_dataset_exports_and_keeps_the_labels_its_reviewer_gave(tmp_path):
    """No label column: the export writes every sample (no crash on the manifest's relabels), and
    labels given in review (new classes, an unlabelled dataset has none) come out in a ``label``
    column beside an empty ``given_label``; a data column already called ``label`` is not overwritten."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    an = dq.analyze(dq.Dataset.from_arrays(X, None), workdir=tmp_path / "w", layout="pca", progress=False)
    out = an.export(tmp_path / "plain")
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["exported"] == 120 and m["relabelled"]["count"] == 0
    assert "label" not in pd.read_parquet(out / "all.parquet").columns
    ids = an.samples.index[:3].tolist()
    an.review.relabel(ids[:2], "cat", new_label=True)
    an.review.relabel(ids[2:], "dog", new_label=True)
    out = an.export(tmp_path / "labelled")
    df = pd.read_parquet(out / "all.parquet").set_index("id")
    assert df.loc[ids, "label"].tolist() == ["cat", "cat", "dog"]
    assert df["label"].notna().sum() == 3 and df["given_label"].isna().all()
    m = json.loads((out / "manifest.json").read_text())
    assert m["relabelled"]["count"] == 3 and {r["to"] for r in m["relabelled"]["samples"]} == {"cat", "dog"}
    assert m["counts"]["per_split_label"]["all"]["cat"] == 2
    # a feature column named "label" in an unlabelled table stays as it is
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]).assign(label=np.arange(120) % 2)
    an2 = dq.analyze(dq.Dataset.from_dataframe(frame),
                     workdir=tmp_path / "w2", layout="pca", progress=False)
    an2.review.relabel(an2.samples.index[:1], "cat", new_label=True)
    df2 = pd.read_parquet(an2.export(tmp_path / "own_label") / "all.parquet")
    assert (df2["label"].to_numpy() == np.arange(120) % 2).all() and df2["review_label"].notna().sum() == 1

"""Dataset.from_parquet: one file, a folder or a glob; embeddings left in the files until read; every
bad input named with its file and column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import dqwidgets as dq
from dqwidgets.engine.parquet import ParquetFeatures, read_bytes


def write_shards(folder, n_files=3, rows=40, d=8, seed=0, fixed=True):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(n_files):
        X = rng.normal(size=(rows, d)).astype(np.float32)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d) if fixed else pa.array(list(X))
        labels = rng.choice(["cat", "dog", "fox"], rows)
        t = pa.table({"uid": [f"f{i}-{j}" for j in range(rows)], "emb": emb, "label": labels,
                      "site": rng.choice(["x", "y"], rows)})
        pq.write_table(t, folder / f"part-{i}.parquet", row_group_size=16)
        parts.append((X, labels))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("how", ["folder", "glob", "list"])
def test_folder_glob_and_list_read_the_same_rows(tmp_path, how):
    X, labels = write_shards(tmp_path / "d")
    paths = {"folder": tmp_path / "d", "glob": str(tmp_path / "d" / "part-*.parquet"),
             "list": sorted((tmp_path / "d").glob("*.parquet"))}[how]
    ds = dq.Dataset.from_parquet(paths, features="emb", label="label", id="uid")
    assert len(ds) == 120 and ds.ids[0] == "f0-0" and ds.ids[-1] == "f2-39"
    assert isinstance(ds.features, ParquetFeatures) and ds.features.shape == (120, 8)
    assert np.array_equal(np.asarray(ds.features), X)
    assert list(ds.labels) == list(labels) and ds.metadata_columns == ["site"]
    assert "emb" not in ds.frame.columns  # the embeddings stay in the files


def test_local_engine_on_parquet_equals_from_arrays(tmp_path):
    X, labels = write_shards(tmp_path / "d", rows=60)
    a = dq.analyze(dq.Dataset.from_parquet(tmp_path / "d", features="emb", label="label"), layout="pca",
                   progress=False, workdir=tmp_path / "w1")
    b = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="pca", progress=False, workdir=tmp_path / "w2")
    assert np.allclose(a.samples["ood_score"].to_numpy(), b.samples["ood_score"].to_numpy())
    assert (a.samples["is_label_issue"].to_numpy() == b.samples["is_label_issue"].to_numpy()).all()


def test_variable_length_lists_and_a_bad_row(tmp_path):
    X, _ = write_shards(tmp_path / "d", n_files=1, fixed=False)
    ds = dq.Dataset.from_parquet(tmp_path / "d", features="emb")
    assert np.allclose(np.asarray(ds.features), X)
    rows = [list(r) for r in X[:5]] + [[1.0, 2.0]]
    pq.write_table(pa.table({"emb": pa.array(rows, pa.list_(pa.float32()))}), tmp_path / "bad.parquet")
    bad = dq.Dataset.from_parquet(tmp_path / "bad.parquet", features="emb")
    with pytest.raises(ValueError, match=r"row 5 of .*bad\.parquet.* 2 values in column 'emb', other rows have 8"):
        np.asarray(bad.features)


def test_missing_embeddings_first_among_them_are_invalid_rows_not_an_error(tmp_path):
    """A null and an empty list (here the first rows, which used to set the width) are flagged
    invalid; the rest is analysed. An odd length in a minority of rows is the one named."""
    rng = np.random.default_rng(0)
    rows = [None, []] + [list(rng.normal(size=8).astype(np.float32)) for _ in range(60)]
    labels = ["a", "b"] * 31
    pq.write_table(pa.table({"emb": pa.array(rows, pa.list_(pa.float32())), "label": labels}), tmp_path / "m.parquet")
    an = dq.analyze(dq.Dataset.from_parquet(tmp_path / "m.parquet", features="emb", label="label"), layout="pca",
                    progress=False, workdir=tmp_path / "w")
    assert an.samples["is_invalid"].tolist()[:3] == [True, True, False] and an.samples["is_invalid"].sum() == 2
    odd = [[1.0, 2.0]] + rows[2:]
    pq.write_table(pa.table({"emb": pa.array(odd, pa.list_(pa.float32()))}), tmp_path / "odd.parquet")
    with pytest.raises(ValueError, match=r"row 0 of .*odd\.parquet.* 2 values in column 'emb', other rows have 8"):
        np.asarray(dq.Dataset.from_parquet(tmp_path / "odd.parquet", features="emb").features)


def test_differing_schemas_name_both_files(tmp_path):
    write_shards(tmp_path / "d", n_files=2)
    pq.write_table(pa.table({"uid": ["z"], "embedding": [[1.0] * 8], "label": ["cat"]}), tmp_path / "d" / "part-9.parquet")
    with pytest.raises(ValueError, match=r"part-9\.parquet.* different schema than .*part-0\.parquet"):
        dq.Dataset.from_parquet(tmp_path / "d", features="emb")


def test_embeddings_of_another_width_in_one_file(tmp_path):
    write_shards(tmp_path / "d", n_files=1, d=8)
    write_shards(tmp_path / "e", n_files=1, d=4)
    with pytest.raises(ValueError, match="different schema"):
        dq.Dataset.from_parquet([tmp_path / "d" / "part-0.parquet", tmp_path / "e" / "part-0.parquet"],
                                features="emb")


def test_missing_or_misnamed_column_suggests_the_right_one(tmp_path):
    write_shards(tmp_path / "d", n_files=1)
    with pytest.raises(ValueError, match=r"features column 'embs' is not in .*Did you mean 'emb'\?"):
        dq.Dataset.from_parquet(tmp_path / "d", features="embs")
    with pytest.raises(ValueError, match=r"label column 'labels'"):
        dq.Dataset.from_parquet(tmp_path / "d", features="emb", label="labels")
    with pytest.raises(ValueError, match="holds string, not a list"):
        dq.Dataset.from_parquet(tmp_path / "d", features="label")


def test_paths_that_do_not_exist_or_hold_no_parquet(tmp_path):
    with pytest.raises(ValueError, match=r"nope.* does not exist"):
        dq.Dataset.from_parquet(tmp_path / "nope", features="emb")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .parquet"):
        dq.Dataset.from_parquet(tmp_path / "empty", features="emb")
    with pytest.raises(ValueError, match="no file matches"):
        dq.Dataset.from_parquet(str(tmp_path / "empty" / "*.parquet"), features="emb")
    (tmp_path / "notparquet.parquet").write_text("hello")
    with pytest.raises(ValueError, match=r"notparquet\.parquet.* not a readable Parquet file"):
        dq.Dataset.from_parquet(tmp_path / "notparquet.parquet", features="emb")
    with pytest.raises(ValueError, match="cannot open the filesystem"):
        dq.Dataset.from_parquet("nosuchscheme://bucket/x.parquet", features="emb")


def test_image_paths_relative_to_the_parquet_folder_with_one_corrupt_image(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    names = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
        names.append(f"imgs/{i}.png")
    (tmp_path / "imgs" / "5.png").write_bytes(b"not a png")
    pq.write_table(pa.table({"path": names, "label": ["a", "b"] * 6}), tmp_path / "index.parquet")
    ds = dq.Dataset.from_parquet(tmp_path / "index.parquet", image="path", label="label")
    assert ds.modality == "image" and ds.root == tmp_path
    emb = ds.embed(embedder=lambda x: x.float().mean(dim=(2, 3)), cache_dir=False, progress=False)
    assert emb.flags["is_unreadable"].tolist() == [i == 5 for i in range(12)]
    assert emb.valid.sum() == 11
    assert read_bytes(str(tmp_path / "imgs" / "0.png"))[:4] == b"\x89PNG"


def test_remote_image_uris_are_kept_whole(tmp_path):
    pq.write_table(pa.table({"path": ["s3://bucket/a.jpg", "s3://bucket/b.jpg"], "label": ["a", "b"]}),
                   tmp_path / "remote.parquet")
    ds = dq.Dataset.from_parquet(tmp_path / "remote.parquet", image="path", label="label")
    assert list(ds.frame["path"]) == ["s3://bucket/a.jpg", "s3://bucket/b.jpg"]
    assert list(ds.ids) == ["s3://bucket/a.jpg", "s3://bucket/b.jpg"]

"""What each table format holds: texts and metadata round-trip, images travel as PNG bytes in parquet,
and the temporary folder of an export whose process died is cleaned up."""

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist, load_rotten_tomatoes


@pytest.fixture(scope="module")
def text_analysis(tmp_path_factory):
    """Rotten Tomatoes snippets (plus hostile texts) with TF-IDF + SVD features standing in for an embedder."""
    df = load_rotten_tomatoes(300, seed=4)
    df.loc[0, "text"] = 'quotes " and , commas\nnewline \u00e9\u4e2d\U0001F600 tab\t"'
    features = TruncatedSVD(32, random_state=0).fit_transform(TfidfVectorizer().fit_transform(df["text"]))
    ds = dq.Dataset.from_dataframe(df, text="text", label="label")
    ds.features = features.astype(np.float32)
    return dq.analyze(ds, workdir=tmp_path_factory.mktemp("wd"), layout="pca", progress=False)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_texts_and_metadata_round_trip(text_analysis, tmp_path, fmt):
    out = text_analysis.export(tmp_path / fmt, format=fmt, drop=(), splits={"train": .7, "test": .3})
    read = {"csv": lambda p: pd.read_csv(p, keep_default_na=False),
            "jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
            "parquet": pd.read_parquet}[fmt]
    rows = pd.concat([read(out / f"{name}.{fmt}") for name in ("train", "test")]).set_index("id").sort_index()
    frame = text_analysis.dataset.frame
    assert rows.index.tolist() == frame.index.tolist()
    assert rows["text"].tolist() == frame["text"].tolist()
    assert rows["movie_name"].astype(str).tolist() == frame["movie_name"].astype(str).tolist()
    assert rows["label"].tolist() == frame["label"].tolist()


def test_parquet_holds_array_images_as_png(tmp_path):
    images, y, names = load_fashion_mnist("test", 80, seed=5)
    df = pd.DataFrame({"image": list(images), "label": np.array(names, dtype=object)[y]})
    ds = dq.Dataset.from_dataframe(df, image="image", label="label")
    ds.features = images.reshape(80, -1)[:, ::16].astype(np.float32)
    an = dq.analyze(ds, workdir=tmp_path / "wd", layout="pca", progress=False)
    out = an.export(tmp_path / "pq", drop=())
    rows = pd.read_parquet(out / "all.parquet")
    assert len(rows) == 80
    for sample_id, png in zip(rows["id"], rows["image"]):
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG"
            assert (np.asarray(image) == images[sample_id]).all()
    csv = an.export(tmp_path / "csv", format="csv", drop=())
    manifest = json.loads((csv / "manifest.json").read_text())
    assert "image" in manifest["omitted_columns"] and "parquet" in manifest["omitted_columns"]["image"]


def test_the_temporary_folder_of_a_killed_export_is_removed(text_analysis, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f".clean.partial-{int(dead.stdout)}-0123456789"
    (abandoned / "train").mkdir(parents=True)
    text_analysis.export(tmp_path / "clean", drop=())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean"]

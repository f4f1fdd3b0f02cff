"""Dataset constructors: image folders, DataFrames, Hugging Face datasets, tables; bad input."""

import io

import datasets          # the [hf] extra, which [dev] includes: from_hf is tested, never skipped
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dqwidgets as dq


def _decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "WEBP"
    return img.convert("RGB")


def _save(path, value=128, size=(20, 16), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode in ("L", "I;16") else (value,) * len(mode)).save(path, format=fmt)


def test_image_folder_with_split_folders_and_formats(tmp_path):
    _save(tmp_path / "train/cat/a.jpg")
    _save(tmp_path / "train/cat/b.png", mode="RGBA")
    _save(tmp_path / "train/dog/c.webp")
    _save(tmp_path / "train/dog/d.bmp", mode="L")
    _save(tmp_path / "test/cat/e.tiff")
    _save(tmp_path / "test/dog/f.PNG", mode="L")
    (tmp_path / "train/dog/notes.txt").write_text("not an image")
    _save(tmp_path / "train/dog/.hidden.png")

    ds = dq.Dataset.from_image_folder(tmp_path)

    assert ds.modality == "image" and ds.image == "path"
    assert sorted(ds.ids) == ["test/cat/e.tiff", "test/dog/f.PNG", "train/cat/a.jpg", "train/cat/b.png",
                              "train/dog/c.webp", "train/dog/d.bmp"]
    assert ds.labels["train/dog/c.webp"] == "dog" and ds.splits["test/cat/e.tiff"] == "test"
    assert ds.classes == ["cat", "dog"]
    for i in ds.ids:                          # every format and mode decodes into the right pixels
        thumb = _decoded(ds.thumbnail(i, size=8))
        assert thumb.size == (8, 6), i        # 20 x 16 shrunk to fit 8 x 8, aspect kept
        # grey 128; the RGBA one is half transparent, composited over white: (128 + 255) / 2
        want = 191.5 if i == "train/cat/b.png" else 128
        assert all(abs(v - want) <= 3 for v in thumb.getpixel((4, 3))), (i, thumb.getpixel((4, 3)))


def test_image_folder_without_splits_ids_survive_reordering(tmp_path):
    _save(tmp_path / "cat/1.png")
    _save(tmp_path / "dog/2.png")
    _save(tmp_path / "loose.png")
    ds = dq.Dataset.from_image_folder(tmp_path)
    assert ds.split is None
    assert ds.labels.to_dict() == {"cat/1.png": "cat", "dog/2.png": "dog", "loose.png": None}
    assert dq.Dataset.from_image_folder(tmp_path).fingerprint == ds.fingerprint


def test_image_folder_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        dq.Dataset.from_image_folder(tmp_path / "nope")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files.*empty"):
        dq.Dataset.from_image_folder(tmp_path / "empty")


def test_dataframe_images_as_paths_bytes_pil_and_arrays(tmp_path):
    _save(tmp_path / "img/a.png", 10)
    buf = io.BytesIO()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(buf, format="JPEG")
    frames = {
        "path": pd.DataFrame({"img": ["img/a.png"], "label": ["x"], "site": ["A"]}),
        "bytes": pd.DataFrame({"img": [buf.getvalue()], "label": ["x"], "site": ["A"]}),
        "pil": pd.DataFrame({"img": [Image.new("L", (5, 7), 3)], "label": ["x"], "site": ["A"]}),
        "array": pd.DataFrame({"img": [np.zeros((28, 28), np.uint8)], "label": ["x"], "site": ["A"]}),
    }
    want = {"path": ((4, 3), (10, 10, 10)), "bytes": ((4, 4), (1, 2, 3)), "pil": ((3, 4), (3, 3, 3)),
            "array": ((4, 4), (0, 0, 0))}        # size shrunk to fit 4 x 4, and the pixel value of each kind
    for kind, df in frames.items():
        ds = dq.Dataset.from_dataframe(df, image="img", label="label", root=tmp_path)
        assert ds.metadata_columns == ["site"], kind
        thumb = _decoded(ds.thumbnail(ds.ids[0], size=4))
        size, pixel = want[kind]
        assert thumb.size == size, kind
        assert all(abs(a - b) <= 4 for a, b in zip(thumb.getpixel((1, 1)), pixel)), (kind, thumb.getpixel((1, 1)))
    assert list(dq.Dataset.from_dataframe(frames["path"], image="img", root=tmp_path).ids) == ["img/a.png"]


def test_dataframe_text_and_ids():
    df = pd.DataFrame({"uid": ["r1", "r2", "r3"], "review": ["good", None, "bad"], "label": [1, 0, None],
                       "critic": ["a", "b", "a"]})
    ds = dq.Dataset.from_dataframe(df, text="review", label="label", id="uid")
    assert list(ds.ids) == ["r1", "r2", "r3"] and ds.modality == "text"
    assert ds.text_of("r1") == "good" and ds.text_of("r2") is None
    assert ds.metadata_columns == ["critic"]
    assert ds.classes == [0.0, 1.0]
    with pytest.raises(ValueError, match="no sample with id 'zz'"):
        ds.text_of("zz")


def test_dataframe_bad_input_names_the_column(tmp_path):
    df = pd.DataFrame({"text": ["a", "b"], "label": ["x", 3]})
    with pytest.raises(ValueError, match="label column 'lbl' not found"):
        dq.Dataset.from_dataframe(df, text="text", label="lbl")
    with pytest.raises(ValueError, match="column 'label' mixes types"):
        dq.Dataset.from_dataframe(df, text="text", label="label")
    with pytest.raises(ValueError, match="text column 'text' holds a int"):
        dq.Dataset.from_dataframe(pd.DataFrame({"text": ["a", 5]}), text="text")
    mixed = pd.DataFrame({"img": ["a.png", np.zeros((4, 4), np.uint8)]})
    with pytest.raises(ValueError, match="image column 'img' mixes array, path"):
        dq.Dataset.from_dataframe(mixed, image="img")
    with pytest.raises(ValueError, match="none of the first 1 paths in column 'img' exists"):
        dq.Dataset.from_dataframe(pd.DataFrame({"img": ["missing.png"]}), image="img", root=tmp_path)
    with pytest.raises(ValueError, match="column 'size' mixes types"):
        dq.Dataset.from_dataframe(pd.DataFrame({"size": [1, "big"], "y": [0, 1]}), label="y")
    with pytest.raises(ValueError, match="ids must be unique"):
        dq.Dataset.from_dataframe(pd.DataFrame({"t": ["a", "b"], "k": [1, 1]}), text="t", id="k")


def test_tabular_features_standardise_and_one_hot():
    df = pd.DataFrame({"age": [20.0, 30.0, np.nan, 50.0], "city": ["a", "b", "a", None],
                       "member": [True, False, True, True], "label": ["y", "n", "y", "n"]})
    ds = dq.Dataset.from_dataframe(df, label="label")
    assert ds.modality == "tabular" and ds.metadata_columns == ["age", "city", "member"]
    emb = ds.embed(progress=False)
    assert emb.embedder.startswith("tabular")
    X = emb.features
    # age z-score + missing indicator, city one-hot (a, b, <missing>), member z-score, the constant column
    assert X.shape == (4, 2 + 3 + 1 + 1) and (X[:, -1] == 1).all()
    age = X[:, 0]
    assert age[2] == 0 and X[2, 1] == 1 and X[:, 1].sum() == 1
    assert np.isclose(age[[0, 1, 3]].mean(), 0, atol=0.2) and age[3] > age[1] > age[0]
    assert X[:, 2:5].sum(axis=1).tolist() == [1, 1, 1, 1]
    assert emb.valid.all()


def test_precomputed_features_flag_non_finite_and_unlabeled():
    X = np.ones((4, 3), np.float32)
    X[1, 2] = np.nan
    ds = dq.Dataset.from_arrays(X, labels=["a", "b", None, "a"])
    emb = ds.embed()
    assert emb.valid.tolist() == [True, False, True, True]  # a missing label stays in the graph, unscored for labels
    assert emb.flags["is_unlabeled"].tolist() == [False, False, True, False]
    assert "NaN" in emb.flags.loc[1, "invalid_reason"] and emb.flags.loc[2, "invalid_reason"] == ""
    assert np.isfinite(emb.features).all()


def test_from_hf_images_and_class_labels(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (12, 10), (200, 10, 10)).save(buf, format="PNG")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"]),
                                  "source": datasets.Value("string")})
    part = datasets.Dataset.from_dict({"image": [{"bytes": buf.getvalue(), "path": None}] * 3,
                                       "label": [0, 1, 1], "source": ["x", "y", "x"]}, features=features)
    dd = datasets.DatasetDict({"train": part, "test": part})
    dd.save_to_disk(str(tmp_path / "hf"))

    ds = dq.Dataset.from_hf(str(tmp_path / "hf"))

    assert len(ds) == 6 and ds.modality == "image"
    assert ds.classes == ["cat", "dog"] and ds.labels.tolist() == ["cat", "dog", "dog"] * 2
    assert ds.splits.tolist() == ["train"] * 3 + ["test"] * 3
    assert ds.metadata_columns == ["source"]
    img = Image.open(io.BytesIO(ds.thumbnail(ds.ids[0], size=12)))
    assert img.size == (12, 10) and img.convert("RGB").getpixel((5, 5))[0] > 150


def test_from_hf_text(tmp_path):
    part = datasets.Dataset.from_dict({"sentence": ["a fine film", "dull"], "label": [1, 0]})
    ds = dq.Dataset.from_hf(part)
    assert ds.modality == "text" and ds.text == "sentence" and ds.text_of(ds.ids[1]) == "dull"
    with pytest.raises(ValueError, match="does not exist"):
        dq.Dataset.from_hf(str(tmp_path / "nothing"))

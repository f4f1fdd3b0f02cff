"""imagefolder export: files linked or written as PNG, hostile labels never escape, a failed export leaves nothing."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.export import export_analysis, folder_names, safe_name

HOSTILE = ["../../escaped", "/etc/passwd", "a\x00b", "CON", "con.txt", "..", ".", "x/y", "x_y", "X_Y",
           "back\\slash", " spaced. ", "ok", "Ok", "7", "\u00e9t\u00e9", "e\u0301te\u0301", "?" * 300]
N = 120


def image_dataset(tmp_path, images_as):
    """Fashion-MNIST images (as PNG files or uint8 arrays) with hostile labels; pooled pixels as features."""
    images, y, _ = load_fashion_mnist("test", N, seed=2)
    labels = [HOSTILE[i % len(HOSTILE)] for i in range(N)]
    if images_as == "files":
        src = tmp_path / "src"
        for sub in ("a", "b"):                                # the same file name in two folders
            (src / sub).mkdir(parents=True)
        paths = []
        for i, image in enumerate(images):
            path = f"{'ab'[i % 2]}/img{i // 2}.png"
            Image.fromarray(image).save(src / path)
            paths.append(path)
        df = pd.DataFrame({"image": paths, "label": labels}, dtype=object)
        ds = dq.Dataset.from_dataframe(df, image="image", label="label", root=src)
    else:
        df = pd.DataFrame({"image": list(images), "label": labels, "name": [f"n{i}" for i in range(N)]})
        ds = dq.Dataset.from_dataframe(df, image="image", label="label", id="name")
    ds.features = images.reshape(N, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(N, 49).astype(np.float32)
    return ds


def files_under(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("images_as", ["files", "arrays"])
def test_imagefolder_with_hostile_labels_stays_inside_and_counts_match(tmp_path, images_as):
    ds = image_dataset(tmp_path, images_as)
    an = dq.analyze(ds, workdir=tmp_path / "wd", layout="pca", progress=False)
    an.review.relabel(ds.ids[:3], "../../relabelled/evil", new_label=True)
    before = set(files_under(tmp_path)) - set(files_under(tmp_path / "wd"))
    out = an.export(tmp_path / "out", format="imagefolder", drop=(), splits={"train": .75, "test": .25})

    after = set(files_under(tmp_path)) - set(files_under(tmp_path / "wd"))
    new_files = after - before
    assert all(out.resolve() in p.resolve().parents for p in new_files)     # nothing written outside `out`
    manifest = json.loads((out / "manifest.json").read_text())
    images = [p for p in new_files if p.parent.parent.parent == out]
    assert len(images) == manifest["counts"]["exported"] == N
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert sorted(index["file"]) == sorted(p.relative_to(out).as_posix() for p in images)
    for split, per_label in manifest["counts"]["per_split_label"].items():
        assert sum(per_label.values()) == sum(1 for p in images if p.parent.parent.name == split)
    # every label has its own folder, and each folder holds only that label's samples
    assert (index.groupby("label")["file"].agg(lambda f: {x.split("/")[1] for x in f}).map(len) == 1).all()
    folders = index["file"].map(lambda f: f.split("/")[1])
    assert index.groupby(folders)["label"].nunique().max() == 1
    assert folders.nunique() == len(set(HOSTILE)) + 1         # every hostile label + the relabel target
    folder_of = {f["label"]: f["folder"] for f in manifest["label_folders"]}
    assert (index["label"].map(folder_of) == folders).all()   # the manifest maps folders back to labels
    if images_as == "files":
        # each exported file is a hard link of its own source (same folder names in a/ and b/ never mix up)
        source_of = {str(i): tmp_path / "src" / p for i, p in ds.frame["image"].items()}
        for row in index.itertuples():
            assert os.path.samefile(out / row.file, source_of[str(row.id)]), row.file
    else:
        with Image.open(images[0]) as image:
            assert image.format == "PNG" and image.size == (28, 28)


def test_safe_names_are_single_components():
    for value in HOSTILE + ["", "...", "NUL", "lpt9.log", "a/../b"]:
        name = safe_name(value)
        assert name and name not in (".", "..") and "/" not in name and "\\" not in name and "\x00" not in name
        assert name.split(".")[0].upper() not in ("CON", "NUL", "LPT9")
        assert len(name.encode()) <= 120
    names = folder_names(HOSTILE + [7, "plain"])
    assert len({n.casefold() for n in names.values()}) == len(HOSTILE) + 2     # distinct, even ignoring case
    assert names["plain"] == "plain"                                           # a harmless label is kept as is
    assert names["ok"].startswith("ok~") and names["Ok"].startswith("Ok~")     # a case-only clash is told apart
    assert names[7] != names["7"]


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    ds = image_dataset(tmp_path, "files")
    an = dq.analyze(ds, workdir=tmp_path / "wd", layout="pca", progress=False)
    victim = tmp_path / "src" / ds.frame["image"].iloc[50]
    os.remove(victim)
    with pytest.raises(ValueError, match="1 image file\\(s\\) do not exist.*an.review.drop"):
        an.export(tmp_path / "out", format="imagefolder", drop=())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "wd"]     # no half export, no temporary folder
    an.review.drop(ds.ids[50])
    an.review.relabel(ds.ids[:2], "twins", new_label=True)       # a/img0.png and b/img0.png, one folder
    out = an.export(tmp_path / "out", format="imagefolder", drop=())
    assert json.loads((out / "manifest.json").read_text())["counts"]["exported"] == N - 1
    assert sorted(p.name for p in (out / "all" / "twins").iterdir()) == ["img0-2.png", "img0.png"]


def test_unreadable_images_are_left_out_of_every_export_and_named_in_the_manifest(tmp_path):
    images, y, _ = load_fashion_mnist("test", n=60, seed=4)
    root = tmp_path / "data"
    for i, (im, lab) in enumerate(zip(images, y)):
        (root / f"c{lab % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / f"c{lab % 2}" / f"{i}.png")
    (root / "c0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "c1" / "loop.png").symlink_to("loop.png")
    ds = dq.Dataset.from_image_folder(root)
    an = dq.analyze(ds, embedder=lambda batch: batch.mean(dim=(2, 3)), workdir=tmp_path / "wd", layout="pca",
                    progress=False)
    bad = set(an.samples.index[an.samples["is_unreadable"]])
    assert bad == {"c0/broken.jpg", "c1/loop.png"}
    for fmt in ("imagefolder", "parquet"):
        out = an.export(tmp_path / fmt, format=fmt, drop=(), overwrite=True)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["exported"] == len(an.samples) - 2
        assert "is_unreadable" in json.dumps(manifest)
    assert not list((tmp_path / "imagefolder").rglob("broken.jpg"))

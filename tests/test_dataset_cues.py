"""A planted shortcut comes out at the top of ``an.spurious`` through the per-sample properties.

Real data with a cue a user would not have labelled: one Fashion-MNIST class photographed brighter,
one Rotten Tomatoes label always written longer. The embedders are cheap stand-ins (pooled pixels,
hashed words) because the search runs on the properties, not on the embeddings.
"""

import zlib

import numpy as np
import pandas as pd
import torch

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist, load_rotten_tomatoes


def pooled_pixels(x):
    return torch.nn.functional.avg_pool2d(x, 28).flatten(1)


pooled_pixels.version = "1"


def hashed_words(texts):
    out = np.zeros((len(texts), 64), np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, zlib.crc32(w.encode()) % 64] += 1
    return out


hashed_words.version = "1"


def test_brighter_class_is_the_top_spurious_association(tmp_path):
    images, labels, names = load_fashion_mnist("train", n=3000, seed=3)
    keep = np.concatenate([np.flatnonzero(labels == c)[:25] for c in (0, 2, 7, 9)])
    images, labels = images[keep].copy(), labels[keep]
    sneaker = labels == 7
    images[sneaker] = np.clip(images[sneaker].astype(int) + 110, 0, 255).astype(np.uint8)   # the cue
    df = pd.DataFrame({"image": list(images), "label": [names[c] for c in labels]})
    ds = dq.Dataset.from_dataframe(df, image="image", label="label")

    an = dq.analyze(ds, embedder=pooled_pixels, workdir=tmp_path, progress=False, layout="pca")

    top = an.spurious.iloc[0]
    assert (top["attribute"], top["label"]) == ("brightness", "Sneaker"), an.spurious.head()
    assert top["p_label_given_value"] > 0.9


def test_longer_label_is_the_top_spurious_association(tmp_path):
    df = load_rotten_tomatoes()
    n_chars = df["text"].str.len()
    long_rotten = df[(df["label"] == "rotten") & (n_chars > 180)].head(40)
    short_fresh = df[(df["label"] == "fresh") & (n_chars < 90)].head(40)
    sample = pd.concat([long_rotten, short_fresh]).sample(frac=1, random_state=0).reset_index(drop=True)
    ds = dq.Dataset.from_dataframe(sample[["text", "label"]], text="text", label="label")

    an = dq.analyze(ds, embedder=hashed_words, workdir=tmp_path, progress=False, layout="pca")

    top = an.spurious.iloc[0]
    assert top["attribute"] in ("n_chars", "n_words"), an.spurious.head()
    assert top["p_label_given_value"] > 0.9
    # the value is a length bin, and it points the right way: long texts -> rotten, short ones -> fresh
    texts = sample["text"]
    length = texts.str.len() if top["attribute"] == "n_chars" else texts.str.split().str.len()
    inside = _in_bin(length.to_numpy(float), str(top["value"]))
    assert inside.sum() > 5
    wanted = sample.loc[inside, "label"]
    assert (wanted == top["label"]).mean() > 0.9
    if top["label"] == "rotten":
        assert (texts[inside].str.len() > 180).mean() > 0.9
    else:
        assert top["label"] == "fresh" and (texts[inside].str.len() < 90).mean() > 0.9


def _in_bin(x: np.ndarray, name: str) -> np.ndarray:
    """Which values fall in a quantile bin named "<a", "a–b" or "≥b" (as encode_attribute names them)."""
    if name.startswith("<"):
        return x < float(name[1:])
    if name.startswith("≥"):
        return x >= float(name[1:])
    lo, hi = (float(v) for v in name.split("–"))
    return (x >= lo) & (x < hi)

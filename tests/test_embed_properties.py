"""Per-sample properties measure what they say, and carry a planted cue into the metadata."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

import dqwidgets as dq
from dqwidgets.embed.properties import image_properties, text_properties


def props(img):
    values = image_properties(img, img.size)
    return dict(zip(["brightness", "contrast", "sharpness", "width", "height", "aspect_ratio",
                     "colourfulness", "is_grayscale"], values.tolist()))


def test_image_properties_measure_what_they_say():
    assert props(Image.new("L", (10, 10), 51))["brightness"] == pytest.approx(0.2)
    half = np.zeros((20, 20), np.uint8)
    half[:, 10:] = 255
    assert props(Image.fromarray(half))["contrast"] == pytest.approx(0.5)

    checker = Image.fromarray((np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8))
    blurred = checker.filter(ImageFilter.GaussianBlur(2))
    assert props(checker)["sharpness"] > 10 * props(blurred)["sharpness"]

    wide = props(Image.new("RGB", (600, 300), (90, 90, 90)))
    assert (wide["width"], wide["height"], wide["aspect_ratio"]) == (600, 300, 2.0)
    assert wide["is_grayscale"] == 1.0 and wide["colourfulness"] == 0.0
    red = props(Image.new("RGB", (8, 8), (255, 0, 0)))
    assert red["is_grayscale"] == 0.0 and red["colourfulness"] > 80


def test_text_properties():
    n_chars, n_words, non_letter, upper = text_properties("Hi THERE, 42!").tolist()
    assert (n_chars, n_words) == (13, 3)
    assert non_letter == pytest.approx(4 / 11) and upper == pytest.approx(6 / 7)
    assert text_properties("").tolist() == [0, 0, 0, 0]


def _auc(values, positive):
    """Probability that a positive sample has a larger value than a negative one."""
    v, p = np.asarray(values, float), np.asarray(positive, bool)
    diff = v[p][:, None] - v[~p][None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_planted_brightness_cue_is_carried_by_the_properties():
    rng = np.random.default_rng(0)
    labels = np.array(["cat", "dog"] * 20)
    images = [np.clip(rng.normal(170 if y == "dog" else 80, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
              for y in labels]
    ds = dq.Dataset.from_dataframe(pd.DataFrame({"img": images, "label": labels}), image="img", label="label")
    emb = ds.embed(embedder=lambda x: x.flatten(1)[:, :8], cache_dir=False, progress=False)
    is_dog = labels == "dog"
    assert _auc(emb.properties["brightness"], is_dog) == 1.0
    strength = {c: abs(_auc(emb.properties[c].astype(float), is_dog) - 0.5) for c in emb.properties}
    assert max(strength, key=strength.get) == "brightness"
    assert strength["width"] == strength["aspect_ratio"] == strength["is_grayscale"] == 0


def test_planted_length_cue_is_carried_by_the_properties():
    rng = np.random.default_rng(1)
    words = ["good", "film", "plot", "actor", "scene", "music", "story", "ending"]
    labels = np.array(["fresh", "rotten"] * 15)
    texts = [" ".join(rng.choice(words, size=20 if y == "rotten" else 6)) for y in labels]
    ds = dq.Dataset.from_dataframe(pd.DataFrame({"t": texts, "y": labels}), text="t", label="y")
    emb = ds.embed(embedder=lambda b: np.array([[len(t)] for t in b], float), cache_dir=False, progress=False)
    assert _auc(emb.properties["n_words"], labels == "rotten") == 1.0
    assert _auc(emb.properties["n_chars"], labels == "rotten") == 1.0

"""End to end on real images: a corner patch planted on most "Bag" images (and a few others), with a
metadata column that says so, must rank first in ``an.spurious`` — above image properties in which
every Fashion-MNIST class naturally differs (brightness, ink area, contrast)."""

import numpy as np
import pandas as pd
import pytest

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist

BAG = "Bag"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    rng = np.random.default_rng(0)
    images, labels, names = load_fashion_mnist("train", 2400, seed=0)
    images = images.copy()
    bag = labels == names.index(BAG)
    patch = np.where(bag, rng.random(len(labels)) < 0.85, rng.random(len(labels)) < 0.03)
    images[patch, :5, :5] = 255  # the shortcut: a white corner square

    given = labels.copy()  # some label noise, as in real data
    noisy = rng.random(len(given)) < 0.05
    given[noisy] = rng.integers(0, 10, noisy.sum())

    pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
    centred = pixels - pixels.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    features = centred @ vt[:48].T

    metadata = pd.DataFrame({
        "has_patch": patch,
        "brightness": pixels.mean(1),            # differs by class: sandals dark, coats bright
        "ink_area": (pixels > 0.1).mean(1),      # trousers and footwear thin, pullovers wide
        "contrast": pixels.std(1),
        "camera": rng.choice(["A", "B", "C"], len(labels)),  # unrelated to anything
    })
    split = rng.choice(["train", "test"], len(labels), p=[0.8, 0.2])
    ds = dq.Dataset.from_arrays(features=features, labels=np.asarray(names, dtype=object)[given],
                                metadata=metadata, split=split)
    return dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path_factory.mktemp("work"))


def test_planted_shortcut_ranks_first(analysis):
    top = analysis.spurious.iloc[0]
    assert (top["attribute"], str(top["value"]), top["label"]) == ("has_patch", "True", BAG)
    natural = analysis.spurious[analysis.spurious["attribute"].isin(["brightness", "ink_area", "contrast"])]
    assert len(natural) > 0
    assert top["score"] > natural["score"].max()
    assert analysis.spurious.loc[analysis.spurious["attribute"] == "camera", "score"].max() < 0.05


def test_shortcut_row_reports_support_and_breaking_groups(analysis):
    top = analysis.spurious.iloc[0]
    assert 0 < top["score"] <= 1
    assert top["lift"] > 5 and top["support"] > 150
    assert top["n_breaking"] > 0
    assert 0 <= top["worst_group_accuracy"] <= 1 and 0 <= top["accuracy_following"] <= 1
    # the probe leans on the patch: it is much worse on the samples that break the pattern (README: 0.50 vs 0.97)
    assert top["worst_group_accuracy"] < top["accuracy_following"] - 0.2
    assert top["accuracy_following"] > 0.8


def test_slices_cover_every_sample_and_one_is_described_by_the_patch(analysis):
    s = analysis.samples
    assert (s["slice_id"] >= 0).all()
    table = analysis.slices
    assert table["size"].sum() == len(s)
    assert set(table["slice_id"]) == set(s["slice_id"])
    assert ((table["error_rate"] >= 0) & (table["error_rate"] <= 1)).all()
    bag_slices = table[table["dominant_label"] == BAG]
    assert bag_slices["description"].str.contains("has_patch=True").any()


def test_random_split_and_shuffled_rows_show_no_drift(analysis):
    summary = analysis.summary()
    assert summary.loc["split_drift", "p_value"] > 0.01
    assert summary.loc["non_iid_order", "p_value"] > 0.01

import numpy as np
import pytest

from dqwidgets.compute.spurious import encode_attribute, spurious_associations

CLASSES = [f"c{i}" for i in range(6)]


def test_categories_keep_their_values_and_missing_is_minus_one():
    codes, names = encode_attribute(np.array(["b", "a", None, "b", float("nan")], dtype=object))
    assert names == ["a", "b"]
    assert codes.tolist() == [1, 0, -1, 1, -1]
    codes, names = encode_attribute(np.array([True, False, True]))
    assert names == ["False", "True"] and codes.tolist() == [1, 0, 1]
    codes, names = encode_attribute(np.array([3, 1, 3, 2]))
    assert names == ["1", "2", "3"] and codes.tolist() == [2, 0, 2, 1]


def test_numbers_with_many_values_become_readable_quantile_bins():
    x = np.random.default_rng(0).random(1000)
    x[:10] = np.nan
    codes, names = encode_attribute(x)
    assert len(names) == 5
    assert names[0].startswith("<") and names[-1].startswith("≥") and "–" in names[1]
    assert (codes[:10] == -1).all()
    counts = np.bincount(codes[codes >= 0])
    assert counts.min() > 150  # quantile bins hold about a fifth each
    order = np.argsort(x[10:])
    assert np.all(np.diff(codes[10:][order]) >= 0), "bins follow the values"


def test_many_text_levels_keep_the_frequent_ones():
    values = np.array(["common"] * 50 + [f"id{i}" for i in range(40)], dtype=object)
    codes, names = encode_attribute(values)
    assert len(names) == 20 and names[-1] == "(other)" and "common" in names
    assert (codes[:50] == names.index("common")).all()


def test_encode_rejects_a_table():
    with pytest.raises(ValueError, match="1-D"):
        encode_attribute(np.zeros((3, 2)))
    assert encode_attribute(np.array([None, None], dtype=object))[1] == []


def test_counts_and_worst_group_on_a_hand_made_table():
    # value "x" on 3 of the 4 samples of class 0 and on 1 of class 1
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, -1])
    attr = np.array(["x", "x", "x", "y", "x", "y", "y", "y", "x"], dtype=object)
    correct = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    out = spurious_associations({"a": encode_attribute(attr)}, labels, ["cat", "dog"], correct)
    rows = {(v, l): i for i, (v, l) in enumerate(zip(out["value"], out["label"]))}
    i = rows[("x", "cat")]
    assert out["support"][i] == 3 and out["n_value"][i] == 4  # the unlabelled sample is left out
    assert out["p_label_given_value"][i] == pytest.approx(0.75)
    assert out["p_label"][i] == pytest.approx(0.5)
    assert out["lift"][i] == pytest.approx(1.5)
    assert out["n_breaking"][i] == 2
    assert out["accuracy_following"][i] == pytest.approx(1.0)
    assert out["worst_group_accuracy"][i] == pytest.approx(0.0)  # both breaking samples are missed
    assert out["attribute"][0] == "a" and out["score"][0] == out["score"].max()
    assert np.all(np.diff(out["score"]) <= 0)
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all()


def synthetic(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    # a shortcut: on 85% of class 3 and 3% of the others
    patch = np.where(labels == 3, rng.random(n) < 0.85, rng.random(n) < 0.03)
    # a property in which every class differs (brightness-like), strongly but not uniquely
    brightness = rng.normal(np.linspace(0, 3, len(CLASSES))[labels], 1.0)
    unrelated = rng.random(n) < 0.3
    correct = rng.random(n) < 0.85
    correct[(labels == 3) & ~patch] = rng.random(((labels == 3) & ~patch).sum()) < 0.4
    attributes = {"has_patch": encode_attribute(patch), "brightness": encode_attribute(brightness),
                  "unrelated": encode_attribute(unrelated),
                  "rare": encode_attribute(np.where(np.arange(n) < 4, "odd", "plain").astype(object))}
    labels_rare = labels.copy()
    labels_rare[:4] = 5  # a rare value entirely inside one class
    return attributes, labels_rare, correct


def test_planted_shortcut_beats_a_property_every_class_differs_in():
    attributes, labels, correct = synthetic()
    out = spurious_associations(attributes, labels, CLASSES, correct)
    assert (out["attribute"][0], out["value"][0], out["label"][0]) == ("has_patch", "True", "c3")
    best_brightness = out["score"][out["attribute"] == "brightness"].max()
    assert out["score"][0] > best_brightness + 0.15
    assert out["worst_group_accuracy"][0] < out["accuracy_following"][0] - 0.2
    # lift alone would put the rare value first (lift 6 on 4 samples): the score keeps it down
    rare = (out["attribute"] == "rare") & (out["value"] == "odd")
    assert out["lift"][rare][0] > out["lift"][0]
    assert out["score"][rare][0] < 0.2
    assert out["score"][out["attribute"] == "unrelated"].max() < 0.05


def test_mismatched_inputs_are_clear_errors():
    attributes, labels, correct = synthetic(n=100)
    with pytest.raises(ValueError, match="one entry per sample"):
        spurious_associations(attributes, labels, CLASSES, correct[:-1])
    with pytest.raises(ValueError, match="has_patch"):
        spurious_associations({"has_patch": (np.zeros(3, np.int64), ["a"])}, labels, CLASSES, correct)
    with pytest.raises(ValueError, match="class names"):
        spurious_associations(attributes, labels, CLASSES[:2], correct)


def test_no_attribute_gives_an_empty_table():
    out = spurious_associations({}, np.array([0, 1]), ["a", "b"], np.array([True, False]))
    assert all(len(col) == 0 for col in out.values()) and "worst_group_accuracy" in out

"""an.explain(id): the evidence behind a sample's flags, read from the analysis' one kNN graph."""

import json

import numpy as np
import pytest

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist

N = 240
HOSTILE = "<img src=x onerror=alert(1)>"


def _pooled(n, seed=1):
    images, y, classes = load_fashion_mnist("train", n=n, seed=seed)
    feats = images.reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, -1).astype(np.float32)
    return feats, np.array([classes[i] for i in y], dtype=object)


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    feats, labels = _pooled(N)
    feats[7] = np.nan  # one sample the analysis leaves out: the graph's rows shift after it
    rng = np.random.default_rng(0)
    flip = rng.choice(np.arange(10, N), size=24, replace=False)
    labels[flip] = [next(c for c in np.unique(labels) if c != labels[i]) for i in flip]
    labels[labels == labels[0]] = HOSTILE  # a class name that is markup
    ids = [f"s{i}" for i in range(N)]
    ds = dq.Dataset.from_arrays(feats, labels=labels, ids=ids)
    return dq.analyze(ds, workdir=tmp_path_factory.mktemp("work"), layout="pca", progress=False)


def test_neighbours_are_the_graphs_row_with_ids_labels_and_distances(an):
    valid_pos = np.flatnonzero(an.valid)
    assert not an.valid[7] and len(valid_pos) == N - 1
    for row in (0, 6, 8, 100, N - 1):  # before and after the left-out sample
        ev = an.explain(an.samples.index[row])
        at = int(np.flatnonzero(valid_pos == row)[0])
        expected_rows = valid_pos[an.graph.indices[at]]
        assert [n.id for n in ev.neighbours] == an.samples.index[expected_rows].tolist()
        assert np.allclose([n.distance for n in ev.neighbours], an.graph.distances[at])
        assert [n.label for n in ev.neighbours] == an.samples["label"].iloc[expected_rows].tolist()
        flags = an.samples[["is_label_issue", "is_ood", "is_duplicate", "is_invalid"]].iloc[expected_rows]
        assert [n.flagged for n in ev.neighbours] == flags.any(axis=1).tolist()
        assert ev.metric == an.graph.metric and ev.row == row and ev.valid


def test_scores_flags_probabilities_and_slice_are_the_analysis_own(an):
    s = an.samples
    row = int(np.flatnonzero((s["is_label_issue"] & ~s["is_ood"] & s["suggested_label"].notna()).to_numpy())[0])
    sid = an.samples.index[row]
    ev = an.explain(sid)
    s = an.samples.iloc[row]
    assert "label_issue" in ev.flags and ev.suggested_action == "relabel"
    assert ev.suggested_label == s["suggested_label"] and ev.suggested_label != ev.label
    for column in ("label_issue_score", "ood_score", "duplicate_score", "ood_knn_score"):
        assert ev.scores[column] == pytest.approx(float(s[column]))
    assert ev.thresholds["label_issue_score"] == an.thresholds["label_issue_score"]
    p = an.calibrated_probs[row]  # the label model's calibrated posterior, whose given-class share is the score
    assert [c for c, _ in ev.top_classes] == [an.classes[k] for k in np.argsort(-p)[:3]]
    assert ev.top_classes[0][1] == pytest.approx(float(p.max())) and ev.probability_source.startswith("calibrated")
    assert p[an.classes.index(ev.label)] == pytest.approx(1 - ev.scores["label_issue_score"], abs=1e-5)
    assert ev.slice_id == int(s["slice_id"])
    assert ev.slice["size"] == int(an.slices.loc[ev.slice_id, "size"])
    assert ev.slice["description"] == an.slices.loc[ev.slice_id, "description"]
    d = json.loads(json.dumps(ev.to_dict()))
    assert d["id"] == sid and len(d["neighbours"]) == an.graph.k and d["slice_id"] == ev.slice_id
    assert f"slice {ev.slice_id}" in repr(ev) and "neighbours" in repr(ev)


def test_without_calibrated_probabilities_the_top_classes_are_pred_probs_and_say_so(an, monkeypatch):
    monkeypatch.setattr(an, "calibrated_probs", None)
    ev = an.explain("s20")
    p = an.pred_probs[20]
    assert [c for c, _ in ev.top_classes] == [an.classes[k] for k in np.argsort(-p)[:3]]
    assert ev.probability_source.startswith("uncalibrated") and "uncalibrated" in repr(ev)


def test_an_unknown_id_is_a_clear_error(an):
    with pytest.raises(ValueError, match="'nope' is not a sample id"):
        an.explain("nope")
    with pytest.raises(ValueError, match="an.samples.index"):
        an.explain(3)  # the ids are strings here


def test_a_left_out_sample_says_why_and_has_no_neighbours(an):
    ev = an.explain("s7")
    assert not ev.valid and ev.reason and ev.neighbours == [] and ev.top_classes == []
    assert "left out" in repr(ev) and ev.to_dict()["neighbours"] == []


def test_html_escapes_every_user_string(an):
    row = int(np.flatnonzero(an.samples["label"].to_numpy() == HOSTILE)[0])
    ev = an.explain(an.samples.index[row])
    page = ev._repr_html_()
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page and page.startswith("<table")


def test_unlabelled_data_explains_without_classes(tmp_path):
    feats, _ = _pooled(120)
    an = dq.analyze(dq.Dataset.from_arrays(feats), workdir=tmp_path, layout="pca", progress=False)
    ev = an.explain(an.samples.index[3])
    assert ev.label is None and ev.top_classes == [] and ev.suggested_label is None
    assert len(ev.neighbours) == an.graph.k and all(n.label is None for n in ev.neighbours)
    assert "no class fits" in repr(ev)


def _letters(texts):
    """A small real text embedding: letter counts (a-z) per text."""
    return np.array([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], float)


def test_texts_left_out_say_why_and_the_panel_shows_the_neighbours_snippets(tmp_path, monkeypatch):
    import comm as comm_module
    import pandas as pd
    from test_widgets_explorer import RecordingComm, Wire

    monkeypatch.setattr(comm_module, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    rng = np.random.default_rng(0)
    words = {"movie": ["film", "actor", "scene", "plot", "cast"], "food": ["soup", "bread", "waiter", "salty", "menu"]}
    rows = [(" ".join(rng.choice(words[c], size=6)) + f" {HOSTILE}" * (i == 3), c)
            for i, c in enumerate(["movie", "food"] * 40)]
    rows[10] = ("   ", "movie")  # an empty text: left out of the analysis
    df = pd.DataFrame(rows, columns=["text", "label"])
    ds = dq.Dataset.from_dataframe(df, text="text", label="label")
    an = dq.analyze(ds, embedder=_letters, workdir=tmp_path, layout="pca", progress=False)
    empty = an.explain(an.samples.index[10])
    assert not empty.valid and "empty" in empty.reason and empty.neighbours == []
    from dqwidgets.widgets.explorer import Explorer

    body = Wire(Explorer(an)).ask("explain", row=3)[0]
    ev = an.explain(an.samples.index[3])
    assert body["modality"] == "text" and body["snippet"] == df["text"][3]  # markup stays a plain string
    assert body["neighbour_snippets"] == [df["text"][r] for r in body["neighbour_rows"]]
    assert [n["id"] for n in body["neighbours"]] == [str(n.id) for n in ev.neighbours]
    assert 10 not in body["neighbour_rows"]  # the left-out text is in no one's neighbourhood

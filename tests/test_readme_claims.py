"""What the README promises, each through the public API (``dq.analyze``, ``an.samples``, ``an.summary()``,
``an.graph``, ``an.review``, ``dq.Explorer``), on small planted data."""

import sqlite3
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import dqwidgets as dq
from dqwidgets.compute import knn as knn_module
from dqwidgets.compute.knn import knn_graph
from dqwidgets.compute.ood import max_softmax_uncertainty
from dqwidgets.embed import resolve_embedder

CLASSES = np.array(["a", "b", "c"])


def blobs(n=400, d=8, seed=0, spread=4.0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, n)
    X = (rng.normal(0, spread, (3, d))[codes] + rng.normal(size=(n, d))).astype(np.float32)
    return X, CLASSES[codes], codes


def run(ds, workdir, **kw):
    return dq.analyze(ds, layout="pca", progress=False, workdir=workdir, **kw)


def mean_colour(x):
    """A cheap image embedder: the mean of each channel (versioned, so it is cached)."""
    mean_colour.calls += len(x)
    return x.float().mean(dim=(2, 3))


mean_colour.version = "1"
mean_colour.calls = 0


# --------------------------------------------------------------------------- your pred_probs and logits
def test_user_pred_probs_are_used_instead_of_the_probe(tmp_path):
    # features that carry no class information: a probe fitted on them cannot know which labels are wrong,
    # the user's model (pred_probs) does
    _, labels, codes = blobs()
    X = np.random.default_rng(5).normal(size=(400, 8)).astype(np.float32)
    P = np.full((400, 3), 0.02)
    P[np.arange(400), codes] = 0.96
    P[np.arange(20), (codes[:20] + 1) % 3] = 0.96          # "your model" disagrees with these 20 labels
    P[np.arange(20), codes[:20]] = 0.02
    with pytest.warns(UserWarning, match="do not predict the labels"):
        probe = run(dq.Dataset.from_arrays(X, labels), tmp_path / "probe")
    given = run(dq.Dataset.from_arrays(X, labels, pred_probs=P), tmp_path / "given")
    as_argument = run(dq.Dataset.from_arrays(X, labels), tmp_path / "arg", pred_probs=P)

    np.testing.assert_allclose(given.pred_probs, P, atol=1e-6)            # used as given, not re-fitted
    np.testing.assert_allclose(as_argument.pred_probs, P, atol=1e-6)
    assert not np.allclose(probe.pred_probs, P, atol=0.05)                 # the probe would have said otherwise
    s, p = given.samples, probe.samples
    assert s["label_issue_score"].iloc[:20].mean() > s["label_issue_score"].iloc[20:].mean() + 0.3
    assert p["label_issue_score"].isna().all() and not p["is_label_issue"].any()  # the probe can tell nothing: no score
    pd.testing.assert_series_equal(s["label_issue_score"], as_argument.samples["label_issue_score"])


def test_max_softmax_uncertainty_is_one_minus_the_top_probability():
    P = np.array([[0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(max_softmax_uncertainty(P), [0.1, 0.66, 0.5])


def test_uncertain_pred_probs_raise_the_max_softmax_and_ood_scores(tmp_path):
    X, labels, codes = blobs()
    P = np.full((400, 3), 0.02)
    P[np.arange(400), codes] = 0.96
    unsure = np.arange(30, 50)
    P[unsure] = 1 / 3                                        # the model has no idea about these
    s = run(dq.Dataset.from_arrays(X, labels, pred_probs=P), tmp_path).samples
    msp = s["ood_msp_score"]
    sure = np.setdiff1d(np.arange(400), unsure)
    assert msp.between(0, 1).all() and msp.iloc[unsure].min() > msp.iloc[sure].max()
    assert s["ood_score"].iloc[unsure].mean() > s["ood_score"].iloc[sure].mean() + 0.1


# --------------------------------------------------------------------------- one graph, scores in [0, 1]
@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    X, labels, codes = blobs(n=500)
    logits = np.eye(3)[codes] * 5.0
    logits[:15] = 0.0
    X[300] = X[301] + 1e-4                                   # a near copy
    return run(dq.Dataset.from_arrays(X, labels), tmp_path_factory.mktemp("work"), logits=logits)


def test_every_score_column_is_in_zero_one(analysis):
    s = analysis.samples
    scores = [c for c in s.columns if c.endswith("_score")]
    assert {"label_issue_score", "ood_score", "duplicate_score", "ood_knn_score", "ood_mahalanobis_score",
            "ood_energy_score"} <= set(scores)
    for c in scores:
        values = s[c].dropna()
        assert len(values) == len(s), c
        assert values.between(0, 1).all(), (c, values.min(), values.max())


def test_graph_method_is_chosen_by_size_and_device(monkeypatch):
    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    assert knn_graph(X, 5, device="cpu").method == "exact"              # small N on a CPU: exact
    monkeypatch.setattr(knn_module, "EXACT_CPU_MAX_N", 200)             # pretend 300 is large
    assert knn_graph(X, 5, device="cpu").method == "ivf"                # large N on a CPU: approximate (IVF)
    if torch.cuda.is_available():
        assert knn_graph(X, 5, device="cuda").method == "exact"         # any N on a GPU: exact


def test_analyze_of_small_data_uses_the_exact_graph(analysis):
    assert analysis.graph.method == "exact" and analysis.graph.indices.shape == (500, 15)


def test_the_same_graph_feeds_the_umap_layout(tmp_path, monkeypatch):
    import umap.umap_ as umap_

    seen = {}
    fuzzy = umap_.fuzzy_simplicial_set

    def spy(X, n_neighbors, random_state, metric, *args, knn_indices=None, knn_dists=None, **kw):
        seen["indices"] = None if knn_indices is None else np.array(knn_indices)
        return fuzzy(X, n_neighbors, random_state, metric, *args, knn_indices=knn_indices, knn_dists=knn_dists, **kw)

    def no_second_search(*a, **kw):
        raise AssertionError("UMAP ran its own neighbour search")

    monkeypatch.setattr(umap_, "fuzzy_simplicial_set", spy)
    monkeypatch.setattr(umap_, "nearest_neighbors", no_second_search)
    X, labels, _ = blobs(n=300)
    an = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="umap", progress=False, workdir=tmp_path)
    assert an.layout_status == "final"
    got = seen["indices"]
    assert got is not None, "UMAP was not handed a kNN graph"
    np.testing.assert_array_equal(got[:, 0], np.arange(300))           # self first, then the analysis' graph
    np.testing.assert_array_equal(got[:, 1:], an.graph.indices[:, :got.shape[1] - 1])


# --------------------------------------------------------------------------- summary()
def test_summary_gives_count_share_and_threshold(analysis):
    saved = dict(analysis.thresholds)
    try:
        for issue, flag, score in (("label_issue", "is_label_issue", "label_issue_score"),
                                   ("ood", "is_ood", "ood_score"), ("duplicate", "is_duplicate", "duplicate_score")):
            row = analysis.summary().loc[issue]
            assert row["count"] == analysis.samples[flag].sum()
            assert row["share"] == pytest.approx(row["count"] / len(analysis.samples))
            assert row["threshold"] == pytest.approx(analysis.thresholds[score])
        lower = float(np.sort(analysis.samples["ood_score"])[-250])     # a score itself: flagged, as ">=" says
        analysis.set_threshold("ood_score", lower)
        row = analysis.summary().loc["ood"]
        assert row["threshold"] == pytest.approx(lower)
        assert row["count"] == (analysis.samples["ood_score"] >= lower).sum() >= 250
        assert row["share"] == pytest.approx(row["count"] / 500)
    finally:
        for column, value in saved.items():
            analysis.set_threshold(column, value)
    assert analysis.thresholds == saved


def test_unreadable_and_empty_samples_are_counted_in_summary(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(40)]
    images[3], images[9], images[17] = np.full((8, 8), np.nan), None, np.zeros((2, 3, 5, 7))
    df = pd.DataFrame({"img": images, "label": ["x", "y"] * 20})
    an = run(dq.Dataset.from_dataframe(df, image="img", label="label"), tmp_path / "img", embedder=mean_colour)
    row = an.summary().loc["unreadable"]
    assert row["count"] == 3 and row["share"] == pytest.approx(3 / 40)
    assert an.samples["is_unreadable"].iloc[[3, 9, 17]].all()

    words = np.array("the a cat dog sat ran on under mat log big small red blue".split())
    texts = [" ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(40)]
    texts[5], texts[6] = "", "   "
    df = pd.DataFrame({"t": texts, "y": ["x", "y"] * 20})

    def word_counts(ts):
        return np.array([[t.split().count(w) for w in words] for t in ts], np.float32)
    an = run(dq.Dataset.from_dataframe(df, text="t", label="y"), tmp_path / "txt", embedder=word_counts)
    assert an.summary().loc["empty", "count"] == 2 and an.samples["is_empty"].iloc[[5, 6]].all()


def test_drift_rows_when_splits_differ_and_rows_are_ordered(tmp_path):
    X, labels, codes = blobs(n=400)
    split = np.where(np.arange(400) < 300, "train", "test")
    shifted = X.copy()
    shifted[300:] += 3.0                                       # the test split comes from somewhere else
    summary = run(dq.Dataset.from_arrays(shifted, labels, split=split), tmp_path / "split").summary()
    assert summary.loc["split_drift", "p_value"] < 0.01
    order = np.argsort(codes, kind="stable")                   # rows sorted by class: not i.i.d.
    summary = run(dq.Dataset.from_arrays(X[order], labels[order]), tmp_path / "order").summary()
    assert summary.loc["non_iid_order", "p_value"] < 0.01
    assert "split_drift" not in summary.index                  # no splits, no split test


# --------------------------------------------------------------------------- exact duplicates, end to end
def test_byte_identical_files_are_one_duplicate_group_across_splits(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for i in range(40):
        split, label = ("train" if i < 30 else "test"), ("cat" if i % 2 else "dog")
        (root / split / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / split / label / f"{i}.png")
    (root / "test" / "dog" / "copy.png").write_bytes((root / "train" / "cat" / "1.png").read_bytes())

    def noisy(x):              # features unrelated to the pixels: only the bytes' hash can find the copy
        return torch.randn(len(x), 16)

    an = run(dq.Dataset.from_image_folder(root), tmp_path / "work", embedder=noisy)
    s = an.samples
    pair = ["train/cat/1.png", "test/dog/copy.png"]
    group = s.loc[pair[0], "duplicate_group"]
    assert group >= 0 and s.loc[pair[1], "duplicate_group"] == group
    assert (s["duplicate_group"] == group).sum() == 2
    assert s.loc[pair, "is_duplicate"].sum() == 1 and s["is_duplicate"].sum() == 1
    assert an.summary().loc["cross_split_duplicate", "count"] == 2


# --------------------------------------------------------------------------- the default workdir: cache, journal
def test_second_analyze_takes_embeddings_from_the_default_cache_and_reopens_the_journal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"img": [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(40)],
                       "label": ["x", "y"] * 20})
    ds = dq.Dataset.from_dataframe(df, image="img", label="label")
    mean_colour.calls = 0
    first = dq.analyze(ds, embedder=mean_colour, layout="pca", progress=False)     # no workdir
    assert mean_colour.calls == 40
    assert list((tmp_path / ".dqwidgets" / "cache").rglob("shard-*.bin")), "no cache in ./.dqwidgets/cache"
    first.review.drop([5])
    journal = tmp_path / ".dqwidgets" / ds.fingerprint / "journal.sqlite"
    assert journal.exists()
    assert sqlite3.connect(journal).execute("SELECT action, ids FROM actions").fetchall() == [("drop", "[5]")]

    again = dq.analyze(ds, embedder=mean_colour, layout="pca", progress=False)
    assert mean_colour.calls == 40                              # nothing embedded the second time
    np.testing.assert_array_equal(again.features, first.features)
    assert again.review.dropped().tolist() == [5] and again.samples.loc[5, "review_status"] == "dropped"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dqwidgets"]     # nothing else written


# --------------------------------------------------------------------------- embedders by name
@pytest.mark.parametrize("name, package", [("timm:convnext_tiny", "timm"),
                                           ("open_clip:ViT-B-32/laion2b_s34b_b79k", "open_clip_torch")])
def test_named_embedder_without_its_library_says_what_to_install(name, package, monkeypatch):
    monkeypatch.setitem(sys.modules, name.split(":")[0], None)        # as on a machine without it
    with pytest.raises(ValueError, match=f"needs the package {package}: pip install {package}"):
        resolve_embedder(name, "image")


def _tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten())


def _images(n=6):
    return pd.DataFrame({"img": [np.full((20, 20, 3), (40 * i, 255 - 40 * i, 90), np.uint8) for i in range(n)]})


def test_timm_and_open_clip_by_name_embed_through_their_apis(monkeypatch):
    """The loaders call each library's documented entry points; here small stand-in modules serve those
    calls with a locally built CNN (the real libraries and their hub weights are not on this machine)."""
    from importlib import metadata

    made = {}

    def create_model(model_id, pretrained, num_classes):
        made["timm"] = (model_id, pretrained, num_classes)
        return _tiny_cnn()

    timm = types.ModuleType("timm")
    timm.create_model = create_model
    timm.data = types.SimpleNamespace(resolve_data_config=lambda args, model: {
        "input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})

    class Clip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _tiny_cnn()
            self.visual = types.SimpleNamespace(image_size=(48, 48), image_mean=None, image_std=None)

        def encode_image(self, x):
            made["clip_side"] = x.shape[-1]
            return self.net(x)

    def create_model_and_transforms(arch, pretrained):
        made["clip"] = (arch, pretrained)
        return Clip(), None, None

    open_clip = types.ModuleType("open_clip")
    open_clip.create_model_and_transforms = create_model_and_transforms
    monkeypatch.setitem(sys.modules, "timm", timm)
    monkeypatch.setitem(sys.modules, "open_clip", open_clip)
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda dist: "0.0-stand-in" if dist in ("timm", "open_clip_torch")
                        else real_version(dist))

    ds = dq.Dataset.from_dataframe(_images(), image="img")
    for name in ("timm:convnext_tiny", "open_clip:ViT-B-32/laion2b_s34b_b79k"):
        emb = ds.embed(embedder=name, device="cpu", cache_dir=False, progress=False)
        assert emb.embedder.startswith(f"{name}@") and emb.features.shape == (6, 6), name
        assert np.isfinite(emb.features).all() and emb.valid.all()
        assert not np.allclose(emb.features[0], emb.features[-1])      # different images, different features
    assert made["timm"] == ("convnext_tiny", True, 0)                  # pretrained weights, no classifier head
    assert made["clip"] == ("ViT-B-32", "laion2b_s34b_b79k") and made["clip_side"] == 48


# --------------------------------------------------------------------------- explorer.charts()
def test_explorer_charts_are_plotly_figure_widgets_of_the_scores(analysis):
    import plotly.graph_objects as go

    figures = dq.Explorer(analysis).charts()
    assert figures and all(isinstance(f, go.FigureWidget) for f in figures)
    by_title = {f.layout.title.text.split(":")[0]: f for f in figures}
    for column, threshold in analysis.thresholds.items():
        fig = by_title[column]
        bars = fig.data[0]
        assert sum(bars.y) == analysis.samples[column].notna().sum()      # every scored sample is in a bin
        assert fig.layout.shapes[0].x0 == pytest.approx(threshold)        # the threshold line
        flag = {"label_issue_score": "is_label_issue", "ood_score": "is_ood", "duplicate_score": "is_duplicate"}
        if column in flag:
            assert f"{analysis.samples[flag[column]].sum():,} flagged" in fig.layout.title.text
    classes = next(f for f in figures if f.layout.title.text.startswith("samples per class"))
    counts = dict(zip(classes.data[0].x, classes.data[0].y))
    assert counts == analysis.samples["label"].value_counts().to_dict()

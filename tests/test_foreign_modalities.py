"""Foreign clusters in every modality (#11 item 4), on small planted truth: a group of samples from
another source (>= 1% of the data, each other's neighbours, random labels) that sits *among* the data
(no per-sample distance puts it out) is caught by its labels' lack of information, flagged at the
default threshold, its precision estimated, and suggested for dropping; an uninformative region of
two confused classes is not."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import dqwidgets as dq
from dqwidgets.compute.foreign import find_foreign_clusters
from dqwidgets.compute.knn import knn_graph


def _check_flags(an, foreign, min_recall=0.8, min_precision=0.7):
    s = an.samples
    flags = s["is_ood"].to_numpy()
    assert roc_auc_score(foreign, s["ood_score"]) >= 0.95
    assert flags[foreign].mean() >= min_recall
    precision = foreign[flags].mean()
    assert precision >= min_precision
    estimated = float(an.summary().loc["ood", "estimated_precision"])
    assert abs(estimated - precision) <= 0.10
    assert (s["suggested_action"][foreign & flags] == "drop").all()
    assert s["suggested_label"][foreign & flags].isna().all()


def _image_like(seed=0, n=2400, classes=8, dims=48, n_foreign=60):
    """Class blobs; the foreign group is two tight groups placed *inside* the spread of two classes
    (beside their means, inside their spread: sandals among sneakers), with labels drawn at random."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (classes, dims))
    means *= 4.0 / np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, classes, n)
    X = means[y] + rng.normal(0, 1, (n, dims))
    centres = [means[0] + rng.normal(0, 1, dims) * 1.2, means[3] + rng.normal(0, 1, dims) * 1.2]
    F = np.vstack([c + rng.normal(0, 0.45, (n_foreign // 2, dims)) for c in centres])
    names = np.array([f"c{i}" for i in range(classes)], dtype=object)
    labels = np.concatenate([names[y], names[rng.integers(0, classes, n_foreign)]])
    foreign = np.r_[np.zeros(n, bool), np.ones(n_foreign, bool)]
    return np.vstack([X, F]).astype(np.float32), labels, foreign


def test_foreign_images_like_group_among_the_data_is_found_by_its_labels(tmp_path):
    X, labels, foreign = _image_like()
    an = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="pca", progress=False, workdir=tmp_path)
    # no per-sample distance separates them: the finding comes from the regions' labels
    assert roc_auc_score(foreign, an.samples["ood_knn_score"]) < 0.9
    _check_flags(an, foreign)


def test_foreign_texts_like_unit_norm_embeddings(tmp_path):
    """Text-like: unit-norm 384-d embeddings (cosine), five topics; 50 foreign texts of one other
    kind close to a topic, with random labels."""
    rng = np.random.default_rng(1)
    n, dims, classes = 2500, 384, 5
    topics = rng.normal(0, 1, (classes, dims))
    y = rng.integers(0, classes, n)
    X = topics[y] + rng.normal(0, 1.3, (n, dims))
    kind = topics[2] * 0.6 + rng.normal(0, 1, dims) * 0.8
    F = kind + rng.normal(0, 0.9, (50, dims))
    X = np.vstack([X, F])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    names = np.array(["news", "sport", "film", "music", "travel"], dtype=object)
    labels = np.concatenate([names[y], names[rng.integers(0, classes, 50)]])
    foreign = np.r_[np.zeros(n, bool), np.ones(50, bool)]
    an = dq.analyze(dq.Dataset.from_arrays(X.astype(np.float32), labels), layout="pca", progress=False,
                    workdir=tmp_path)
    _check_flags(an, foreign)


def test_foreign_table_rows_pasted_from_another_table(tmp_path):
    """Table-like: scikit-learn digits as 64 numeric columns with 40 rows of another table under the
    same headers (Fashion-MNIST shirts/coats/pullovers averaged to 8 x 8 cells, random digit labels):
    dqwidgets.planted.digits_table_case, the bench's table case."""
    from dqwidgets.planted import digits_table_case

    case = digits_table_case()
    an = dq.analyze(case.dataset(), layout="pca", progress=False, workdir=tmp_path)
    _check_flags(an, case.is_foreign)


def test_a_region_of_two_confused_classes_is_not_foreign():
    """Two classes drawn from the same blob (the probe cannot tell them apart) carry little label
    information, but their labels concentrate on those two classes: not a foreign region."""
    rng = np.random.default_rng(3)
    means = rng.normal(0, 1, (6, 16)) * 2.5
    y = rng.integers(0, 6, 2000)
    X = (means[np.where(y == 5, 4, y)] + rng.normal(0, 1, (2000, 16))).astype(np.float32)  # 4 and 5 share a blob
    from dqwidgets.compute.probe import out_of_fold_probs

    probs = out_of_fold_probs(X, y, 6, device="cpu")
    g = knn_graph(X, 15, device="cpu")
    found = find_foreign_clusters(g.indices, y, probs)
    assert found.probability.max() < 0.5 and not found.regions


def test_random_labels_inside_a_region_are_found_whatever_the_resolution_that_isolates_it():
    """The label test itself: a group that only a fine partition separates (it sits inside one
    class's community) is found, and its members' probability is the region's purity."""
    X, labels, foreign = _image_like(seed=4)
    codes = np.unique(labels, return_inverse=True)[1]
    from dqwidgets.compute.probe import out_of_fold_probs

    probs = out_of_fold_probs(X, codes, int(codes.max()) + 1, device="cpu")
    g = knn_graph(X, 15, device="cpu")
    found = find_foreign_clusters(g.indices, codes, probs)
    assert found.regions and all(np.isfinite(r.resolution) for r in found.regions)
    flagged = found.probability >= 0.5
    assert flagged[foreign].mean() >= 0.8 and foreign[flagged].mean() >= 0.7
    assert found.gain_all > 0.5  # the probe learned the classes: labels carry information elsewhere


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_data_of_many_classes_has_no_foreign_region(tmp_path, seed):
    rng = np.random.default_rng(10 + seed)
    means = rng.normal(0, 1, (8, 32)) * 1.2
    y = rng.integers(0, 8, 2000)
    X = (means[y] + rng.normal(0, 1, (2000, 32))).astype(np.float32)
    labels = np.array([f"c{i}" for i in range(8)], dtype=object)[y]
    an = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="pca", progress=False, workdir=tmp_path)
    assert an.samples["is_ood"].mean() <= 0.005


def _weak_binary(seed, n=2000, n_group=40, group_is_foreign=True):
    """Text-like: topics that share one binary label (sentiment) which the probe reads weakly (mean
    gain ~0.1 nats, as on Rotten Tomatoes), plus a group of ``n_group`` samples cut off from the rest
    of the graph (another kind of text). Foreign: random labels, and the probe's outputs there are
    confident and unrelated to them (it was fitted to random labels); in-distribution: its labels are
    read as weakly as everywhere else."""
    rng = np.random.default_rng(seed)
    dims, topics = 32, 12
    T = rng.normal(0, 1, (topics, dims)) * 0.8
    t = rng.integers(0, topics, n)
    X = T[t] + rng.normal(0, 1, (n, dims))
    G = rng.normal(0, 1, dims) * 2.5 + rng.normal(0, 0.6, (n_group, dims))
    X = np.vstack([X, G]).astype(np.float32)
    y = rng.integers(0, 2, n + n_group)
    p1 = np.clip(0.5 + 0.06 * (2 * y - 1) + rng.normal(0, 0.15, n + n_group), 0.02, 0.98)
    if group_is_foreign:
        p1[n:] = rng.uniform(0.1, 0.9, n_group)
    probs = np.c_[1 - p1, p1]
    group = np.r_[np.zeros(n, bool), np.ones(n_group, bool)]
    return X, y, probs, group


@pytest.mark.parametrize("seed", [0, 1])
def test_a_cut_off_group_with_random_labels_is_found_where_labels_carry_little_information(seed, monkeypatch):
    """A weak binary probe gives no region's labels a clear lack of information (the first test has no
    power), but a group cut off from the graph whose labels are the dataset's shares is foreign."""
    import dqwidgets.compute.foreign as fm

    X, y, probs, foreign = _weak_binary(seed)
    g = knn_graph(X, 15, device="cpu")
    found = find_foreign_clusters(g.indices, y, probs)
    assert 0.02 < found.gain_all < 0.2
    flagged = found.probability >= 0.5
    assert flagged[foreign].mean() >= 0.8 and foreign[flagged].mean() >= 0.8
    assert roc_auc_score(foreign, found.probability) >= 0.95
    monkeypatch.setattr(fm, "Z_ISO", np.inf)  # the label-information test alone misses it
    assert (find_foreign_clusters(g.indices, y, probs).probability[foreign] >= 0.5).mean() < 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_a_cut_off_group_whose_labels_the_probe_reads_is_not_foreign(seed):
    """The same cut-off group with labels the probe reads as well as elsewhere (a distinct topic of the
    same data), or no group at all: no foreign region."""
    X, y, probs, group = _weak_binary(seed, group_is_foreign=False)
    g = knn_graph(X, 15, device="cpu")
    assert find_foreign_clusters(g.indices, y, probs).probability.max() < 0.5
    g = knn_graph(X[~group], 15, device="cpu")
    assert find_foreign_clusters(g.indices, y[~group], probs[~group]).probability.max() < 0.5


def test_foreign_table_rows_of_another_kind(tmp_path):
    """Rows of scikit-learn's breast-cancer table (30 columns scaled to 0-16, tiled to 64) pasted among
    the digits under the digits' headers, random digit labels; and the digits alone get no OOD flag."""
    from sklearn.datasets import load_breast_cancer, load_digits

    rng = np.random.default_rng(5)
    d, b = load_digits(), load_breast_cancer().data
    B = b[rng.choice(len(b), 40, replace=False)]
    B = np.round((B - b.min(0)) / (b.max(0) - b.min(0)) * 16.0)
    X = np.vstack([d.data, np.hstack([B, B, B[:, :4]])]).astype(np.float32)
    labels = np.array([str(c) for c in np.r_[d.target, rng.integers(0, 10, 40)]], dtype=object)
    foreign = np.r_[np.zeros(len(d.data), bool), np.ones(40, bool)]
    an = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="pca", progress=False, workdir=tmp_path)
    _check_flags(an, foreign)
    clean = dq.analyze(dq.Dataset.from_arrays(X[~foreign], labels[~foreign]), layout="pca", progress=False,
                       workdir=tmp_path)
    assert clean.samples["is_ood"].sum() == 0


def _style_shifted_group(seed, n=3000, n_group=150, shift=3.0):
    """Rotten Tomatoes' plot synopses among its snippets, as measured in MiniLM space
    (bench/results/bench_foreign_limits.md): 5% of the data, of the same topics but another style, i.e.
    shifted along one direction by ~3 s.d. (an out-of-fold linear classifier separates them, AUROC
    ~0.98), so a member's 15 neighbours are only ~25% of the group (not cut off from the graph); random
    labels, on which the weak binary probe outputs the class shares."""
    rng = np.random.default_rng(seed)
    dims, topics = 32, 12
    T = rng.normal(0, 1, (topics, dims)) * 0.8
    t = rng.integers(0, topics, n + n_group)
    X = T[t] + rng.normal(0, 1, (n + n_group, dims))
    u = rng.normal(0, 1, dims)
    X[n:] += shift * u / np.linalg.norm(u)
    y = rng.integers(0, 2, n + n_group)
    p1 = np.clip(0.5 + 0.06 * (2 * y - 1) + rng.normal(0, 0.15, n + n_group), 0.02, 0.98)
    p1[n:] = np.clip(0.5 + rng.normal(0, 0.15, n_group), 0.02, 0.98)
    return X.astype(np.float32), y, np.c_[1 - p1, p1], np.r_[np.zeros(n, bool), np.ones(n_group, bool)]


@pytest.mark.parametrize("seed", [0, 1])
def test_style_shifted_group_is_planted_as_measured_and_its_clean_counterpart_gets_no_region(seed):
    """The planted structure of the known failure below holds (linearly separable, not cut off), and
    without the group at most 0.5% of the samples are given P(foreign) >= 0.5 (seed 0: one community
    of 10 at resolution 30 whose mean gain is -3.4 x the data's, the rule's chance region)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    X, y, probs, group = _style_shifted_group(seed)
    lin = cross_val_predict(LogisticRegression(max_iter=1000), X, group, cv=5, method="predict_proba")[:, 1]
    assert roc_auc_score(group, lin) >= 0.95
    g = knn_graph(X, 15, device="cpu")
    assert np.median(group[g.indices[group]].mean(1)) <= 0.35
    g = knn_graph(X[~group], 15, device="cpu")
    assert (find_foreign_clusters(g.indices, y[~group], probs[~group]).probability >= 0.5).mean() <= 0.005


@pytest.mark.xfail(strict=True, reason=(
    "on embeddings alone, not reached: a group separated along one direction but not cut off from the "
    "kNN graph, under a weak binary probe (gain ~0.07 nats), gets P(foreign) 0 (AUROC 0.500, 0 of 150 "
    "flagged on seeds 0 and 1), as Rotten Tomatoes' synopses in MiniLM space's graph alone "
    "(bench/results/bench_foreign_limits.md). Texts get a second view, their surface statistics "
    "(compute.text_view, tests/test_foreign_texts.py); precomputed embeddings do not"))
@pytest.mark.parametrize("seed", [0, 1])
def test_style_shifted_group_with_random_labels_is_found(seed):
    X, y, probs, group = _style_shifted_group(seed)
    g = knn_graph(X, 15, device="cpu")
    p = find_foreign_clusters(g.indices, y, probs).probability
    assert roc_auc_score(group, p) >= 0.95
    assert (p[group] >= 0.5).mean() >= 0.8 and group[p >= 0.5].mean() >= 0.7

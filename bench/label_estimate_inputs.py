"""Inputs of the label step, cached per planted case, for bench/bench_label_estimate.py.

Each case is what ``compute.label.find_label_issues`` sees inside ``dq.analyze`` (out-of-fold probe
probabilities, the kNN graph's neighbour positions, the label codes, the OOD step's foreign-region
probability) plus the truth (given label wrong: flipped or foreign; the true class code, -1 for
foreign). Cached as ``$DQ_BENCH_WORKDIR/label_estimate/<case>.npz`` so that the calibration variants
are scored on all cases in seconds.

Cases:
- the five of bench/bench_quality.py, through ``dq.analyze`` as that bench runs it;
- tests/test_label_estimate.py's planted tables (digits, pair / symmetric noise), its own pipeline;
- hold-outs, not used to choose: ``pixel_pca_seed1`` (planted_fashion_mnist seed 1), the cached
  EfficientNet features of ``fashion_mnist_near_copies`` with 10% planted flips (half to the
  confusable class, half random, as notebook01 plants them, other seed), the cached MiniLM
  features of ``rotten_tomatoes`` with another 10% flip draw (foreign synopses kept), and digits
  with cyclic noise (y -> y+1 at 20%).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import WORKDIR, load_case  # noqa: E402

CACHE = WORKDIR / "label_estimate"
CHOICE = ["notebook01_fashion_mnist", "fashion_mnist_near_copies", "rotten_tomatoes", "digits_table", "pixel_pca",
          "digits_pairs25_s0", "digits_pairs25_s1", "digits_sym05_s0", "digits_sym05_s1", "digits_sym30_s0"]
HOLDOUT = ["pixel_pca_seed1", "fmnist_effnet_flips10", "rotten_tomatoes_reflip", "digits_cyclic20_s0"]


def _from_analysis(an, wrong_full, true_codes_full) -> dict:
    pos = np.flatnonzero(an.valid)
    s = an.samples
    pf = s["ood_cluster_score"].to_numpy(np.float64)[pos] if "ood_cluster_score" in s else None
    return {"probs": an.pred_probs[pos].astype(np.float32), "neighbors": an.graph.indices,
            "codes": an.context.label_codes[pos], "foreign": pf if pf is not None else np.array([]),
            "wrong": np.asarray(wrong_full, bool)[pos], "true": np.asarray(true_codes_full)[pos],
            "classes": np.asarray(an.classes, dtype=object).astype(str)}


def _analyze_arrays(X, labels, name):
    import dqwidgets as dq
    from dqwidgets.dataset import Dataset

    return dq.analyze(Dataset.from_arrays(X, labels), layout="pca", progress=False,
                      workdir=WORKDIR / "analyses_label_estimate" / name)


def _codes(values, classes):
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)


def _bench_quality_case(name):
    from bench_quality import run_ours

    case, X = load_case(name)
    an, _ = run_ours(case, X)
    wrong = case.is_noisy | case.is_foreign
    return _from_analysis(an, wrong, _codes(case.true_labels, list(an.classes)))


def _digits(kind, rate, seed):
    from bench_label_noise_cases import noisy_labels
    from sklearn.datasets import load_digits

    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.probe import out_of_fold_probs

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target
    if kind == "cyclic":
        given = y.copy()
        flip = np.random.default_rng(seed).random(len(y)) < rate
        given[flip] = (y[flip] + 1) % 10
    else:
        given = noisy_labels(y, kind, rate, seed)
    graph = knn_graph(X, k=15, metric="cosine", device="cpu")
    probs = out_of_fold_probs(X, given, 10, device="cpu", seed=0)
    return {"probs": probs.astype(np.float32), "neighbors": graph.indices, "codes": given.astype(np.int64),
            "foreign": np.array([]), "wrong": given != y, "true": y.astype(np.int64),
            "classes": np.array([str(c) for c in range(10)])}


def _reflip(name, seed, confusable=None):
    """The cached features of bench case ``name`` with its true labels flipped anew (10%: half to the
    ``confusable`` partner where there is one, the rest to a random other class); foreign samples keep
    their given labels."""
    case, X = load_case(name)
    rng = np.random.default_rng(seed)
    true = case.true_labels
    clean = np.array([t is not None for t in true]) & ~case.is_foreign
    given = np.where(clean, true, case.labels).astype(object)
    classes = sorted(set(given[clean]))
    cand = np.flatnonzero(clean & ~case.is_copy)
    flip = rng.choice(cand, int(0.10 * len(cand)), replace=False)
    for j, i in enumerate(flip):
        if confusable and j % 2 == 0 and true[i] in confusable:
            given[i] = confusable[true[i]]
        else:
            given[i] = rng.choice([c for c in classes if c != true[i]])
    an = _analyze_arrays(X, given, f"{name}_reflip{seed}")
    wrong = case.is_foreign | (clean & (given != true))
    return _from_analysis(an, wrong, _codes(true, list(an.classes)))


def _pixel_pca(seed):
    from dqwidgets.planted import planted_fashion_mnist

    P = planted_fashion_mnist(n=5000, seed=seed)
    an = _analyze_arrays(P.features, P.labels, f"pixel_pca_seed{seed}")
    wrong = P.is_noisy | P.is_ood
    return _from_analysis(an, wrong, _codes(np.where(P.is_ood, None, P.true_labels), list(an.classes)))


CONFUSABLE = {"Shirt": "T-shirt/top", "T-shirt/top": "Shirt", "Pullover": "Coat", "Coat": "Pullover"}
BUILDERS = {
    **{n: (lambda n=n: _bench_quality_case(n)) for n in CHOICE[:4]},
    "pixel_pca": lambda: _pixel_pca(0),
    "digits_pairs25_s0": lambda: _digits("pairs", 0.25, 0),
    "digits_pairs25_s1": lambda: _digits("pairs", 0.25, 1),
    "digits_sym05_s0": lambda: _digits("symmetric", 0.05, 0),
    "digits_sym05_s1": lambda: _digits("symmetric", 0.05, 1),
    "digits_sym30_s0": lambda: _digits("symmetric", 0.30, 0),
    "pixel_pca_seed1": lambda: _pixel_pca(1),
    "fmnist_effnet_flips10": lambda: _reflip("fashion_mnist_near_copies", 7, CONFUSABLE),
    "rotten_tomatoes_reflip": lambda: _reflip("rotten_tomatoes", 7),
    "digits_cyclic20_s0": lambda: _digits("cyclic", 0.20, 0),
}


def load(name: str, rebuild: bool = False) -> dict:
    path = CACHE / f"{name}.npz"
    if path.exists() and not rebuild:
        z = np.load(path, allow_pickle=False)
        d = {k: z[k] for k in z.files}
    else:
        d = BUILDERS[name]()
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, **d)
    if d["foreign"].size == 0:
        d["foreign"] = None
    return d


if __name__ == "__main__":
    for n in sys.argv[1:] or CHOICE + HOLDOUT:
        d = load(n, rebuild=True)
        print(n, len(d["codes"]), "wrong", int(d["wrong"].sum()), flush=True)

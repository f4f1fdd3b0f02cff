"""Foreign samples: planted cases beside bench_quality's, to check that the foreign-region rule
(dqwidgets.compute.foreign) is not tuned to those. Each "clean" case is the same data without the
foreign block (false positives).

- ``digits_in_fashion``: 120 sklearn digits, upscaled to 28 px, among notebook01's Fashion-MNIST
  images (its own foreign removed), random labels; EfficientNet-Lite0.
- ``titles_in_reviews``: 60 movie titles (the Rotten Tomatoes file's ``movie_name`` column) among
  bench_quality's 3,000 fresh/rotten snippets (its plot synopses and copies removed), random labels;
  MiniLM.
- ``docstrings_in_reviews``: 60 first sentences of numpy/scipy docstrings (text shipped with the
  Python packages on this machine) among the same snippets, random labels; MiniLM.
- ``cancer_rows_in_digits``: 40 rows of scikit-learn's breast-cancer table (30 columns scaled to
  digits' 0-16 cells, tiled to 64 columns) among the 1,797 digits rows, random digit labels.

    python bench/bench_foreign_extra.py
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score as A

sys.path.insert(0, str(Path(__file__).parent))
import bench_quality as bq  # noqa: E402

import dqwidgets as dq  # noqa: E402


def _embed(kind: str, items: list, name: str) -> np.ndarray:
    path = bq.WORKDIR / f"{name}.npy"
    if path.exists():
        F = np.load(path)
        if len(F) == len(items):
            return F
    df = pd.DataFrame({kind: items, "label": ["x"] * len(items)})
    ds = dq.Dataset.from_dataframe(df, **{kind: kind}, label="label")
    F = np.asarray(ds.embed(cache_dir=bq.WORKDIR / "cache", progress=False).features, dtype=np.float32)
    np.save(path, F)
    return F


def _mixed(X, y, F, label_set, rng):
    labels = np.concatenate([y, rng.choice(label_set, len(F))]).astype(object)
    return np.vstack([X, F]).astype(np.float32), labels, np.r_[np.zeros(len(X), bool), np.ones(len(F), bool)]


def digits_in_fashion(rng):
    from PIL import Image
    from sklearn.datasets import load_digits

    case, X = bq.load_case("notebook01_fashion_mnist")
    keep = ~case.is_foreign
    d = load_digits()
    pick = rng.choice(len(d.images), 120, replace=False)
    imgs = [np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
            for i in pick]
    F = _embed("image", imgs, "digits_effnet")
    yk = case.labels[keep]
    return (X[keep], yk), _mixed(X[keep], yk, F, sorted(set(yk)), rng)


def _reviews():
    case, X = bq.load_case("rotten_tomatoes")
    keep = ~case.is_foreign & ~case.is_copy
    return X[keep], case.labels[keep]


def _docstring_sentences(n: int, rng) -> list:
    import inspect

    import numpy
    import scipy.linalg
    import scipy.stats

    out = set()
    for mod in (numpy, scipy.stats, scipy.linalg):
        for nm in dir(mod):
            doc = inspect.getdoc(getattr(mod, nm, None)) or ""
            first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
            if 30 <= len(first) <= 200 and not first.startswith(("Internal", "Deprecated")):
                out.add(first)
    out = sorted(out)
    return [out[i] for i in rng.choice(len(out), n, replace=False)]


def titles_in_reviews(rng):
    from dqwidgets.examples import load_rotten_tomatoes

    X, y = _reviews()
    titles = sorted(set(load_rotten_tomatoes()["movie_name"].dropna().astype(str)))
    F = _embed("text", [titles[i] for i in rng.choice(len(titles), 60, replace=False)], "titles_minilm")
    return (X, y), _mixed(X, y, F, ["fresh", "rotten"], rng)


def docstrings_in_reviews(rng):
    X, y = _reviews()
    F = _embed("text", _docstring_sentences(60, rng), "docstrings_minilm")
    return (X, y), _mixed(X, y, F, ["fresh", "rotten"], rng)


def cancer_rows_in_digits(rng):
    from sklearn.datasets import load_breast_cancer, load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32), np.array([str(c) for c in d.target], dtype=object)
    B = load_breast_cancer().data[rng.choice(569, 40, replace=False)]
    lo, hi = load_breast_cancer().data.min(0), load_breast_cancer().data.max(0)
    B = np.round((B - lo) / (hi - lo) * 16.0)
    F = np.hstack([B, B, B[:, :4]])  # 30 + 30 + 4 = digits' 64 columns
    return (X, y), _mixed(X, y, F, [str(c) for c in range(10)], rng)


CASES = {"digits_in_fashion": digits_in_fashion, "titles_in_reviews": titles_in_reviews,
         "docstrings_in_reviews": docstrings_in_reviews, "cancer_rows_in_digits": cancer_rows_in_digits}
CLEAN = {"digits_in_fashion": "fashion_clean", "titles_in_reviews": "reviews_clean",
         "cancer_rows_in_digits": "digits_clean"}


def run(name, X, labels, foreign):
    t = time.perf_counter()
    an = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="pca", progress=False, workdir=bq.WORKDIR / "analyses")
    sec, load = time.perf_counter() - t, " ".join(open("/proc/loadavg").read().split()[:3])
    s = an.samples
    fl = s["is_ood"].to_numpy()
    tp = int((fl & foreign).sum())
    if not foreign.any():
        row = f"| {name} | {len(X)} | 0 | {int(fl.sum())} | — | — | — | — | — | {sec:.0f} | {load} |"
    else:
        est = float(an.summary().loc["ood", "estimated_precision"])
        prec = tp / fl.sum() if fl.any() else float("nan")
        row = (f"| {name} | {len(X)} | {int(foreign.sum())} | {int(fl.sum())} | {bq._fmt(prec)} | {tp / foreign.sum():.3f} | "
               f"{A(foreign, s['ood_score']):.3f} | {bq._fmt(est)} | "
               f"{(s['suggested_action'][foreign] == 'drop').mean():.3f} | {sec:.0f} | {load} |")
    print(row, flush=True)
    return row


def main(names):
    lines = ["Foreign samples beside bench_quality (python bench/bench_foreign_extra.py), default flags;",
             "EfficientNet-Lite0 features for images, MiniLM for texts, the columns for tables.", "",
             "| case | n | foreign | flagged | precision | recall | AUROC | est. P | foreign -> drop | s | loadavg |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        (Xc, yc), (X, labels, foreign) = CASES[name](np.random.default_rng(5))
        lines.append(run(name, X, labels, foreign))
        if name in CLEAN:
            lines.append(run(CLEAN[name], Xc, yc, np.zeros(len(Xc), bool)))
    if names == list(CASES):
        (bq.RESULTS / "bench_foreign_extra.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))

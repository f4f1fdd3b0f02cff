"""Do the default flags generalise? Planted cases the flag rules were NOT developed on (bench_quality's
cases are Fashion-MNIST *train* images, 3,000 Rotten Tomatoes snippets with the file's plot synopses,
scikit-learn digits as a table and pixel PCs); here, at the DEFAULT flags, beside cleanlab Datalab on
the same features (bench_quality's LogisticRegression 3-fold out-of-fold probabilities):

1. clean data of every modality, nothing planted: how many flags of each kind a user gets
   (tables wine / breast_cancer / iris / make_classification, Gaussian blobs as embeddings,
   Fashion-MNIST *t10k* images, Rotten Tomatoes snippets other than bench_quality's);
2. label noise of other structures: uniform 5% / 30%, 30% of one class to its neighbour class
   (the pair of class centroids closest together on the features; the larger class of the pair is
   flipped), and every class 20% to its nearest class; on wine, breast_cancer, the t10k images and
   the snippets;
3. foreign groups of other kinds, each with random labels: 2% MNIST-style digits (scikit-learn
   digits drawn into a 20 px box on 28 px, as MNIST) and 2% inverted Fashion-MNIST images among
   t10k images; a block of rows from another make_classification table, and column-shuffled rows
   (each column drawn independently from the real rows: true marginals, no joint) in breast_cancer;
   2% sentences from the license texts in /usr/share/common-licenses, and 2% word-reversed snippets,
   among snippets;
4. near-copies of kinds and strengths bench_quality does not use (JPEG q60, resized to 24 px,
   1 px diagonal shift, noise sd 4, +10% brightness; text title case, tabs, commas dropped, one
   swapped letter), on the raw data and on the embeddings only (Dataset.from_arrays of the same
   features: no image signature, no normalised-text channel), and on clean embeddings.

Truth (as bench_quality): a label issue is a sample whose given label is not its true class (planted
flips, and every foreign sample: no class fits it); OOD = the planted foreign samples; duplicates =
both members of a planted copy pair plus pairs already in the base data (equal bytes for images,
equal rows for tables, equal text up to case / whitespace / punctuation for texts), scored as "in a
duplicate group" (ours) / "near duplicate issue" (Datalab). The base data's own real label errors
(Fashion-MNIST has some) are not known and count as clean: on clean data the label flags are
"flags a user must look at", not necessarily false.

Embeddings are cached under $DQ_BENCH_AUDIT_WORKDIR (default /tmp/dq-bench-audit).

    python bench/bench_generalisation.py [case-prefix ...]
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import bench_quality as bq  # noqa: E402  (figures, best_f1, run_cleanlab)

from dqwidgets.planted import PlantedCase, _jpeg  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WORKDIR = Path(os.environ.get("DQ_BENCH_AUDIT_WORKDIR", "/tmp/dq-bench-audit"))
N_IMAGES, N_TEXTS = 2000, 1500


# ----------------------------------------------------------------------------------------------
# label noise of several structures

def flip_uniform(true: np.ndarray, rate: float, rng) -> np.ndarray:
    classes = sorted(set(true))
    given = true.copy()
    for i in rng.choice(len(true), int(round(rate * len(true))), replace=False):
        given[i] = rng.choice([c for c in classes if c != true[i]])
    return given


def _centroid_neighbours(true: np.ndarray, X: np.ndarray):
    """(classes, nearest other class of each, centroid distances) on standardised features."""
    Z = (X - X.mean(0)) / (X.std(0) + 1e-12)
    classes = sorted(set(true))
    C = np.stack([Z[true == c].mean(0) for c in classes])
    D = np.linalg.norm(C[:, None] - C[None], axis=2)
    np.fill_diagonal(D, np.inf)
    return classes, D.argmin(1), D


def flip_to_neighbour(true: np.ndarray, X: np.ndarray, rate: float, rng) -> np.ndarray:
    """``rate`` of one class to its neighbour: the closest pair of class centroids, the larger class
    of the pair flipped to the other (asymmetric noise)."""
    classes, _, D = _centroid_neighbours(true, X)
    a, b = np.unravel_index(np.argmin(D), D.shape)
    src, dst = (a, b) if (true == classes[a]).sum() >= (true == classes[b]).sum() else (b, a)
    given = true.copy()
    members = np.flatnonzero(true == classes[src])
    given[rng.choice(members, int(round(rate * len(members))), replace=False)] = classes[dst]
    return given


def flip_all_to_nearest(true: np.ndarray, X: np.ndarray, rate: float, rng) -> np.ndarray:
    """Class-conditional noise: every class sends ``rate`` of its samples to its nearest class."""
    classes, nearest, _ = _centroid_neighbours(true, X)
    given = true.copy()
    for k, c in enumerate(classes):
        members = np.flatnonzero(true == c)
        given[rng.choice(members, int(round(rate * len(members))), replace=False)] = classes[nearest[k]]
    return given


NOISE = {"uniform5": lambda t, X, r: flip_uniform(t, 0.05, r), "uniform30": lambda t, X, r: flip_uniform(t, 0.30, r),
         "neighbour30": lambda t, X, r: flip_to_neighbour(t, X, 0.30, r),
         "nearest20all": lambda t, X, r: flip_all_to_nearest(t, X, 0.20, r)}


# ----------------------------------------------------------------------------------------------
# base data

def _table(name: str):
    from sklearn import datasets

    if name == "make_classification":
        X, y = datasets.make_classification(n_samples=2000, n_features=20, n_informative=10, n_redundant=4,
                                            n_classes=4, n_clusters_per_class=2, class_sep=1.5, flip_y=0.0,
                                            random_state=0)
        return pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]), np.array([f"c{v}" for v in y], object)
    d = getattr(datasets, f"load_{name}")()
    names = list(d.target_names)
    return pd.DataFrame(d.data, columns=list(d.feature_names)), np.array([str(names[v]) for v in d.target], object)


def _exact_dup_partner(keys: list) -> np.ndarray:
    """Samples whose key another sample shares (base data's own duplicates: truth, not false alarms)."""
    s = pd.Series(keys)
    return s.duplicated(keep=False).to_numpy()


def _fashion_test():
    from dqwidgets.examples import load_fashion_mnist

    images, y, names = load_fashion_mnist("test", None)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(y))
    base, spare = order[:N_IMAGES], order[N_IMAGES:]
    return images, y, names, base, spare


def _snippets():
    from dqwidgets.examples import load_rotten_tomatoes

    df = load_rotten_tomatoes()
    reviews = df[df["label"] != "plot"]
    used = set(reviews.sample(n=3000, random_state=0).index)  # bench_quality's rotten_tomatoes draw
    rest = reviews[~reviews.index.isin(used)]
    rest = rest[rest["text"].astype(str).str.split().str.len() >= 4]
    pick = rest.sample(n=N_TEXTS + 200, random_state=11)
    return pick["text"].astype(str).tolist(), pick["label"].to_numpy(object)


def _norm_text(t: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", t.lower())).strip()


def _license_sentences() -> list[str]:
    seen, out = set(), []
    for p in sorted(Path("/usr/share/common-licenses").glob("*")):
        try:
            text = p.read_text(errors="ignore")
        except (IsADirectoryError, OSError):
            continue
        for s in re.split(r"(?<=[.;:])\s+", re.sub(r"\s+", " ", text)):
            w = s.split()
            key = _norm_text(s)
            if 8 <= len(w) <= 40 and key not in seen:
                seen.add(key)
                out.append(s.strip())
    return out


def mnist_style_digits(n: int, rng) -> list[np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for i in rng.choice(len(d.images), n, replace=False):
        small = Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((20, 20), Image.BICUBIC)
        img = np.zeros((28, 28), np.uint8)
        img[4:24, 4:24] = np.asarray(small)
        out.append(img)
    return out


# ----------------------------------------------------------------------------------------------
# near-copies of kinds bench_quality does not plant

def image_copy(img: np.ndarray, kind: str, rng) -> np.ndarray:
    from PIL import Image

    if kind == "jpeg60":
        return _jpeg(img, 60)
    if kind == "resized24":
        return np.asarray(Image.fromarray(img).resize((24, 24), Image.BICUBIC).resize((28, 28), Image.BICUBIC))
    if kind == "shift1diag":
        return np.roll(img, (1, 1), axis=(0, 1))
    if kind == "noise4":
        return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    if kind == "bright10":
        return np.clip(img.astype(np.float64) * 1.1, 0, 255).astype(np.uint8)
    raise ValueError(kind)


IMAGE_COPY_KINDS = ["jpeg60", "resized24", "shift1diag", "noise4", "bright10"]
TEXT_COPY_KINDS = ["titlecase", "tabs", "no_commas", "swapped_letters"]


def text_copy(t: str, kind: str, rng) -> str:
    if kind == "titlecase":
        return t.title()
    if kind == "tabs":
        return "\t".join(t.split(" ")) + "\t"
    if kind == "no_commas":
        return t.replace(",", "") if "," in t else t.rstrip(".") + " ..."
    if kind == "swapped_letters":
        w = t.split()
        j = int(np.argmax([len(x) for x in w]))
        x = w[j]
        k = int(rng.integers(1, len(x) - 1)) if len(x) > 3 else 0
        w[j] = x[:k] + x[k + 1] + x[k] + x[k + 2:] if len(x) > 3 else x + x[-1]
        return " ".join(w)
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------------
# cases

def _case(name, modality, data, labels, true, foreign=None, copy_of=None, copy_kind=None, base_dup=None):
    n = len(labels)
    foreign = np.zeros(n, bool) if foreign is None else foreign
    true = np.asarray(true, object).copy()
    true[foreign] = None
    copy_of = np.full(n, -1, np.int64) if copy_of is None else copy_of
    c = PlantedCase(name, modality, data, np.asarray(labels, object), true,
                    (np.asarray(labels, object) != true) & ~foreign, foreign, copy_of, None,
                    copy_kind if copy_kind is not None else np.full(n, "", object))
    c.base_dup = np.zeros(n, bool) if base_dup is None else base_dup
    return c


def other_table_block(m: int = 40):
    """make_classification's table (2,000 rows) with ``m`` rows of another draw with the same
    parameters pasted under it, random labels: (table, labels, is_foreign, true labels)."""
    from sklearn.datasets import make_classification

    df, y = _table("make_classification")
    Xo, _ = make_classification(n_samples=m, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
                                n_clusters_per_class=2, class_sep=1.5, random_state=99)
    rng = np.random.default_rng(0)
    t = pd.concat([df, pd.DataFrame(Xo, columns=df.columns)], ignore_index=True)
    lab = np.concatenate([y, rng.choice(sorted(set(y)), m)])
    return t, lab, np.r_[np.zeros(len(y), bool), np.ones(m, bool)], np.concatenate([y, y[:m]])


def _with_foreign(name, modality, base, extra, true, dup, pool, rng):
    """``base`` with the foreign samples ``extra`` appended, given random labels from ``pool``."""
    m = len(extra)
    return _case(name, modality, base + extra, np.concatenate([true, rng.choice(pool, m)]),
                 np.concatenate([true, true[:m]]), foreign=np.r_[np.zeros(len(base), bool), np.ones(m, bool)],
                 base_dup=np.r_[dup, np.zeros(m, bool)])


def _with_copies(name, modality, base, true, dup, kinds, per, make, rng):
    """``base`` with ``per`` near-copies of each kind appended (``make(sample, kind, rng)``)."""
    src = rng.choice(len(base), per * len(kinds), replace=False)
    kind = [kinds[j // per] for j in range(len(src))]
    made = [make(base[i], k, rng) for i, k in zip(src, kind)]
    lab = np.concatenate([true, true[src]])
    c = _case(name, modality, base + made, lab, lab, copy_of=np.r_[np.full(len(base), -1), src].astype(np.int64),
              copy_kind=np.array([""] * len(base) + kind, object), base_dup=np.r_[dup, np.zeros(len(src), bool)])
    c.embeddings_variant = True
    return c


def table_cases():
    out = []
    for name in ("wine", "breast_cancer", "iris", "make_classification"):
        df, y = _table(name)
        dup = _exact_dup_partner([tuple(r) for r in df.to_numpy()])
        out.append(_case(f"clean/{name}", "table", df, y, y, base_dup=dup))
        if name in ("wine", "breast_cancer"):
            for noise, fn in NOISE.items():
                for seed in (0, 1):
                    given = fn(y, df.to_numpy(np.float64), np.random.default_rng(seed))
                    out.append(_case(f"noise/{name}/{noise}/s{seed}", "table", df, given, y, base_dup=dup))
    t, lab, foreign, true = other_table_block()
    out.append(_case("foreign/make_classification+other_table_2pct", "table", t, lab, true, foreign=foreign))
    # column-shuffled rows in breast_cancer: every column drawn from the real rows independently
    df, y = _table("breast_cancer")
    m = 17  # 3%
    rng = np.random.default_rng(0)
    shuf = pd.DataFrame({c: rng.choice(df[c].to_numpy(), m) for c in df.columns})
    t = pd.concat([df, shuf], ignore_index=True)
    lab = np.concatenate([y, rng.choice(sorted(set(y)), m)])
    out.append(_case("foreign/breast_cancer+column_shuffled_3pct", "table", t, lab, np.concatenate([y, y[:m]]),
                     foreign=np.r_[np.zeros(len(y), bool), np.ones(m, bool)]))
    # blobs as embeddings, clean, and with near-copies at a jitter of 2% of the typical neighbour distance
    from sklearn.datasets import make_blobs

    Xb, yb = make_blobs(n_samples=2000, n_features=32, centers=8, cluster_std=2.0, random_state=0)
    Xb = Xb.astype(np.float32)
    yb = np.array([f"b{v}" for v in yb], object)
    out.append(_case("clean/blobs_embeddings", "embedding", Xb, yb, yb))
    rng = np.random.default_rng(0)
    nn = np.sort(np.linalg.norm(Xb[:300, None] - Xb[None], axis=2), 1)[:, 1]
    src = rng.choice(len(Xb), 40, replace=False)
    cp = Xb[src] + rng.normal(0, 0.02 * np.median(nn) / np.sqrt(32), (40, 32)).astype(np.float32)
    out.append(_case("copies/blobs_embeddings_jitter2pct", "embedding", np.vstack([Xb, cp]),
                     np.concatenate([yb, yb[src]]), np.concatenate([yb, yb[src]]),
                     copy_of=np.r_[np.full(len(Xb), -1), src].astype(np.int64),
                     copy_kind=np.array([""] * len(Xb) + ["jitter2pct"] * 40, object)))
    return out


def image_cases():
    images, y, names, base, spare = _fashion_test()
    rng = np.random.default_rng(0)
    imgs = [images[i] for i in base]
    true = np.array([names[v] for v in y[base]], object)
    dup = _exact_dup_partner([im.tobytes() for im in imgs])
    out = [_case("clean/fashion_t10k_images", "image", imgs, true, true, base_dup=dup)]
    out[0].noise_base = True
    m = int(round(0.02 * N_IMAGES))
    pool = sorted(set(true))
    out.append(_with_foreign("foreign/fashion_t10k+mnist_style_digits_2pct", "image", imgs, mnist_style_digits(m, rng),
                             true, dup, pool, rng))
    out.append(_with_foreign("foreign/fashion_t10k+inverted_images_2pct", "image", imgs,
                             [255 - images[i] for i in spare[:m]], true, dup, pool, rng))
    out.append(_with_copies("copies/fashion_t10k_images", "image", imgs, true, dup, IMAGE_COPY_KINDS, 20, image_copy, rng))
    return out


def text_cases():
    texts, labels = _snippets()
    rng = np.random.default_rng(0)
    base, extra = texts[:N_TEXTS], texts[N_TEXTS:]
    true = labels[:N_TEXTS]
    dup = _exact_dup_partner([_norm_text(t) for t in base])
    out = [_case("clean/rotten_tomatoes_other_snippets", "text", base, true, true, base_dup=dup)]
    out[0].noise_base = True
    m = int(round(0.02 * N_TEXTS))
    lic = _license_sentences()
    pick = [lic[i] for i in rng.choice(len(lic), m, replace=False)]
    pool = ["fresh", "rotten"]
    out.append(_with_foreign("foreign/snippets+license_sentences_2pct", "text", base, pick, true, dup, pool, rng))
    out.append(_with_foreign("foreign/snippets+word_reversed_snippets_2pct", "text", base,
                             [" ".join(t.split()[::-1]) for t in extra[:m]], true, dup, pool, rng))
    out.append(_with_copies("copies/rotten_tomatoes_other_snippets", "text", base, true, dup, TEXT_COPY_KINDS, 15,
                            text_copy, rng))
    return out


# ----------------------------------------------------------------------------------------------
# running

def analyze_case(case, features=None):
    import dqwidgets as dq

    if features is None and case.modality == "embedding":
        features = case.data
    t, c0 = time.perf_counter(), time.process_time()
    ds = case.dataset(features)
    wd = WORKDIR if features is None and case.modality in ("image", "text") else WORKDIR / "analyses"
    an = dq.analyze(ds, layout="pca", progress=False, workdir=wd)
    return an, time.perf_counter() - t, time.process_time() - c0


def _code_version() -> str:
    """The commit of the product code measured (dqwidgets/ as in the last commit that touched it)."""
    import subprocess

    try:
        return subprocess.run(["git", "log", "-1", "--format=%h", "--", "dqwidgets"], capture_output=True, text=True,
                              cwd=Path(__file__).parent.parent, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def evaluate(case, features=None, name=None) -> tuple[dict, np.ndarray]:
    an, sec, cpu = analyze_case(case, features)
    X = np.asarray(an.features, dtype=np.float32)
    lab, cl_sec = bq.run_cleanlab(case, X, list(an.classes))
    s, summ = an.samples, an.summary()
    li, out, dp = lab.get_issues("label"), lab.get_issues("outlier"), lab.get_issues("near_duplicate")
    wrong = case.is_noisy | case.is_foreign
    pair = case.in_copy_pair | case.base_dup
    est = lambda k: float(summ.loc[k, "estimated_precision"]) if k in summ.index else float("nan")  # noqa: E731
    res = {"case": name or case.name, "modality": "embedding" if features is not None else case.modality,
           "n": len(case.labels), "n_wrong": int(wrong.sum()), "n_foreign": int(case.is_foreign.sum()),
           "n_copy_pairs_members": int(pair.sum()), "base_duplicates": int(case.base_dup.sum()),
           "classes": len(an.classes), "seconds": sec, "cpu_seconds": cpu, "cleanlab_seconds": cl_sec,
           "loadavg": open("/proc/loadavg").read().split()[:3], "code": _code_version()}
    res["label_issue"] = {
        "dqwidgets": bq.figures(wrong, s["label_issue_score"], s["is_label_issue"], est("label_issue"), probability=True),
        "cleanlab": bq.figures(wrong, 1 - li["label_score"].to_numpy(), li["is_label_issue"].to_numpy())}
    res["ood"] = {
        "dqwidgets": bq.figures(case.is_foreign, s["ood_score"], s["is_ood"], est("ood"), probability=True),
        "cleanlab": bq.figures(case.is_foreign, 1 - out["outlier_score"].to_numpy(), out["is_outlier_issue"].to_numpy())}
    ours_dup = (s["duplicate_group"] >= 0).to_numpy()
    res["near_duplicate"] = {
        "dqwidgets": bq.figures(pair, s["duplicate_score"].fillna(0), ours_dup),
        "cleanlab": bq.figures(pair, 1 - dp["near_duplicate_score"].to_numpy(), dp["is_near_duplicate_issue"].to_numpy())}
    res["is_duplicate_flags"] = int(s["is_duplicate"].sum())
    if case.is_copy.any():
        res["near_duplicate"]["recall_by_kind"] = {
            k: {"dqwidgets": float(ours_dup[case.is_copy & (case.copy_kind == k)].mean()),
                "cleanlab": float(dp["is_near_duplicate_issue"].to_numpy()[case.is_copy & (case.copy_kind == k)].mean())}
            for k in sorted(set(case.copy_kind[case.is_copy]))}
    if case.is_foreign.any():
        res["foreign_action_drop"] = float((s["suggested_action"].to_numpy()[case.is_foreign] == "drop").mean())
    noisy = case.is_noisy
    if noisy.any():
        res["suggestion_true_among_label_errors"] = float((s["suggested_label"].to_numpy()[noisy]
                                                           == case.true_labels[noisy]).mean())
    clean = ~wrong
    res["probe_accuracy_on_clean"] = float((s["predicted_label"].to_numpy() == case.labels)[clean].mean())
    return res, X


def all_cases():
    return table_cases() + text_cases() + image_cases()


def _fmt(v):
    return bq._fmt(v)


def markdown(rows: list[dict]) -> str:
    lines = ["Do the default flags generalise? Planted cases the flag rules were not developed on",
             "(`python bench/bench_generalisation.py`; definitions in its docstring). dqwidgets at its DEFAULT",
             "flags beside cleanlab Datalab (LogisticRegression 3-fold OOF probabilities) on the same features.",
             "best F1 = the best any threshold on the same score reaches; est. P = summary()'s estimated_precision.",
             "Near-duplicates: truth = both members of a planted pair plus the base data's own exact copies;",
             "ours = in a duplicate group.", "",
             "## Clean data (nothing planted): flags a user gets", "",
             "| case | modality | n | label flags dq / cleanlab | OOD flags dq / cleanlab | in dup. group dq / cleanlab (base dup.) | label est. P | probe acc. |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["case"].startswith("clean/"):
            continue
        L, O, D = r["label_issue"], r["ood"], r["near_duplicate"]
        lines.append(f"| {r['case'][6:]} | {r['modality']} | {r['n']} | {L['dqwidgets']['flagged']} / {L['cleanlab']['flagged']} | "
                     f"{O['dqwidgets']['flagged']} / {O['cleanlab']['flagged']} | {D['dqwidgets']['flagged']} / "
                     f"{D['cleanlab']['flagged']} ({r['base_duplicates']}) | {_fmt(L['dqwidgets'].get('estimated_precision'))} | "
                     f"{_fmt(r['probe_accuracy_on_clean'])} |")
    head = ["| case | issue | tool | flagged / true | precision | recall | F1 | best F1 | F1/best | AUROC | est. P |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(r, issue):
        out = []
        for tool in ("dqwidgets", "cleanlab"):
            f = r[issue][tool]
            out.append(f"| {r['case']} | {issue} | {tool} | {f['flagged']} / {f['true']} | {_fmt(f['precision'])} | "
                       f"{_fmt(f['recall'])} | {_fmt(f['f1'])} | {_fmt(f['best_f1'])} | {_fmt(f['f1_over_best'])} | "
                       f"{_fmt(f['auroc'])} | {_fmt(f.get('estimated_precision'))} |")
        return out

    lines += ["", "## Label noise of other structures", ""] + head
    for r in rows:
        if r["case"].startswith("noise/"):
            lines += row(r, "label_issue")
    lines += ["", "## Foreign groups of other kinds (random labels)", ""] + head
    for r in rows:
        if r["case"].startswith("foreign/"):
            lines += row(r, "ood") + row(r, "label_issue")
    lines += ["", "## Near-copies of other kinds, on raw data and on embeddings only", ""] + head
    for r in rows:
        if r["case"].startswith("copies/"):
            lines += row(r, "near_duplicate")
    lines += ["", "| case | kind | dqwidgets | cleanlab |", "|---|---|---|---|"]
    for r in rows:
        for k, v in r["near_duplicate"].get("recall_by_kind", {}).items():
            lines.append(f"| {r['case']} | {k} | {v['dqwidgets']:.3f} | {v['cleanlab']:.3f} |")
    lines += ["", "False positives of the duplicate flags (in a group, not a copy) as a share of the other samples,",
              "on every case:", "", "| case | dq FP share | cleanlab FP share |", "|---|---|---|"]
    for r in rows:
        d = r["near_duplicate"]
        lines.append(f"| {r['case']} | {d['dqwidgets']['fp_share_of_others']:.4f} | {d['cleanlab']['fp_share_of_others']:.4f} |")
    lines += ["", "| case | n | dq s (CPU s) | cleanlab+LR s | loadavg | dqwidgets code |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']} | {r['seconds']:.1f} ({r['cpu_seconds']:.1f}) | {r['cleanlab_seconds']:.1f} | "
                     f"{' '.join(r['loadavg'])} | {r.get('code', '?')} |")
    return "\n".join(lines) + "\n"


def main(prefixes: list[str]):
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_generalisation.json"
    old = {r["case"]: r for r in json.loads(path.read_text())["cases"]} if path.exists() else {}
    builders = [table_cases, text_cases, image_cases]
    for build in builders:
        for case in build():
            variants = [(case.name, None)]
            if getattr(case, "embeddings_variant", False):
                variants.append((case.name.replace("copies/", "copies/embeddings_only/"), "features"))
            names = [v[0] for v in variants] + ([case.name.replace("clean/", "noise/") + f"/{k}/s0" for k in NOISE]
                                                if getattr(case, "noise_base", False) else [])
            if prefixes and not any(v.startswith(p) for p in prefixes for v in names):
                continue
            X = None
            for vname, feat in variants:
                if prefixes and not any(vname.startswith(p) for p in prefixes):
                    continue  # (the embeddings-only variant and the noise variants run the raw case if needed)
                if feat and X is None:
                    _, X = evaluate(case, None, case.name)
                print("case", vname, flush=True)
                res, X2 = evaluate(case, X if feat else None, vname)
                X = X if feat else X2
                old[vname] = res
                f = {k: (res[k]["dqwidgets"]["flagged"], res[k]["dqwidgets"]["true"], _fmt(res[k]["dqwidgets"]["f1"]),
                         _fmt(res[k]["dqwidgets"]["best_f1"]), _fmt(res[k]["dqwidgets"]["auroc"]),
                         _fmt(res[k]["dqwidgets"].get("estimated_precision")), "cl", res[k]["cleanlab"]["flagged"],
                         _fmt(res[k]["cleanlab"]["f1"]))
                     for k in ("label_issue", "ood", "near_duplicate")}
                print("  ", f, f"{res['seconds']:.1f}s", " ".join(res["loadavg"]), flush=True)
            if getattr(case, "noise_base", False):  # label-noise variants of this base (embedded once)
                for noise, fn in NOISE.items():
                    vname = case.name.replace("clean/", "noise/") + f"/{noise}/s0"
                    if prefixes and not any(vname.startswith(p) for p in prefixes):
                        continue
                    if X is None:
                        old[case.name], X = evaluate(case, None, case.name)
                    given = fn(case.true_labels, X, np.random.default_rng(0))
                    nc = _case(vname, case.modality, case.data, given, case.true_labels, base_dup=case.base_dup)
                    print("case", vname, flush=True)
                    res, _ = evaluate(nc, None, vname)
                    old[vname] = res
                    L = res["label_issue"]
                    print("  ", L["dqwidgets"]["flagged"], L["dqwidgets"]["true"], _fmt(L["dqwidgets"]["f1"]),
                          _fmt(L["dqwidgets"]["best_f1"]), _fmt(L["dqwidgets"].get("estimated_precision")),
                          _fmt(L["dqwidgets"]["precision"]), "cl", L["cleanlab"]["flagged"], _fmt(L["cleanlab"]["f1"]),
                          f"{res['seconds']:.1f}s", flush=True)
            rows = sorted(old.values(), key=lambda r: r["case"])
            path.write_text(json.dumps({"cases": rows}, indent=1, default=float))
            (RESULTS / "bench_generalisation.md").write_text(markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])

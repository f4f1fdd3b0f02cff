"""Why the foreign texts of bench_quality's rotten_tomatoes (156 plot synopses) and bench_foreign_extra's
titles_in_reviews (60 movie titles) are missed (#11 item 4): what separates them from the reviews in
MiniLM space, and what the reviews themselves reach on the same evidence. docstrings_in_reviews (found)
and reviews_clean (no foreign group) beside them. Per case, on analyze's own kNN graph and out-of-fold
probe:

- ``linear``: AUROC of an out-of-fold (5-fold) logistic regression told which samples are foreign (an
  oracle: how separable the group is along some direction);
- ``nb share``: median share of a foreign sample's k neighbours that are foreign (1 = cut off);
- ``kNN`` / ``dq``: AUROC of the k-th neighbour distance and of analyze's ood_score;
- ``best comm.``: the Leiden community (resolutions 1, 3, 10, 30; >= 1% of the data) with the best F1
  against the foreign group: its size, purity, recall;
- ``label z``: (g_all - mean gain) / (s.d. / sqrt(m)) of a region's label gain (compute.foreign): its
  labels' lack of information in standard errors. ``foreign comm.``: the largest over communities whose
  majority is foreign; ``other comm.``: over all others (in-distribution regions);
- ``scan z``: the largest label z over regions built label-free from every community: the top 1-12% of
  the data along the whitened mean difference of the community and the rest (a domain-discriminator
  expansion), with the region's foreign share.

    python bench/bench_foreign_limits.py
"""
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score as A
from sklearn.model_selection import cross_val_predict

sys.path.insert(0, str(Path(__file__).parent))
import bench_foreign_extra as bfe  # noqa: E402
import bench_quality as bq  # noqa: E402

import dqwidgets as dq  # noqa: E402
from dqwidgets.compute.foreign import calibrated_label_probability  # noqa: E402
from dqwidgets.compute.slices import _leiden, _symmetric_adjacency  # noqa: E402

RESOLUTIONS = (1.0, 3.0, 10.0, 30.0)
SCAN = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12)


def measure(name, X, labels, foreign):
    an = dq.analyze(dq.Dataset.from_arrays(X, labels), layout="pca", progress=False, workdir=bq.WORKDIR / "analyses")
    nb, probs = an.context.graph.indices, an.pred_probs
    codes = np.array([list(an.classes).index(v) for v in labels])
    n = len(X)
    P, _ = calibrated_label_probability(probs, codes)
    prior = (np.bincount(codes, minlength=P.shape[1]) + 0.5) / (n + 0.5 * P.shape[1])
    g = np.log(P[np.arange(n), codes]) - np.log(prior[codes])
    gall, sd = g.mean(), g.std()
    z = lambda m: (gall - g[m].mean()) / (sd / np.sqrt(m.sum() if m.dtype == bool else len(m)))  # noqa: E731
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    U, _, _ = np.linalg.svd(Xn - Xn.mean(0), full_matrices=False)
    W = U[:, :64] * np.sqrt(n)
    adj = _symmetric_adjacency(nb)
    best, fz, oz, scan = (0.0, 0, 0.0, 0.0), -np.inf, -np.inf, (-np.inf, 0.0)
    for res in RESOLUTIONS:
        comm = _leiden(adj, res, 0)
        size = np.bincount(comm)
        for c in np.flatnonzero(size >= max(10, 0.01 * n)):
            m = comm == c
            if foreign.any():
                f1 = 2 * (m & foreign).sum() / (m.sum() + foreign.sum())
                if f1 > best[0]:
                    best = (f1, int(m.sum()), foreign[m].mean(), foreign[m].sum() / foreign.sum())
            if foreign[m].mean() > 0.5:
                fz = max(fz, z(m))
            else:
                oz = max(oz, z(m))
            if m.sum() <= n / 4:
                order = np.argsort(-(W @ (W[m].mean(0) - W[~m].mean(0))))
                for q in SCAN:
                    R = order[:int(q * n)]
                    if z(R) > scan[0]:
                        scan = (z(R), foreign[R].mean())
    row = {"case": name, "n": n, "foreign": int(foreign.sum()), "g_all": gall}
    if foreign.any():
        lin = cross_val_predict(LogisticRegression(max_iter=2000), X, foreign, cv=5, method="predict_proba")[:, 1]
        D = 1 - np.einsum("nd,nkd->nk", Xn, Xn[nb])
        row.update(linear=A(foreign, lin), nb_share=float(np.median(foreign[nb[foreign]].mean(1))),
                   knn=A(foreign, D[:, -1]), dq=A(foreign, an.samples["ood_score"]), best=best,
                   z_all_foreign=z(foreign), flagged=int((an.samples["is_ood"].to_numpy() & foreign).sum()))
    row.update(z_foreign_comm=fz, z_other_comm=oz, scan=scan, load=" ".join(f"{v:.1f}" for v in os.getloadavg()))
    return row


def fmt(r):
    f = lambda v: "—" if v is None or not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
    z2 = lambda v: "—" if not np.isfinite(v) else f"{v:.2f}"  # noqa: E731
    if r["foreign"]:
        b = r["best"]
        return (f"| {r['case']} | {r['n']} | {r['foreign']} | {r['flagged']} | {f(r['linear'])} | {r['nb_share']:.2f} | "
                f"{f(r['knn'])} | {f(r['dq'])} | {b[1]} / {b[2]:.2f} / {b[3]:.2f} | {r['g_all']:.3f} | "
                f"{z2(r['z_all_foreign'])} | {z2(r['z_foreign_comm'])} | {z2(r['z_other_comm'])} | "
                f"{r['scan'][0]:.2f} ({r['scan'][1]:.2f}) | {r['load']} |")
    return (f"| {r['case']} | {r['n']} | 0 | — | — | — | — | — | — | {r['g_all']:.3f} | — | — | {r['z_other_comm']:.2f} | "
            f"{r['scan'][0]:.2f} ({r['scan'][1]:.2f}) | {r['load']} |")


def main():
    lines = ["Why foreign texts are missed (python bench/bench_foreign_limits.py; definitions in its docstring).",
             "MiniLM embeddings, analyze's kNN graph (k=15) and out-of-fold probe. label z: the labels' lack of",
             "information in standard errors of the region's mean gain; all foreign = the planted group itself.", "",
             "| case | n | foreign | flagged | linear | nb share | kNN | dq | best comm. size / purity / recall | "
             "g_all | label z all foreign | label z foreign comm. | label z other comm. | scan z (foreign share) | loadavg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    case, X = bq.load_case("rotten_tomatoes")
    lines.append(fmt(measure("rotten_tomatoes (bench_quality)", X, case.labels, case.is_foreign)))
    print(lines[-1], flush=True)
    for name in ("titles_in_reviews", "docstrings_in_reviews"):
        (Xc, yc), (X, labels, foreign) = bfe.CASES[name](np.random.default_rng(5))
        lines.append(fmt(measure(name, X, labels, foreign)))
        print(lines[-1], flush=True)
    lines.append(fmt(measure("reviews_clean", Xc, yc, np.zeros(len(Xc), bool))))
    print(lines[-1], flush=True)
    (bq.RESULTS / "bench_foreign_limits.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

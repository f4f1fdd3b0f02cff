"""Detection quality of dq.analyze vs cleanlab's Datalab on the same features, with planted truth.

Fashion-MNIST (Debian dataset-fashion-mnist) pixels projected on 64 principal components, with
planted label noise (random + confusable pairs), foreign samples of two held-out classes, a tight
foreign cluster, near-copies and a corner-patch shortcut (dqwidgets.planted). Datalab gets
scikit-learn LogisticRegression 3-fold out-of-fold probabilities, the pipeline a user runs today.

    python bench/bench_quality.py [n]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

RESULTS = Path(__file__).parent / "results"


def figures(truth: np.ndarray, score: np.ndarray, flagged: np.ndarray) -> dict:
    tp = (flagged & truth).sum()
    return {"auroc": float(roc_auc_score(truth, score)), "precision": float(tp / max(flagged.sum(), 1)),
            "recall": float(tp / max(truth.sum(), 1)), "flagged": int(flagged.sum()), "true": int(truth.sum())}


def main(n: int = 10_000):
    import dqwidgets as dq
    from cleanlab import Datalab
    from dqwidgets.planted import planted_fashion_mnist
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    P = planted_fashion_mnist(n=n, seed=0)
    t = time.perf_counter()
    an = dq.analyze(dq.Dataset.from_arrays(P.features, P.labels, metadata=P.metadata), layout="pca",
                    progress=False, workdir="/tmp/dq-bench")
    ours_s = time.perf_counter() - t
    s = an.samples

    t = time.perf_counter()
    codes = np.array([an.classes.index(v) for v in P.labels])
    probs = cross_val_predict(LogisticRegression(max_iter=1000), P.features, codes, cv=3, method="predict_proba")
    lab = Datalab(data={"label": codes}, label_name="label", verbosity=0)
    lab.find_issues(features=P.features, pred_probs=probs)
    cl_s = time.perf_counter() - t
    li, out, dup = lab.get_issues("label"), lab.get_issues("outlier"), lab.get_issues("near_duplicate")

    clean = ~P.is_ood
    is_copy = np.zeros(n, bool)
    is_copy[P.copy_of >= 0] = True
    is_copy[P.copy_of[P.copy_of >= 0]] = True  # the original is half of the pair too
    res = {
        "label_issue": {
            "dqwidgets": figures(P.is_noisy[clean], s["label_issue_score"].to_numpy()[clean], s["is_label_issue"].to_numpy()[clean]),
            "cleanlab": figures(P.is_noisy[clean], 1 - li["label_score"].to_numpy()[clean], li["is_label_issue"].to_numpy()[clean])},
        "ood": {
            "dqwidgets": figures(P.is_ood, s["ood_score"].to_numpy(), s["is_ood"].to_numpy()),
            "cleanlab": figures(P.is_ood, 1 - out["outlier_score"].to_numpy(), out["is_outlier_issue"].to_numpy())},
        "ood_tight_cluster": {
            "dqwidgets": figures(P.is_cluster, s["ood_score"].to_numpy(), s["is_ood"].to_numpy()),
            "cleanlab": figures(P.is_cluster, 1 - out["outlier_score"].to_numpy(), out["is_outlier_issue"].to_numpy())},
        "near_duplicate": {
            "dqwidgets": figures(is_copy, s["duplicate_score"].fillna(0).to_numpy(), (s["duplicate_group"] >= 0).to_numpy()),
            "cleanlab": figures(is_copy, 1 - dup["near_duplicate_score"].to_numpy(), dup["is_near_duplicate_issue"].to_numpy())},
    }
    sp = an.spurious
    top = sp.iloc[0].to_dict() if len(sp) else {}
    res["spurious_top"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in top.items()}
    res["seconds"] = {"dqwidgets": ours_s, "cleanlab_with_lr_3fold": cl_s}
    res["n"] = n
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_quality.json").write_text(json.dumps(res, indent=1, default=str))
    lines = [f"Fashion-MNIST planted truth, N={n:,}, 64 pixel PCs", "",
             "| issue | tool | AUROC | precision | recall | flagged / true |", "|---|---|---|---|---|---|"]
    for issue in ["label_issue", "ood", "ood_tight_cluster", "near_duplicate"]:
        for tool in ["dqwidgets", "cleanlab"]:
            f = res[issue][tool]
            lines.append(f"| {issue} | {tool} | {f['auroc']:.3f} | {f['precision']:.3f} | {f['recall']:.3f} | {f['flagged']} / {f['true']} |")
    lines.append(f"\nTop of an.spurious: {res['spurious_top']}")
    lines.append(f"\nSeconds: {res['seconds']}")
    (RESULTS / "bench_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)

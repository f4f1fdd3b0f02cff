"""Label flags on noise that bench_quality does not plant: scikit-learn's digits (1,797 rows, ten
well-separated classes, no download) with class-conditional pair noise (1<->7, 3<->8, 4<->9, 5<->6 at
25% of those classes) and symmetric noise (5% and 30% of the rows, to any other class). The label step
(out-of-fold probe, kNN graph, ``compute.label.find_label_issues``) as ``dq.analyze`` runs it; for each:
F1 at the default flags beside the best F1 of the same score, the estimated precision (the mean
probability over the flags, summary()'s ``estimated_precision``) beside the measured one, and AUROC.

    python bench/bench_label_noise_cases.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import RESULTS, best_f1  # noqa: E402

PAIRS = {1: 7, 7: 1, 3: 8, 8: 3, 4: 9, 9: 4, 5: 6, 6: 5}
CASES = [("pairs", 0.25, 0), ("pairs", 0.25, 1), ("symmetric", 0.05, 0), ("symmetric", 0.05, 1),
         ("symmetric", 0.30, 0)]


def noisy_labels(y: np.ndarray, kind: str, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    given = y.copy()
    if kind == "pairs":
        cand = np.flatnonzero(np.isin(y, list(PAIRS)))
        flip = cand[rng.random(len(cand)) < rate]
        given[flip] = [PAIRS[v] for v in y[flip]]
    else:
        flip = np.flatnonzero(rng.random(len(y)) < rate)
        given[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
    return given


def main() -> None:
    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.label import find_label_issues
    from dqwidgets.compute.probe import out_of_fold_probs

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target
    graph = knn_graph(X, k=15, metric="cosine", device="cpu")
    rows = []
    for kind, rate, seed in CASES:
        given = noisy_labels(y, kind, rate, seed)
        wrong = given != y
        probs = out_of_fold_probs(X, given, 10, device="cpu", seed=0)
        r = find_label_issues(probs, graph.indices, given)
        f, sc = r.is_label_issue, r.label_issue_score
        tp = int((f & wrong).sum())
        f1 = 2 * tp / (f.sum() + wrong.sum())
        best = best_f1(wrong, sc)
        rows.append({"noise": kind, "rate": rate, "seed": seed, "wrong": int(wrong.sum()), "flags": int(f.sum()),
                     "f1": f1, "best_f1": best, "f1_over_best": f1 / best,
                     "estimated_precision": float(sc[f].mean()), "precision": tp / max(int(f.sum()), 1),
                     "expected_wrong": float(sc.sum()), "auroc": float(roc_auc_score(wrong, sc))})
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_label_noise_cases.json").write_text(json.dumps(
        {"rows": rows, "loadavg": open("/proc/loadavg").read().split()[:3]}, indent=1))
    lines = ["Label flags on digits with noise bench_quality does not plant (bench/bench_label_noise_cases.py)", "",
             "| noise | rate | seed | wrong / flagged | F1 (best) | F1/best | est. / measured precision | "
             "sum of scores | AUROC |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['noise']} | {r['rate']} | {r['seed']} | {r['wrong']} / {r['flags']} | {r['f1']:.3f} "
                     f"({r['best_f1']:.3f}) | {r['f1_over_best']:.3f} | {r['estimated_precision']:.3f} / "
                     f"{r['precision']:.3f} | {r['expected_wrong']:.0f} | {r['auroc']:.3f} |")
    (RESULTS / "bench_label_noise_cases.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

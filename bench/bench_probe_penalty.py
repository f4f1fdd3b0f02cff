"""The out-of-fold probe's L2 penalty: fixed at 1e-4 (before) vs ``compute.probe.out_of_fold_probs(l2="auto")``
(where the probe has as many weights as training rows, the penalty that predicts held-out given labels
measurably more often, by McNemar's test; otherwise 1e-4), on bench_quality's planted cases and features.

Per case: the feature dimension, the penalty chosen, the probe's accuracy on the clean samples (given
label = true label), the AUROC of ``1 - p(given label)`` for the planted wrong labels (foreign samples
included, as bench_quality counts them), the probe's seconds, and, for the cases with foreign
samples, how many samples the foreign-region search (compute.foreign) gives P >= 0.5 and how many of
them are foreign when it reads each probe (analyze reads the weakest penalty's there: see
analysis._probabilities).

    .venv/bin/python bench/bench_probe_penalty.py      # bench/results/bench_probe_penalty.{json,md}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
RESULTS = Path(__file__).parent / "results"


def run(name: str) -> dict:
    from bench_quality import load_case

    from dqwidgets.compute.foreign import find_foreign_clusters
    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.probe import L2_PATH, out_of_fold_probs

    case, X = load_case(name)
    classes = sorted(set(case.labels))
    codes = np.array([classes.index(v) for v in case.labels])
    wrong = case.is_noisy | case.is_foreign
    graph = knn_graph(X, 15, device="cpu") if case.is_foreign.any() else None
    out = {"case": name, "n": int(len(codes)), "dim": int(X.shape[1]), "rows": []}
    for l2 in (min(L2_PATH), "auto"):
        t = time.perf_counter()
        P, chosen = out_of_fold_probs(X, codes, len(classes), device="cpu", l2=l2, return_l2=True)
        sec = time.perf_counter() - t
        row = {"l2": l2 if isinstance(l2, str) else float(l2), "chosen": chosen, "seconds": sec,
               "clean_accuracy": float((P.argmax(1) == codes)[~wrong].mean()),
               "auroc_wrong_label": float(roc_auc_score(wrong, 1 - P[np.arange(len(codes)), codes]))
               if 0 < wrong.sum() < len(wrong) else float("nan")}
        if graph is not None:
            p = find_foreign_clusters(graph.indices, codes, P, seed=0).probability
            row["foreign_search_p50"] = int((p >= 0.5).sum())
            row["foreign_search_p50_foreign"] = int(((p >= 0.5) & case.is_foreign).sum())
        out["rows"].append(row)
        print(name, row, flush=True)
    return out


def markdown(results: list) -> str:
    lines = ["The out-of-fold probe's L2 penalty: fixed 1e-4 vs l2='auto' (chosen by held-out accuracy where the "
             "probe is over-parameterised; bench/bench_probe_penalty.py).", f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
             "", "| case | n | dim | penalty | chosen | clean accuracy | AUROC wrong labels | seconds | "
             "foreign search P >= 0.5 (of them foreign) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            fs = (f"{row['foreign_search_p50']} ({row['foreign_search_p50_foreign']})"
                  if "foreign_search_p50" in row else "—")
            lines.append(f"| {r['case']} | {r['n']} | {r['dim']} | {row['l2']} | {row['chosen']:g} | "
                         f"{row['clean_accuracy']:.3f} | {row['auroc_wrong_label']:.3f} | {row['seconds']:.1f} | {fs} |")
    return "\n".join(lines) + "\n"


def main(names):
    names = names or ["notebook01_fashion_mnist", "fashion_mnist_near_copies", "rotten_tomatoes", "digits_table",
                      "pixel_pca"]
    results = [run(n) for n in names]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_probe_penalty.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "bench_probe_penalty.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Which calibration inside the label noise model: a temperature alone, or a temperature and a bias per
class (bias-corrected temperature scaling, the default since it fixed one-sided noise)? Same inputs for
both: the out-of-fold probe and the cosine 15-NN graph as ``dq.analyze`` builds them, on tables and
digits with five noise structures (bench_generalisation's flips: uniform 5% / 30%, 30% of one class to
its neighbour class, every class 20% to its nearest; digits' pair noise), two seeds each. "temperature
only" is the same model with the biases held at 0 (a prior of s.d. 1e-4 on them).

Per case and calibration: the default flags' F1 over the best F1 of the same score, the estimated
precision (mean P over the flags) beside the measured one, and the ECE of ``label_issue_score`` read as
P(label wrong) over every labelled sample (10 equal-width bins), the calibration #11 item 2 asks for.

    python bench/bench_label_calibration.py        # writes bench/results/bench_label_calibration.{json,md}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_generalisation import NOISE, _table  # noqa: E402
from bench_label_noise_cases import noisy_labels  # noqa: E402
from bench_quality import RESULTS, figures  # noqa: E402

CALIBRATIONS = {"temperature only": 1e-4, "temperature + class biases": None}  # BIAS_SD (None: the default)
SEEDS = (0, 1)


def cases():
    from sklearn.datasets import load_digits

    for name in ("wine", "breast_cancer", "make_classification"):
        df, y = _table(name)
        X = df.to_numpy(np.float64)
        for noise, fn in NOISE.items():
            for seed in SEEDS:
                yield f"{name}/{noise}/s{seed}", X, y, fn(y, X, np.random.default_rng(seed))
    d = load_digits()
    for kind, rate in (("pairs", 0.25), ("symmetric", 0.05), ("symmetric", 0.30)):
        for seed in SEEDS:
            yield f"digits/{kind}{int(rate * 100)}/s{seed}", d.data, d.target, noisy_labels(d.target, kind, rate, seed)


def main() -> None:
    import dqwidgets.compute.label as label
    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.probe import out_of_fold_probs

    default_sd = label.BIAS_SD
    rows = []
    for name, X, y, given in cases():
        classes = sorted(set(given.tolist()))
        codes = np.array([classes.index(v) for v in given])
        Z = ((X - X.mean(0)) / (X.std(0) + 1e-12)).astype(np.float32)  # as Dataset.from_dataframe scales columns
        probs = out_of_fold_probs(Z, codes, len(classes), device="cpu", seed=0)
        graph = knn_graph(Z, k=15, metric="cosine", device="cpu")
        wrong = given != y
        row = {"case": name}
        for cal, sd in CALIBRATIONS.items():
            label.BIAS_SD = default_sd if sd is None else sd
            try:
                r = label.find_label_issues(probs, graph.indices, codes)
            finally:
                label.BIAS_SD = default_sd
            score, flags = r.label_issue_score.astype(np.float64), r.is_label_issue
            row[cal] = figures(wrong, score, flags, float(score[flags].mean()) if flags.any() else float("nan"),
                               probability=True)
        rows.append(row)
        print(name, {c: round(row[c]["f1"] / row[c]["best_f1"], 3) for c in CALIBRATIONS}, flush=True)
    summary = {}
    for cal in CALIBRATIONS:
        ratio = np.array([r[cal]["f1"] / r[cal]["best_f1"] for r in rows])
        gap = np.array([abs(r[cal]["estimated_precision"] - r[cal]["precision"]) for r in rows])
        summary[cal] = {"mean_f1_over_best": float(ratio.mean()), "min_f1_over_best": float(ratio.min()),
                        "cases_below_095_of_best": int((ratio < 0.95).sum()),
                        "mean_estimate_gap": float(np.nanmean(gap)), "cases_estimate_off_by_more_than_010": int((gap > 0.10).sum()),
                        "mean_ece": float(np.mean([r[cal]["ece"] for r in rows]))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_label_calibration.json").write_text(json.dumps(
        {"rows": rows, "summary": summary, "loadavg": open("/proc/loadavg").read().split()[:3]}, indent=1))
    names = list(CALIBRATIONS)
    lines = ["# The label noise model's calibration (bench/bench_label_calibration.py)", "",
             "Same probe and graph for both; F1/best = default flags' F1 over the best F1 of the same score; "
             "est. / measured = estimated and measured precision of the flags; ECE of label_issue_score as P(wrong).", "",
             "| case | " + " | ".join(f"{c}: flags, F1/best, est. / measured, ECE" for c in names) + " |",
             "|---|" + "---|" * len(names)]
    for r in rows:
        cells = [f"{r[c]['flagged']} / {r[c]['true']}, {r[c]['f1'] / r[c]['best_f1']:.3f}, "
                 f"{r[c]['estimated_precision']:.3f} / {r[c]['precision']:.3f}, {r[c]['ece']:.3f}" for c in names]
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    lines += ["", "| calibration | mean F1/best | min F1/best | cases < 0.95 of best | mean abs(est. - measured) | "
              "cases off by > 0.10 | mean ECE |", "|---|---|---|---|---|---|---|"]
    for c in names:
        s = summary[c]
        lines.append(f"| {c} | {s['mean_f1_over_best']:.3f} | {s['min_f1_over_best']:.3f} | {s['cases_below_095_of_best']} | "
                     f"{s['mean_estimate_gap']:.3f} | {s['cases_estimate_off_by_more_than_010']} | {s['mean_ece']:.3f} |")
    (RESULTS / "bench_label_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

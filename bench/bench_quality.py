"""Detection quality of dq.analyze at its DEFAULT flags vs cleanlab's Datalab on the same features,
on planted truth in every modality (dqwidgets.planted):

- ``notebook01_fashion_mnist``: notebook 01's data draw for draw (4,229 Fashion-MNIST images,
  EfficientNet-Lite0): 406 wrong labels, 156 foreign Sandal/Bag images, 79 shifted noisy copies;
- ``fashion_mnist_near_copies``: 2,000 images + 100 near-copies (JPEG q75, resized 20 px, shifted
  2 px, noise sd 6), EfficientNet-Lite0;
- ``rotten_tomatoes``: 3,000 fresh/rotten snippets with 10% flipped labels, the file's 156 plot
  synopses as foreign texts with random labels, 60 case/whitespace/punctuation copies, MiniLM;
- ``digits_table``: scikit-learn digits as a 64-column table, 10% flipped labels, 40 rows of another
  table with the same schema, 36 copies with a few cells changed;
- ``pixel_pca``: dqwidgets.planted.planted_fashion_mnist (64 pixel PCs; a tight one-label
  checkerboard cluster).

For every case and issue type: precision / recall / F1 at the default flags, the best F1 any
threshold on the same score reaches, AUROC, dqwidgets' estimated precision (summary()) beside the
measured one, and the ECE of the score read as a probability that the issue is real. Datalab gets
scikit-learn LogisticRegression 3-fold out-of-fold probabilities and the same features.

Truth: a label issue is a sample whose given label is not its true class (flipped labels and
foreign samples, whose label no class fits); OOD = foreign; duplicates = both members of a
planted copy pair, flagged when in a duplicate group (ours) / flagged as near duplicate (Datalab).

Embeddings are cached under ``$DQ_BENCH_WORKDIR`` (default /tmp/dq-bench): the first run embeds
(minutes on a shared 2-core machine), later runs take a minute or two per case.

    python bench/bench_quality.py [case ...]
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

RESULTS = Path(__file__).parent / "results"
WORKDIR = Path(os.environ.get("DQ_BENCH_WORKDIR", "/tmp/dq-bench"))
CASE_NAMES = ["notebook01_fashion_mnist", "fashion_mnist_near_copies", "rotten_tomatoes", "digits_table", "pixel_pca"]


def load_case(name: str):
    """(case, features): features from the project's embedders, cached in WORKDIR."""
    from dqwidgets.planted import CASES, PlantedCase, planted_fashion_mnist

    if name == "pixel_pca":
        P = planted_fashion_mnist(n=5000, seed=0)
        copy_of = P.copy_of
        case = PlantedCase("pixel_pca", "embedding", P.features, P.labels, np.where(P.is_ood, None, P.true_labels),
                           P.is_noisy & ~P.is_ood, P.is_ood, copy_of)
        case.foreign_kind = np.where(P.is_cluster, "checkerboard", np.where(P.is_foreign, P.true_labels, "")).astype(object)
        return case, P.features
    case = CASES[name]()
    path = WORKDIR / f"{name}.npy"
    if path.exists():
        X = np.load(path)
        if len(X) == len(case.labels):
            return case, X
    WORKDIR.mkdir(parents=True, exist_ok=True)
    emb = case.dataset().embed(cache_dir=WORKDIR / "cache", progress=False)
    X = np.asarray(emb.features, dtype=np.float32)
    np.save(path, X)
    return case, X


def best_f1(truth: np.ndarray, score: np.ndarray) -> float:
    """The best F1 of ``score >= t`` over all thresholds t."""
    s = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf)
    order = np.argsort(-s, kind="stable")
    t = truth[order]
    # only cut between distinct score values
    last = np.r_[s[order][1:] != s[order][:-1], True]
    tp = np.cumsum(t)[last]
    m = np.arange(1, len(s) + 1)[last]
    return float((2 * tp / (m + truth.sum())).max()) if truth.sum() else float("nan")


def ece_binary(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    from dqwidgets.compute.calibration import expected_calibration_error

    ok = np.isfinite(p)
    return expected_calibration_error(np.clip(p[ok], 0, 1), truth[ok], bins)


def figures(truth, score, flagged, estimated=None, probability=False) -> dict:
    truth = np.asarray(truth, bool)
    flagged = np.asarray(flagged, bool)
    score = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
    tp = int((flagged & truth).sum())
    p = tp / flagged.sum() if flagged.any() else float("nan")
    r = tp / truth.sum() if truth.any() else float("nan")
    f1 = 2 * tp / (flagged.sum() + truth.sum()) if truth.any() else float("nan")
    out = {"flagged": int(flagged.sum()), "true": int(truth.sum()), "precision": p, "recall": r, "f1": f1,
           "best_f1": best_f1(truth, score),
           "auroc": float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else float("nan"),
           "fp_share_of_others": float((flagged & ~truth).sum() / max((~truth).sum(), 1))}
    out["f1_over_best"] = out["f1"] / out["best_f1"] if out["best_f1"] and out["best_f1"] > 0 else float("nan")
    if estimated is not None:
        out["estimated_precision"] = estimated
    if probability:
        out["ece"] = ece_binary(score, truth)
    return out


def run_ours(case, X):
    import dqwidgets as dq

    t = time.perf_counter()
    if case.modality in ("image", "text"):  # the raw data (its embeddings come from WORKDIR's cache, as X did):
        # what a user passes, so the duplicate step sees the image signatures / normalised texts too
        an = dq.analyze(case.dataset(), layout="pca", progress=False, workdir=WORKDIR)
        if not np.allclose(an.features, X, atol=1e-5):
            raise RuntimeError(f"{case.name}: analyze's embeddings differ from the cached features cleanlab gets")
    else:
        an = dq.analyze(case.dataset(X), layout="pca", progress=False, workdir=WORKDIR / "analyses")
    sec = time.perf_counter() - t
    return an, sec


def run_cleanlab(case, X, classes):
    from cleanlab import Datalab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.preprocessing import StandardScaler

    t = time.perf_counter()
    codes = np.array([classes.index(v) for v in case.labels])
    Z = StandardScaler().fit_transform(X)
    probs = cross_val_predict(LogisticRegression(max_iter=1000), Z, codes, cv=3, method="predict_proba")
    lab = Datalab(data={"label": codes}, label_name="label", verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=X, pred_probs=probs, issue_types={"label": {}, "outlier": {}, "near_duplicate": {}})
    return lab, time.perf_counter() - t


def evaluate(name: str) -> dict:
    case, X = load_case(name)
    an, ours_s = run_ours(case, X)
    lab, cl_s = run_cleanlab(case, X, list(an.classes))
    s, summ = an.samples, an.summary()
    wrong = case.is_noisy | case.is_foreign
    li, out, dup = lab.get_issues("label"), lab.get_issues("outlier"), lab.get_issues("near_duplicate")
    pair = case.in_copy_pair
    res = {"case": name, "n": len(case.labels), "modality": case.modality,
           "seconds": {"dqwidgets": ours_s, "cleanlab_with_lr_3fold": cl_s}}
    res["label_issue"] = {
        "dqwidgets": figures(wrong, s["label_issue_score"], s["is_label_issue"],
                             float(summ.loc["label_issue", "estimated_precision"]), probability=True),
        "cleanlab": figures(wrong, 1 - li["label_score"].to_numpy(), li["is_label_issue"].to_numpy())}
    if case.is_foreign.any():
        res["ood"] = {
            "dqwidgets": figures(case.is_foreign, s["ood_score"], s["is_ood"],
                                 float(summ.loc["ood", "estimated_precision"]), probability=True),
            "cleanlab": figures(case.is_foreign, 1 - out["outlier_score"].to_numpy(), out["is_outlier_issue"].to_numpy())}
    if pair.any():
        ours_dup = (s["duplicate_group"] >= 0).to_numpy()
        res["near_duplicate"] = {
            "dqwidgets": figures(pair, s["duplicate_score"].fillna(0), ours_dup),
            "cleanlab": figures(pair, 1 - dup["near_duplicate_score"].to_numpy(), dup["is_near_duplicate_issue"].to_numpy())}
        if case.copy_kind is not None:
            kinds = {}
            for kind in sorted(set(case.copy_kind[case.is_copy])):
                m = case.is_copy & (case.copy_kind == kind)
                kinds[kind] = {"dqwidgets": float(ours_dup[m].mean()),
                               "cleanlab": float(dup["is_near_duplicate_issue"].to_numpy()[m].mean())}
            res["near_duplicate"]["recall_by_kind"] = kinds
    kinds = getattr(case, "foreign_kind", None)
    if kinds is not None and "ood" in res:  # each kind of foreign sample: flagged, ranked, each other's neighbours?
        pos = np.flatnonzero(an.valid)
        nb = np.full((len(case.labels), an.graph.indices.shape[1]), -1)
        nb[pos] = np.where(an.graph.indices >= 0, pos[np.maximum(an.graph.indices, 0)], -1)
        clean_rows = ~case.is_foreign
        by_kind = {}
        for kind in sorted(set(kinds[case.is_foreign])):
            m = case.is_foreign & (kinds == kind)
            t = np.r_[np.ones(m.sum()), np.zeros(clean_rows.sum())]
            same = np.where(nb[m] >= 0, kinds[np.maximum(nb[m], 0)] == kind, False).mean(1)
            by_kind[kind] = {"n": int(m.sum()), "flagged": float(s["is_ood"].to_numpy()[m].mean()),
                             "neighbours_of_its_kind_median": float(np.median(same)),
                             **{f"auroc_{c}": float(roc_auc_score(t, np.r_[s[c].to_numpy()[m], s[c].to_numpy()[clean_rows]]))
                                for c in ("ood_score", "ood_knn_score", "ood_mahalanobis_score") if c in s}}
        res["ood"]["by_kind"] = by_kind
    # suggested label / action on real label errors (item 3)
    clean = ~case.is_noisy & ~case.is_foreign
    probe_acc = float((s["predicted_label"].to_numpy() == case.labels)[clean].mean())
    noisy = case.is_noisy
    sugg = s["suggested_label"].to_numpy()
    res["suggested_label"] = {
        "probe_accuracy_on_clean": probe_acc,
        "true_among_label_errors": float((sugg[noisy] == case.true_labels[noisy]).mean()) if noisy.any() else float("nan"),
        "true_among_flagged_label_errors": float((sugg[noisy & s["is_label_issue"].to_numpy()]
                                                  == case.true_labels[noisy & s["is_label_issue"].to_numpy()]).mean())
        if (noisy & s["is_label_issue"].to_numpy()).any() else float("nan"),
        "foreign_action_drop": float((s["suggested_action"].to_numpy()[case.is_foreign] == "drop").mean())
        if case.is_foreign.any() else float("nan")}
    res["thresholds"] = {k: float(v) for k, v in an.thresholds.items()}
    res["loadavg"] = open("/proc/loadavg").read().split()[:3]
    return res


def _fmt(v):
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else (f"{v:.3f}" if isinstance(v, float) else str(v))


def markdown(all_res: list[dict]) -> str:
    lines = ["Detection quality at the DEFAULT flags, dqwidgets vs cleanlab Datalab on the same features",
             "(Datalab with LogisticRegression 3-fold out-of-fold probabilities). best F1 = the best any threshold",
             "on the same score reaches; est. P = summary()'s estimated_precision; ECE of the score read as",
             "P(issue is real). Timings under shared load (loadavg per case).", "",
             "| case | issue | tool | flagged / true | precision | recall | F1 | best F1 | F1/best | AUROC | est. P | ECE |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in all_res:
        for issue in ("label_issue", "ood", "near_duplicate"):
            if issue not in r:
                continue
            for tool in ("dqwidgets", "cleanlab"):
                f = r[issue][tool]
                lines.append(f"| {r['case']} | {issue} | {tool} | {f['flagged']} / {f['true']} | {_fmt(f['precision'])} | "
                             f"{_fmt(f['recall'])} | {_fmt(f['f1'])} | {_fmt(f['best_f1'])} | {_fmt(f['f1_over_best'])} | "
                             f"{_fmt(f['auroc'])} | {_fmt(f.get('estimated_precision'))} | {_fmt(f.get('ece'))} |")
    lines += ["", "Near-copies flagged (in a duplicate group), by how they were made:", "",
              "| case | kind | dqwidgets | cleanlab |", "|---|---|---|---|"]
    for r in all_res:
        for kind, v in r.get("near_duplicate", {}).get("recall_by_kind", {}).items():
            lines.append(f"| {r['case']} | {kind} | {v['dqwidgets']:.3f} | {v['cleanlab']:.3f} |")
    lines += ["", "Foreign samples by kind (AUROC against the non-foreign samples; neighbours of its kind: median share",
              "of a member's graph neighbours that are of the same kind):", "",
              "| case | kind | n | flagged | neighbours of its kind | AUROC ood_score | kNN | class Gaussians |",
              "|---|---|---|---|---|---|---|---|"]
    for r in all_res:
        for kind, v in r.get("ood", {}).get("by_kind", {}).items():
            lines.append(f"| {r['case']} | {kind} | {v['n']} | {v['flagged']:.3f} | {v['neighbours_of_its_kind_median']:.3f} | "
                         f"{_fmt(v.get('auroc_ood_score'))} | {_fmt(v.get('auroc_ood_knn_score'))} | "
                         f"{_fmt(v.get('auroc_ood_mahalanobis_score'))} |")
    lines += ["", "Suggested label and action:", "",
              "| case | probe accuracy on clean | suggestion = truth (all label errors) | (flagged ones) | foreign -> drop |",
              "|---|---|---|---|---|"]
    for r in all_res:
        g = r["suggested_label"]
        lines.append(f"| {r['case']} | {_fmt(g['probe_accuracy_on_clean'])} | {_fmt(g['true_among_label_errors'])} | "
                     f"{_fmt(g['true_among_flagged_label_errors'])} | {_fmt(g['foreign_action_drop'])} |")
    lines += ["", "| case | n | dqwidgets s | cleanlab+LR s | loadavg |", "|---|---|---|---|---|"]
    for r in all_res:
        lines.append(f"| {r['case']} | {r['n']} | {r['seconds']['dqwidgets']:.1f} | "
                     f"{r['seconds']['cleanlab_with_lr_3fold']:.1f} | {' '.join(r['loadavg'])} |")
    return "\n".join(lines) + "\n"


def main(names: list[str]):
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_quality.json"

    def written() -> dict:  # read again before each write: another run may have written other cases since
        if not path.exists():
            return {}
        try:
            return {r["case"]: r for r in json.loads(path.read_text()).get("cases", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            return {}

    for name in names:
        print("case", name, flush=True)
        result = evaluate(name)
        old = written()
        old[name] = result
        ordered = [old[c] for c in CASE_NAMES if c in old]
        path.write_text(json.dumps({"cases": ordered}, indent=1, default=float))
        (RESULTS / "bench_quality.md").write_text(markdown(ordered))
    print((RESULTS / "bench_quality.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:] or CASE_NAMES)

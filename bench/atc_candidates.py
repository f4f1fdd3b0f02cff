"""Accuracy estimators compared with analyze's default (ATC on the neighbour agreement), measured in
bench_training.py on the same analyses, and the rule that picks one without looking at the test.

Every candidate is computed from what an analysis holds: the reference's out-of-fold probabilities,
labels, kNN graph and slices; the scored batch's probabilities and its k nearest reference samples.

- ``average_confidence`` (AC): mean max-softmax, the baseline.
- ``doc``: difference of confidences (Guillory, Deng, Zhou & Wang, "Predicting with Confidence on
  Unseen Distributions", ICCV 2021): reference accuracy − (AC on the reference − AC on the target).
- ``atc_ne`` / ``atc_ne_ts``: ATC on the probe's negative entropy (Garg et al., ICLR 2022), without
  and with temperature scaling fitted on the reference's out-of-fold probabilities first (the
  paper calibrates before thresholding).
- ``cot``: confidence optimal transport (Lu et al., "Characterizing Out-of-Distribution Error via
  Optimal Transport", NeurIPS 2023): 1 − the optimal-transport cost between the target's softmax
  vectors and one-hot labels drawn from the reference's label distribution (cost: total variation),
  solved with entropic regularisation. It assumes the target's labels are distributed like the
  reference's, which a slice of the reference is not.
- ``agreement``: ATC on the neighbour agreement (analyze's default).
- ``agreement_support``: the same, with a sample beyond the reference's support (its k-th neighbour
  farther than 99% of the reference's samples' k-th neighbours) counted as wrong.
- ``agreement_kernel90`` / ``agreement_kernel99``: the soft version: each neighbour's vote weighted
  by exp(−(d / h)²), h the 90th / 99th percentile of the reference's k-th-neighbour distances, plus
  one pseudo-vote at chance (1/C), so a sample whose labelled neighbours are all far scores like
  chance (kernel-weighted k-NN with a prior).
- ``agreement_slice_cut``: the same, with one cut per slice of the reference (a target sample
  uses the cut of its reference neighbours' most common slice).
- ``soft_agreement``: ATC on Σ_c p_c(x) q_c(x), the probe's probability that a random labelled
  neighbour's label is right (q: the neighbours' label shares).
- ``agreement_ne_mean``: the mean of the estimates of ATC on the agreement and ATC-NE (averaging two
  estimators that fail differently).

Diagnostics per split (:func:`compare`): ``shared_wrong``, the share of samples whose predicted class
is also their neighbours' majority class and is wrong (neither classifier can see those errors, so
any agreement score counts them right; the reference's share is what the cut already absorbs), and
``agreement_oracle_cut``, ATC on the agreement with the cut fitted on the clean test split's own
correctness (an oracle: if it errs as much, the error is not the threshold fit's).

Selection (:func:`choose`): a candidate replaces the default only if, over the splits it is chosen
on, its mean absolute error is lower than the default's by more than two standard errors of the
paired difference. :func:`leave_one_corruption_out` runs that rule once per corruption type with
that type's splits held out (pooled over the feature sets) and scores the candidate it picks on the
held-out type: the leave-one-corruption-out error is the estimate of how the choice generalises to
a shift nobody chose on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from dqwidgets.compute.atc import atc_accuracy_ties, confidence_score, fit_atc_cut
from dqwidgets.compute.knn import knn_query

DEFAULT = "agreement"
SUPPORT_PERCENTILE = 99.0
KERNEL_PERCENTILES = (90.0, 99.0)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def temperature(probs: np.ndarray, codes: np.ndarray) -> float:
    """Temperature scaling (Guo et al., ICML 2017) on log-probabilities: the T minimising the NLL."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_t):
        z = logp / np.exp(log_t)
        z = z - z.max(1, keepdims=True)
        return -(z[np.arange(len(codes)), codes] - np.log(np.exp(z).sum(1))).mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def cot_accuracy(probs: np.ndarray, label_share: np.ndarray, eps: float = 0.01, iters: int = 300) -> float:
    """1 − COT error: entropic OT (log-domain Sinkhorn) between the rows (mass 1/n each) and the
    classes (mass ``label_share``) with cost 1 − p_ik (total variation to the one-hot)."""
    n = len(probs)
    cost = 1.0 - probs
    log_a, log_b = np.full(n, -np.log(n)), np.log(np.maximum(label_share, 1e-12))
    f, g = np.zeros(n), np.zeros(probs.shape[1])
    for _ in range(iters):
        f = eps * (log_a - np.logaddexp.reduce((g[None] - cost) / eps, axis=1))
        g = eps * (log_b - np.logaddexp.reduce((f[:, None] - cost) / eps, axis=0))
    plan = np.exp((f[:, None] + g[None] - cost) / eps)
    return float(1.0 - (plan * cost).sum())


def _ties(scores: np.ndarray, cut) -> float:
    return atc_accuracy_ties(scores, cut)


class Candidates:
    """The per-sample scores and cuts of every candidate, fitted on the reference ``an``."""

    def __init__(self, an):
        v = np.flatnonzero(an.valid)
        self.k, self.metric = an.graph.k, an.graph.metric
        self.ref_X = an.features[v]
        self.codes = an.context.label_codes[v]
        self.P = an.pred_probs[v]
        self.pred = self.P.argmax(1)
        self.correct = self.pred == self.codes
        self.slice = an.samples["slice_id"].to_numpy()[v]
        self.C = self.P.shape[1]
        self.label_share = np.bincount(self.codes[self.codes >= 0], minlength=self.C) / (self.codes >= 0).sum()
        self.T = temperature(self.P[self.codes >= 0], self.codes[self.codes >= 0])
        nb, dist = an.graph.indices, an.graph.distances
        self.radius = float(np.percentile(dist[:, -1], SUPPORT_PERCENTILE))
        self.bandwidth = {q: float(np.percentile(dist[:, -1], q)) for q in KERNEL_PERCENTILES}
        self.ref = self._scores(self.P, nb, dist)
        lab = self.codes >= 0
        self.cuts = {name: fit_atc_cut(s[lab], self.correct[lab]) for name, s in self.ref.items()
                     if not name.startswith("_")}
        self.slice_cuts = {c: fit_atc_cut(self.ref["agreement"][lab & (self.slice == c)],
                                          self.correct[lab & (self.slice == c)])
                           for c in np.unique(self.slice[lab]) if c >= 0}
        self.ref_slice_of = self.slice

    def _scores(self, P: np.ndarray, nb: np.ndarray, dist: np.ndarray) -> dict:
        pred = P.argmax(1)
        nb_codes = self.codes[nb]
        lab = nb_codes >= 0
        hit = (nb_codes == pred[:, None]) & lab
        agree = hit.sum(1) / np.maximum(lab.sum(1), 1)
        counts = np.stack([((nb_codes == c) & lab).sum(1) for c in range(self.C)], 1)
        share = counts / np.maximum(lab.sum(1), 1)[:, None]
        PT = _softmax(np.log(np.clip(P, 1e-12, 1.0)) / self.T)
        out = {"atc_ne": confidence_score(P, "negative_entropy"), "atc_ne_ts": confidence_score(PT, "negative_entropy"),
               "agreement": agree, "agreement_support": np.where(dist[:, -1] > self.radius, -1.0, agree),
               "soft_agreement": (P * share).sum(1), "_PT": PT, "_nb": nb,
               "_majority": np.where(lab.any(1), counts.argmax(1), -1)}
        for q, h in self.bandwidth.items():
            w = np.exp(-(dist / h) ** 2) * lab
            out[f"agreement_kernel{q:g}"] = ((w * hit).sum(1) + 1.0 / self.C) / (w.sum(1) + 1.0)
        return out

    def target(self, an_new) -> dict:
        """The scores of a batch analysed with ``reference=`` this analysis."""
        v = np.flatnonzero(an_new.valid)
        q = knn_query(an_new.features[v], self.ref_X, self.k, self.metric, "cpu")
        return self._scores(an_new.pred_probs[v], q.indices, q.distances)

    def estimates(self, sc: dict, P: np.ndarray, rows: np.ndarray) -> dict:
        """Every candidate's estimated accuracy of the target rows ``rows``."""
        out = {"average_confidence": float(P[rows].max(1).mean()),
               "doc": float(self.correct[self.codes >= 0].mean() - self.P[self.codes >= 0].max(1).mean()
                            + P[rows].max(1).mean()),
               "cot": cot_accuracy(P[rows], self.label_share)}
        for name in ("atc_ne", "atc_ne_ts", "agreement", "agreement_support", "soft_agreement",
                     *(f"agreement_kernel{q:g}" for q in KERNEL_PERCENTILES)):
            out[name] = _ties(sc[name][rows], self.cuts[name])
        out["agreement_ne_mean"] = (out["agreement"] + out["atc_ne"]) / 2
        # one cut per reference slice: a target sample takes its neighbours' most common slice
        nb_slice = self.ref_slice_of[sc["_nb"][rows]]
        home = np.array([np.bincount(r[r >= 0]).argmax() if (r >= 0).any() else -1 for r in nb_slice])
        a = sc["agreement"][rows]
        total = 0.0
        for c, (t, w) in self.slice_cuts.items():
            s = a[home == c]
            total += float(((s > t) + w * (s == t)).sum())
        rest = ~np.isin(home, list(self.slice_cuts))
        total += float(((a[rest] > self.cuts["agreement"][0]) + self.cuts["agreement"][1]
                        * (a[rest] == self.cuts["agreement"][0])).sum())
        out["agreement_slice_cut"] = total / max(len(rows), 1)
        return out


def corruption_of(split: str) -> str:
    """"blur-3" -> "blur"."""
    return str(split).rsplit("-", 1)[0]


def compare(an, an_new, split_col: np.ndarray, true_codes: np.ndarray, clean: str = "clean") -> dict:
    """Per split of ``an_new`` and per slice of ``an``: every candidate's estimate, the true
    accuracy, the diagnostics (module docstring) and the absolute errors per shifted split."""
    cand = Candidates(an)
    sc = cand.target(an_new)
    P = an_new.pred_probs[np.flatnonzero(an_new.valid)]
    codes = np.asarray(true_codes)[np.flatnonzero(an_new.valid)]
    splits = np.asarray(split_col)[np.flatnonzero(an_new.valid)]
    pred = P.argmax(1)
    wrong_shared = (pred != codes) & (pred == sc["_majority"])
    m_clean = splits == clean
    oracle = fit_atc_cut(sc["agreement"][m_clean], (pred == codes)[m_clean]) if m_clean.any() else None
    rows = []
    for s in pd.unique(splits):
        m = np.flatnonzero(splits == s)
        rows.append({"split": s, "true": float((pred[m] == codes[m]).mean()), **cand.estimates(sc, P, m),
                     "_shared_wrong": float(wrong_shared[m].mean()),
                     "_agreement_oracle_cut": _ties(sc["agreement"][m], oracle) if oracle else np.nan})
    by_split = pd.DataFrame(rows).set_index("split")
    rows = []
    lab = cand.codes >= 0
    for c in np.unique(cand.slice[lab]):
        m = np.flatnonzero(lab & (cand.slice == c))
        rows.append({"slice": int(c), "n": int(len(m)), "true": float(cand.correct[m].mean()),
                     **cand.estimates(cand.ref, cand.P, m)})
    by_slice = pd.DataFrame(rows).set_index("slice")
    names = [c for c in by_split.columns if c != "true" and not c.startswith("_")]
    shifted = by_split.drop(index=clean, errors="ignore")
    err = shifted[names].sub(shifted["true"], axis=0).abs()
    err_slice = by_slice[names].sub(by_slice["true"], axis=0).abs()
    ref_shared = float(((cand.pred != cand.codes) & (cand.pred == cand.ref["_majority"]))[lab].mean())
    diag = by_split[["true", "agreement", "_agreement_oracle_cut", "_shared_wrong"]].rename(
        columns=lambda c: c.lstrip("_"))
    return {"temperature": cand.T, "kernel_bandwidth": cand.bandwidth, "reference_shared_wrong": ref_shared,
            "table_splits": by_split[["true"] + names].reset_index().to_dict(orient="records"),
            "table_slices": by_slice.reset_index().to_dict(orient="records"),
            "diagnostics": diag.reset_index().to_dict(orient="records"),
            "errors_by_split": err.to_dict(),
            "mae_all": err.mean().to_dict(), "mae_slices": err_slice.mean().to_dict(),
            "mae_by_corruption": err.groupby(err.index.map(corruption_of)).mean().to_dict(),
            "mae_oracle_cut": float((diag.drop(index=clean, errors="ignore")["agreement_oracle_cut"]
                                     - diag.drop(index=clean, errors="ignore")["true"]).abs().mean()),
            "slice_binomial_se": float(np.sqrt(by_slice["true"] * (1 - by_slice["true"]) / by_slice["n"]).mean())}


def _pooled(runs: list[dict], keep) -> dict[str, np.ndarray]:
    """Per candidate: the errors of the shifted splits whose corruption passes ``keep``, over every run."""
    names = list(runs[0]["errors_by_split"])
    return {n: np.array([e for r in runs for s, e in r["errors_by_split"][n].items() if keep(corruption_of(s))])
            for n in names}


def choose(runs: list[dict], default: str = DEFAULT, keep=lambda corruption: True) -> dict:
    """The selection rule over several feature sets' :func:`compare` results, on the shifted splits
    whose corruption passes ``keep``: the candidate with the lowest pooled MAE replaces ``default``
    only if it beats it by more than two standard errors of the paired per-split difference."""
    errs = _pooled(runs, keep)
    mae = {n: float(e.mean()) for n, e in errs.items()}
    best = min(mae, key=mae.get)
    diff = errs[default] - errs[best]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    switch = best != default and diff.mean() > 2 * se
    return {"selection_mae": mae, "lowest": best, "lowest_gain": float(diff.mean()), "gain_se": se,
            "chosen": best if switch else default, "n_selection_splits": int(len(diff))}


def leave_one_corruption_out(runs: list[dict], default: str = DEFAULT) -> dict:
    """For each corruption type: :func:`choose` on the other types' splits, and the chosen
    candidate's errors on the held-out type's splits (per run). ``loco_mae[i]``: run i's mean error
    over all its shifted splits, each scored by the candidate chosen without its corruption type;
    ``default_mae[i]``: the same splits scored by ``default``; ``lowest_mae[i]``: by whichever
    candidate had the lowest MAE on the other types (no two-SE rule)."""
    kinds = sorted({corruption_of(s) for r in runs for s in r["errors_by_split"][default]})
    folds, per_run = {}, [{"loco": [], "default": [], "lowest": []} for _ in runs]
    for h in kinds:
        pick = choose(runs, default, keep=lambda c, h=h: c != h)
        held = [{s: e for s, e in r["errors_by_split"][pick["chosen"]].items() if corruption_of(s) == h} for r in runs]
        folds[h] = {"chosen": pick["chosen"], "lowest": pick["lowest"],
                    "held_out_mae": [float(np.mean(list(x.values()))) for x in held],
                    "held_out_mae_lowest": [float(np.mean([e for s, e in r["errors_by_split"][pick["lowest"]].items()
                                                           if corruption_of(s) == h])) for r in runs],
                    "held_out_mae_default": [float(np.mean([e for s, e in r["errors_by_split"][default].items()
                                                            if corruption_of(s) == h])) for r in runs]}
        for i, r in enumerate(runs):
            for key, name in (("loco", pick["chosen"]), ("default", default), ("lowest", pick["lowest"])):
                per_run[i][key] += [e for s, e in r["errors_by_split"][name].items() if corruption_of(s) == h]
    return {"folds": folds, "loco_mae": [float(np.mean(x["loco"])) for x in per_run],
            "lowest_mae": [float(np.mean(x["lowest"])) for x in per_run],
            "default_mae": [float(np.mean(x["default"])) for x in per_run]}

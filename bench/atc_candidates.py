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
- ``agreement_slice_cut``: the same, with one cut per slice of the reference (a target sample
  uses the cut of its reference neighbours' most common slice).
- ``soft_agreement``: ATC on Σ_c p_c(x) q_c(x), the probe's probability that a random labelled
  neighbour's label is right (q: the neighbours' label shares).

Selection (:func:`choose`): a candidate replaces the default only if, over the selection splits
(blur and contrast), its mean absolute error is lower than the default's by more than two
standard errors of the paired difference; the other splits (noise, rotation) are held out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from dqwidgets.compute.atc import atc_accuracy_ties, confidence_score, fit_atc_cut
from dqwidgets.compute.knn import knn_query

DEFAULT = "agreement"
SELECTION = ("blur", "contrast")
SUPPORT_PERCENTILE = 99.0


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
        self.ref = self._scores(self.P, nb, dist[:, -1])
        lab = self.codes >= 0
        self.cuts = {name: fit_atc_cut(s[lab], self.correct[lab]) for name, s in self.ref.items()
                     if not name.startswith("_")}
        self.slice_cuts = {c: fit_atc_cut(self.ref["agreement"][lab & (self.slice == c)],
                                          self.correct[lab & (self.slice == c)])
                           for c in np.unique(self.slice[lab]) if c >= 0}
        self.ref_slice_of = self.slice

    def _scores(self, P: np.ndarray, nb: np.ndarray, kth: np.ndarray) -> dict:
        pred = P.argmax(1)
        nb_codes = self.codes[nb]
        lab = nb_codes >= 0
        agree = ((nb_codes == pred[:, None]) & lab).sum(1) / np.maximum(lab.sum(1), 1)
        share = np.stack([((nb_codes == c) & lab).sum(1) for c in range(self.C)], 1) / np.maximum(lab.sum(1), 1)[:, None]
        PT = _softmax(np.log(np.clip(P, 1e-12, 1.0)) / self.T)
        return {"atc_ne": confidence_score(P, "negative_entropy"), "atc_ne_ts": confidence_score(PT, "negative_entropy"),
                "agreement": agree, "agreement_support": np.where(kth > self.radius, -1.0, agree),
                "soft_agreement": (P * share).sum(1), "_PT": PT, "_nb": nb}

    def target(self, an_new) -> dict:
        """The scores of a batch analysed with ``reference=`` this analysis."""
        v = np.flatnonzero(an_new.valid)
        q = knn_query(an_new.features[v], self.ref_X, self.k, self.metric, "cpu")
        return self._scores(an_new.pred_probs[v], q.indices, q.distances[:, -1])

    def estimates(self, sc: dict, P: np.ndarray, rows: np.ndarray) -> dict:
        """Every candidate's estimated accuracy of the target rows ``rows``."""
        out = {"average_confidence": float(P[rows].max(1).mean()),
               "doc": float(self.correct[self.codes >= 0].mean() - self.P[self.codes >= 0].max(1).mean()
                            + P[rows].max(1).mean()),
               "cot": cot_accuracy(P[rows], self.label_share)}
        for name in ("atc_ne", "atc_ne_ts", "agreement", "agreement_support", "soft_agreement"):
            out[name] = _ties(sc[name][rows], self.cuts[name])
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


def compare(an, an_new, split_col: np.ndarray, true_codes: np.ndarray) -> dict:
    """Per split of ``an_new`` and per slice of ``an``: every candidate's estimate, the true
    accuracy and the absolute errors; the MAE over the selection and held-out splits."""
    cand = Candidates(an)
    sc = cand.target(an_new)
    P = an_new.pred_probs[np.flatnonzero(an_new.valid)]
    codes = np.asarray(true_codes)[np.flatnonzero(an_new.valid)]
    splits = np.asarray(split_col)[np.flatnonzero(an_new.valid)]
    rows = []
    for s in pd.unique(splits):
        m = np.flatnonzero(splits == s)
        rows.append({"split": s, "true": float((P[m].argmax(1) == codes[m]).mean()), **cand.estimates(sc, P, m)})
    by_split = pd.DataFrame(rows).set_index("split")
    rows = []
    lab = cand.codes >= 0
    for c in np.unique(cand.slice[lab]):
        m = np.flatnonzero(lab & (cand.slice == c))
        rows.append({"slice": int(c), "true": float(cand.correct[m].mean()), **cand.estimates(cand.ref, cand.P, m)})
    by_slice = pd.DataFrame(rows).set_index("slice")
    shifted = by_split.drop(index="clean", errors="ignore")
    err = shifted.drop(columns="true").sub(shifted["true"], axis=0).abs()
    sel = err.index.str.startswith(SELECTION)
    err_slice = by_slice.drop(columns="true").sub(by_slice["true"], axis=0).abs()
    return {"temperature": cand.T, "table_splits": by_split.reset_index().to_dict(orient="records"),
            "table_slices": by_slice.reset_index().to_dict(orient="records"),
            "errors_selection": err[sel].to_dict(orient="list"), "errors_held_out": err[~sel].to_dict(orient="list"),
            "mae_selection": err[sel].mean().to_dict(), "mae_held_out": err[~sel].mean().to_dict(),
            "mae_all": err.mean().to_dict(), "mae_slices": err_slice.mean().to_dict()}


def choose(runs: list[dict], default: str = DEFAULT) -> dict:
    """The selection rule over several feature sets' :func:`compare` results: pooled over their
    selection splits, the candidate with the lowest MAE replaces ``default`` only if it beats it by
    more than two standard errors of the paired per-split difference."""
    names = list(runs[0]["mae_selection"])
    errs = {n: np.concatenate([np.asarray(r["errors_selection"][n]) for r in runs]) for n in names}
    mae = {n: float(e.mean()) for n, e in errs.items()}
    best = min(mae, key=mae.get)
    diff = errs[default] - errs[best]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    switch = best != default and diff.mean() > 2 * se
    return {"selection_mae": mae, "lowest": best, "lowest_gain": float(diff.mean()), "gain_se": se,
            "chosen": best if switch else default, "n_selection_splits": int(len(diff))}

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
- ``fold_agreement``: ATC on the agreement of fold probes with nested folds (:class:`FoldModels`);
  ``agreement_fold``: ATC on the neighbour agreement plus half the fold agreement (the latter
  orders the neighbour agreement's ties).
- ``agreement_mixup_cut`` / ``agreement_kernel90_mixup_cut``: a shift-aware recalibration: the
  cut of ATC on the (kernel-weighted) agreement fitted on the reference's out-of-fold samples and
  on mixed copies of them (mixup, :class:`FoldModels`), a synthetic shift of another family than
  the bench's four corruptions, with known labels.
- ``calibrated_mean``: the mean over the batch of P(correct | agreement, kernel agreement, max
  softmax, negative entropy, log k-th neighbour distance), a logistic regression fitted on the
  reference (cross-fitted by fold for the reference's own slices) and its mixed copies.
- ``agreement_cross_view``: ATC on the neighbour agreement plus the agreement of the same
  prediction with the labels of the k nearest reference samples in a second view of the raw input
  (here the images' raw pixels, cosine): two representations err on a shifted sample less alike
  than two classifiers on one (Jiang et al.'s premise that disagreement needs diverse models).
- ``aline_d``: ALine-D (Baek, Jiang, Raghunathan & Kolter, "Agreement-on-the-line: Predicting the
  Performance of Neural Networks under Distribution Shift", NeurIPS 2022) over a family of nine
  models fitted on the reference (:class:`FoldModels`).

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

    def __init__(self, an, view=None):
        v = np.flatnonzero(an.valid)
        self.view = None if view is None else np.asarray(view, dtype=np.float32)[v]
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
        # fold probes (nested), the ALine family and mixed copies (FoldModels)
        self.fm = fm = FoldModels(self.ref_X, self.codes, self.P, self.metric, self.k)
        self.ref["fold_agreement"] = np.full(len(self.codes), np.nan)
        self.ref["fold_agreement"][fm.lab] = fm.ref_fold_agreement
        self.ref["agreement_fold"] = self.ref["agreement"] + self.ref["fold_agreement"] / 2
        self.ref["_family"] = {n: np.full(len(self.codes), -1) for n in fm.family_oof}
        for n, v in fm.family_oof.items():
            self.ref["_family"][n][fm.lab] = v
        if self.view is not None:  # a second view: the labels of the k nearest reference samples there, self excluded
            q = knn_query(self.view, self.view, self.k + 1, "cosine", "cpu")
            order = np.argsort(q.indices == np.arange(len(q.indices))[:, None], axis=1, kind="stable")[:, :self.k]
            self.ref["agreement_cross_view"] = self.ref["agreement"] + self._view_agreement(
                self.pred, np.take_along_axis(q.indices, order, 1))
        self.cuts = {name: fit_atc_cut(s[lab], self.correct[lab]) for name, s in self.ref.items()
                     if not name.startswith("_")}
        # shift-aware recalibration: the cut fitted on the reference and its mixed copies together
        mixed = [self._scores(m["P"], fm.lab[m["nb"]], m["dist"]) for m in fm.mixed]
        mixed_correct = [m["P"].argmax(1) == m["y"] for m in fm.mixed]
        self.mix_cuts = {name: fit_atc_cut(np.concatenate([self.ref[name][lab]] + [s[name] for s in mixed]),
                                           np.concatenate([self.correct[lab]] + mixed_correct))
                         for name in ("agreement", "agreement_kernel90")}
        # calibrated correctness: logistic regression on the reference (cross-fitted there) and the mixed copies
        from sklearn.linear_model import LogisticRegression

        F_ref = self._calibration_features(self.ref, self.P, dist)[fm.lab]
        F_mix = np.vstack([self._calibration_features(s, m["P"], m["dist"]) for s, m in zip(mixed, fm.mixed)])
        c_mix = np.concatenate(mixed_correct)
        fold_mix = np.concatenate([np.sort(fm.fold) for _ in fm.mixed])  # mixed copies are made fold by fold
        c_ref = self.correct[fm.lab]
        self.calibrated_ref = np.full(len(self.codes), np.nan)
        for f in range(FOLDS):
            fit = LogisticRegression(C=10.0, max_iter=1000).fit(
                np.vstack([F_ref[fm.fold != f], F_mix[fold_mix != f]]),
                np.concatenate([c_ref[fm.fold != f], c_mix[fold_mix != f]]))
            self.calibrated_ref[fm.lab[fm.fold == f]] = fit.predict_proba(F_ref[fm.fold == f])[:, 1]
        self.calibration = LogisticRegression(C=10.0, max_iter=1000).fit(np.vstack([F_ref, F_mix]),
                                                                         np.concatenate([c_ref, c_mix]))
        self.ref["_calibrated"] = self.calibrated_ref
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

    def _calibration_features(self, sc: dict, P: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """CALIBRATION_FEATURES per row: the two agreements, max softmax, negative entropy and the log of
        the k-th neighbour distance over the reference's 90th percentile of it."""
        return np.stack([sc["agreement"], sc["agreement_kernel90"], P.max(1), sc["atc_ne"],
                         np.log(np.maximum(dist[:, -1], 1e-12) / self.bandwidth[90.0])], 1)

    def _view_agreement(self, pred: np.ndarray, nb: np.ndarray) -> np.ndarray:
        nb_codes = self.codes[nb]
        return ((nb_codes == pred[:, None]) & (nb_codes >= 0)).sum(1) / np.maximum((nb_codes >= 0).sum(1), 1)

    def target(self, an_new, view=None) -> dict:
        """The scores of a batch analysed with ``reference=`` this analysis (``view``: its rows in the
        second view, when the reference has one)."""
        v = np.flatnonzero(an_new.valid)
        Q, P = an_new.features[v], an_new.pred_probs[v]
        q = knn_query(Q, self.ref_X, self.k, self.metric, "cpu")
        out = self._scores(P, q.indices, q.distances)
        out.update(self.fm.target(Q, P))
        out["agreement_fold"] = out["agreement"] + out["fold_agreement"] / 2
        out["_calibrated"] = self.calibration.predict_proba(self._calibration_features(out, P, q.distances))[:, 1]
        if self.view is not None:
            q2 = knn_query(np.asarray(view, dtype=np.float32)[v], self.view, self.k, "cosine", "cpu")
            out["agreement_cross_view"] = out["agreement"] + self._view_agreement(P.argmax(1), q2.indices)
        return out

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
        if "agreement_cross_view" in sc:
            out["agreement_cross_view"] = _ties(sc["agreement_cross_view"][rows], self.cuts["agreement_cross_view"])
        for name in ("fold_agreement", "agreement_fold"):
            out[name] = _ties(sc[name][rows], self.cuts[name])
        for name, cut in self.mix_cuts.items():
            out[f"{name}_mixup_cut"] = _ties(sc[name][rows], cut)
        out["calibrated_mean"] = float(np.nanmean(sc["_calibrated"][rows]))
        out["aline_d"] = aline_d(self.fm.family_oof, self.fm.y, sc["_family"], rows)
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


def compare(an, an_new, split_col: np.ndarray, true_codes: np.ndarray, clean: str = "clean",
            views: tuple | None = None) -> dict:
    """Per split of ``an_new`` and per slice of ``an``: every candidate's estimate, the true
    accuracy, the diagnostics (module docstring) and the absolute errors per shifted split.
    ``views``: (reference rows, batch rows) of a second view of the same samples, for
    ``agreement_cross_view``."""
    cand = Candidates(an, None if views is None else views[0])
    sc = cand.target(an_new, None if views is None else views[1])
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


# ------------------------------------------------------------------ fold probes, a model family, synthetic shift
# The candidates of this section need models the analysis does not keep; they are refitted here on the
# reference's labelled rows with the probe's recipe (standardised softmax regression, L2 1e-4, L-BFGS).
FOLDS = 5
MIXUP_WEIGHTS = (0.1, 0.2, 0.3, 0.4)  # weight of the other sample in a mixed copy (the label stays the first's)
CALIBRATION_FEATURES = ("agreement", "agreement_kernel90", "msp", "atc_ne", "log_kth_distance")


def _fit_linear(X: np.ndarray, y: np.ndarray, C: int, l2: float = 1e-4):
    """The probe's recipe on (X, y): returns a function rows -> probabilities."""
    import torch

    from dqwidgets.compute.probe import fit_softmax_regression

    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    mean, std = Xt.mean(0), Xt.std(0).clamp_min(1e-6)
    W, b = fit_softmax_regression((Xt - mean) / std, torch.as_tensor(np.asarray(y, dtype=np.int64)), C, l2, 50)

    def predict(Q):
        Qt = torch.as_tensor(np.asarray(Q, dtype=np.float32))
        return torch.softmax(((Qt - mean) / std) @ W + b, 1).numpy()

    return predict


def _knn_votes(X, y, C, k, metric):
    def predict(Q):
        idx = knn_query(Q, X, k, metric, "cpu").indices
        return np.stack([(y[idx] == c).sum(1) for c in range(C)], 1) / k

    return predict


def _centroids(X, y, C):
    mean, std = X.mean(0), X.std(0) + 1e-6
    mu = np.stack([((X[y == c] - mean) / std).mean(0) for c in range(C)])

    def predict(Q):
        Z = (Q - mean) / std
        d = (Z * Z).sum(1)[:, None] - 2 * Z @ mu.T + (mu * mu).sum(1)[None]
        return np.exp(-(d - d.min(1, keepdims=True)) / Z.shape[1])

    return predict


class FoldModels:
    """Models fitted on the reference's labelled rows, each applied out of fold to the reference
    and, fitted on all of it, to a target batch.

    - ``fold_agreement`` (nested folds): for a reference sample in fold f, the share of the four
      probes trained on three of the other four folds whose prediction equals its out-of-fold
      prediction; for a target sample, the share of the five fold probes (each trained on four
      folds) whose prediction equals the full probe's. Disagreement between probes trained on
      different data as a confidence (Jiang, Nagarajan, Baek & Kolter, ICLR 2022).
    - the family of ALine (Baek, Jiang, Raghunathan & Kolter, "Agreement-on-the-line", NeurIPS
      2022): the probe, the probe on three random quarters of the features, the probe with a strong
      L2 penalty (0.1), k-NN majority votes at k = 1, 15, 50 and a nearest-centroid classifier.
    - mixed copies of the reference (mixup, Zhang et al. ICLR 2018, as a generic synthetic shift that
      is none of the bench's corruptions): x' = (1 − λ) x_i + λ x_j within one fold, label y_i,
      predicted by the probe that did not see the fold, with their k nearest reference samples
      other than i and j: labelled samples off the reference's distribution, to fit a cut or a
      calibration on.
    """

    def __init__(self, X, codes, P_oof, metric, k, seed=0):
        from dqwidgets.compute.probe import fold_ids

        self.C = P_oof.shape[1]
        lab = np.flatnonzero(codes >= 0)
        self.X, self.y, self.lab = X[lab], codes[lab], lab
        self.metric, self.k = metric, k
        C, X, y = self.C, self.X, self.y
        fold = fold_ids(y, FOLDS, seed + 1)
        self.fold = fold
        pred = P_oof[lab].argmax(1)
        # nested folds
        self.fold_probes = [_fit_linear(X[fold != f], y[fold != f], C) for f in range(FOLDS)]
        agree = np.zeros(len(y))
        for f in range(FOLDS):
            te = fold == f
            for g in range(FOLDS):
                if g != f:
                    tr = (fold != f) & (fold != g)
                    agree[te] += (_fit_linear(X[tr], y[tr], C)(X[te]).argmax(1) == pred[te]) / (FOLDS - 1)
        self.ref_fold_agreement = agree
        # the ALine family: out of fold on the reference, fitted on all of it for a target
        rng = np.random.default_rng(seed)
        D = X.shape[1]
        makers = {"probe": None}
        for i in range(3):
            cols = np.sort(rng.choice(D, max(D // 4, 2), replace=False))
            makers[f"probe_quarter{i}"] = (lambda Xa, ya, cols=cols: (lambda Q, m=_fit_linear(Xa[:, cols], ya, C):
                                                                         m(Q[:, cols])))
        makers["probe_l2_0.1"] = lambda Xa, ya: _fit_linear(Xa, ya, C, l2=0.1)
        for kk in (1, 15, 50):
            makers[f"knn{kk}"] = lambda Xa, ya, kk=kk: _knn_votes(Xa, ya, C, kk, metric)
        makers["centroid"] = lambda Xa, ya: _centroids(Xa, ya, C)
        self.family_oof, self.family_full = {"probe": pred}, {}
        for name, make in makers.items():
            if make is None:
                continue
            oof = np.empty(len(y), dtype=np.int64)
            for f in range(FOLDS):
                oof[fold == f] = make(X[fold != f], y[fold != f])(X[fold == f]).argmax(1)
            self.family_oof[name] = oof
            self.family_full[name] = make(X, y)
        # mixed copies, each fold's predicted by the probe that did not see it
        self.mixed = []
        for lam in MIXUP_WEIGHTS:
            rows, Ps, others = [], [], []
            for f in range(FOLDS):
                te = np.flatnonzero(fold == f)
                j = rng.permutation(te)
                Xm = (1 - lam) * X[te] + lam * X[j]
                Ps.append(self.fold_probes[f](Xm))
                rows.append(np.stack([te, j], 1))
                others.append(Xm)
            rows, Ps, Xm = np.concatenate(rows), np.concatenate(Ps), np.concatenate(others)
            q = knn_query(Xm, X, k + 2, metric, "cpu")
            keep = (q.indices != rows[:, :1]) & (q.indices != rows[:, 1:])
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the first k neighbours other than i, j
            nb = np.take_along_axis(q.indices, order, 1)
            dist = np.take_along_axis(q.distances, order, 1)
            self.mixed.append({"lam": lam, "P": Ps, "y": y[rows[:, 0]], "nb": nb, "dist": dist})

    def target(self, Q, P) -> dict:
        """The fold agreement and the family's predictions of the target rows ``Q`` (probabilities ``P``)."""
        pred = P.argmax(1)
        agree = np.mean([m(Q).argmax(1) == pred for m in self.fold_probes], 0)
        fam = {"probe": pred} | {n: m(Q).argmax(1) for n, m in self.family_full.items()}
        return {"fold_agreement": agree, "_family": fam}


def aline_d(family_ref: dict, y_ref: np.ndarray, family_target: dict, rows, target: str = "probe") -> float:
    """ALine-D (Baek et al. 2022): with Φ⁻¹ the probit, fit Φ⁻¹(agreement on the target) = a Φ⁻¹(agreement
    in distribution) + b over every pair of models, then solve the pairs' equations
    ½(Φ⁻¹ acc_i + Φ⁻¹ acc_j) = Φ⁻¹ agr_ij(target) + a [½(Φ⁻¹ acc_i(ref) + Φ⁻¹ acc_j(ref)) − Φ⁻¹ agr_ij(ref)]
    for the models' target accuracies (least squares); returns ``target``'s."""
    from scipy.stats import norm

    def probit(x):
        return norm.ppf(np.clip(x, 1e-4, 1 - 1e-4))

    names = list(family_ref)
    pairs = [(i, j) for a, i in enumerate(names) for j in names[a + 1:]]
    acc = {n: probit((family_ref[n] == y_ref).mean()) for n in names}
    aid = np.array([probit((family_ref[i] == family_ref[j]).mean()) for i, j in pairs])
    aood = np.array([probit((family_target[i][rows] == family_target[j][rows]).mean()) for i, j in pairs])
    slope, _ = np.linalg.lstsq(np.vstack([aid, np.ones_like(aid)]).T, aood, rcond=None)[0]
    M = np.zeros((len(pairs), len(names)))
    rhs = aood + slope * (np.array([(acc[i] + acc[j]) / 2 for i, j in pairs]) - aid)
    for q, (i, j) in enumerate(pairs):
        M[q, names.index(i)] += 0.5
        M[q, names.index(j)] += 0.5
    return float(norm.cdf(np.linalg.lstsq(M, rhs, rcond=None)[0][names.index(target)]))

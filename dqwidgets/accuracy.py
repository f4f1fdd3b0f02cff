"""Estimated accuracy of every split, slice or new batch, labelled or not (ATC; Garg et al., ICLR 2022).

The threshold is fitted once per analysis on the labelled samples' out-of-fold probabilities (the
probe's, or the user's ``pred_probs``); a batch analysed with ``reference=an`` uses its reference's
threshold (and is scored by the reference's probe). See :mod:`dqwidgets.compute.atc`.

The default score is the neighbour agreement (``samples.neighbour_agreement``): the share of a
sample's labelled kNN neighbours — in the reference, for a batch analysed with ``reference=`` —
whose label is the predicted one (ATC with a disagreement-based score, in the spirit of Jiang,
Nagarajan, Baek & Kolter, "Assessing Generalization of SGD via Disagreement", ICLR 2022). On the
planted corruptions of bench/results/bench_training.md it follows the accuracy where the probe's
own confidence does not (Gaussian noise, rotation); the probability scores ``negative_entropy``
(ATC-NE, the paper's recommendation) and ``max_softmax`` (ATC-MC) stay selectable.

How it was chosen, and where it errs (bench/atc_candidates.py): eighteen estimators (DoC, COT,
ATC-NE with and without temperature scaling, support-aware and kernel-weighted agreements,
averages, the agreement of fold probes with nested folds, ALine-D over a family of nine models, the
cut recalibrated on mixed copies of the reference, a calibrated P(correct), the agreement with the
neighbours in a second view of the raw input) were compared on the
same analyses, and the choice was evaluated leave-one-corruption-out (chosen on three corruption
types, scored on the fourth): no candidate beat the agreement by more than two standard errors
when held out, and none reaches issue #14's goal of 3 points over the shifted splits on both feature
sets (tests/test_atc_planted_shift.py keeps it as a known failure). Its error is not the threshold fit (a cut fitted on the
clean test split's own correctness errs as much) nor the out-of-fold vs full-reference probe (the
clean split is estimated within its binomial error): it is the samples whose predicted class is also
their neighbours' majority class and is wrong. Both classifiers read the same embedding, so where a
shift moves samples onto another class's region (strong rotation, strong noise for EfficientNet
features) they agree on the wrong class and the estimate stays too high. On far shifted batches
(large ``ood_score``) expect errors of several points, mostly upwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dqwidgets.compute.atc import (SCORES as PROBABILITY_SCORES, atc_accuracy_ties, confidence_score, fit_atc_cut,
                                   neighbour_agreement)

AGREEMENT = "neighbour_agreement"
SCORES = (AGREEMENT,) + PROBABILITY_SCORES
DEFAULT_SCORE = AGREEMENT
_BLOCK = 1 << 17  # rows per block of the scores' N x C work arrays
BY = ("split", "slice")


@dataclass(frozen=True)
class AtcThreshold:
    """The ATC cut fitted on labelled out-of-fold probabilities."""
    threshold: float
    score: str
    n_fitted: int
    fitted_accuracy: float
    tie_weight: float = 0.0  # share of the samples scoring exactly ``threshold`` counted as correct

    @property
    def cut(self) -> tuple[float, float]:
        return self.threshold, self.tie_weight


def sample_scores(probs: np.ndarray, agreement: np.ndarray | None, score: str) -> np.ndarray:
    """The ATC score of every row (NaN where it is undefined)."""
    has = np.isfinite(probs).all(1)
    if score == AGREEMENT:
        return np.full(len(probs), np.nan) if agreement is None else np.where(has, agreement, np.nan)
    out = np.full(len(probs), np.nan)
    for s in range(0, len(probs), _BLOCK):  # row blocks: float64 temporaries _BLOCK x C (whole-N ~640 MB at 1M x 20)
        h = has[s:s + _BLOCK]
        out[s:s + _BLOCK][h] = confidence_score(probs[s:s + _BLOCK][h], score)
    return out


def _predicted(probs: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(probs).argmax(1)``, ``_BLOCK`` rows at a time (no N x C copy)."""
    out = np.empty(len(probs), np.int64)
    for s in range(0, len(probs), _BLOCK):
        out[s:s + _BLOCK] = np.nan_to_num(probs[s:s + _BLOCK]).argmax(1)
    return out


def fit_threshold(probs: np.ndarray | None, label_codes: np.ndarray, score: str = DEFAULT_SCORE,
                  agreement: np.ndarray | None = None) -> AtcThreshold | None:
    """The ATC cut from the labelled rows (finite score, code >= 0); None without any. ``agreement``:
    the neighbour agreement per row, needed for that score."""
    if probs is None:
        return None
    sc = sample_scores(probs, agreement, score)
    ok = (np.asarray(label_codes) >= 0) & np.isfinite(sc)
    if ok.sum() == 0:
        return None
    y = np.asarray(label_codes)[ok]
    correct = _predicted(probs)[ok] == y
    t, w = fit_atc_cut(sc[ok], correct)
    return AtcThreshold(t, score, int(ok.sum()), float(correct.mean()), w)


def agreement_column(probs: np.ndarray | None, neighbours: np.ndarray, neighbour_codes: np.ndarray) -> np.ndarray | None:
    """``samples.neighbour_agreement`` over the graph rows: the share of each row's labelled
    neighbours (``neighbours`` index ``neighbour_codes``, -1 = unlabelled) whose label is the row's
    predicted class; None without probabilities."""
    if probs is None:
        return None
    pred = _predicted(probs)
    out = neighbour_agreement(np.asarray(neighbour_codes)[neighbours], pred)
    return np.where(np.isfinite(probs).all(1), out, np.nan)


def accuracy_table(probs: np.ndarray | None, label_codes: np.ndarray | None, groups: pd.Series,
                   atc: AtcThreshold | None, name: str, agreement: np.ndarray | None = None) -> pd.DataFrame:
    """One row per group value: ``n`` (samples with a prediction), ``atc_accuracy``,
    ``average_confidence`` (the baseline: mean max-softmax) and ``labelled_accuracy`` (NaN where the
    group has no labels), plus ``n_labelled``."""
    cols = ["n", "atc_accuracy", "average_confidence", "labelled_accuracy", "n_labelled"]
    if probs is None:
        raise ValueError("estimate_accuracy: this analysis has no class probabilities (no labels to fit a probe "
                         "and no pred_probs); analyse it with labels, pred_probs=, or reference=")
    has = np.isfinite(probs).all(1)
    pred = np.where(has, _predicted(probs), -1)
    conf = np.where(has, np.nan_to_num(probs).max(1), np.nan)
    score = sample_scores(probs, agreement, atc.score) if atc is not None else np.full(len(probs), np.nan)
    codes = np.full(len(probs), -1) if label_codes is None else np.asarray(label_codes)
    rows = []
    keys = pd.Series(groups.to_numpy(), dtype=object)
    for key, idx in keys.groupby(keys, sort=True, dropna=True).indices.items():
        idx = idx[has[idx]]
        lab = idx[codes[idx] >= 0]
        rows.append((key, len(idx),
                     atc_accuracy_ties(score[idx], atc.cut) if atc is not None and len(idx) else np.nan,
                     float(conf[idx].mean()) if len(idx) else np.nan,
                     float((pred[lab] == codes[lab]).mean()) if len(lab) else np.nan,
                     len(lab)))
    frame = pd.DataFrame(rows, columns=[name] + cols).set_index(name)
    return frame.astype({"n": "int64", "n_labelled": "int64"})


def check_by(by: str) -> None:
    if by not in BY:
        raise ValueError(f"estimate_accuracy: by must be one of {BY}, got {by!r}")


def check_score(score: str) -> None:
    if score not in SCORES:
        raise ValueError(f"estimate_accuracy: score must be one of {SCORES}, got {score!r}")


def fit_thresholds(probs: np.ndarray | None, label_codes: np.ndarray,
                   agreement: np.ndarray | None = None) -> dict[str, AtcThreshold]:
    """The ATC cut of every score kind (empty without labelled probabilities)."""
    out = {}
    for kind in SCORES:
        t = fit_threshold(probs, label_codes, kind, agreement)
        if t is not None:
            out[kind] = t
    return out


def estimate_accuracy(an, by: str = "split", score: str = DEFAULT_SCORE) -> pd.DataFrame:
    """``an.estimate_accuracy``: one row per split (or slice) with ``n``, ``atc_accuracy``,
    ``average_confidence``, ``labelled_accuracy`` and ``n_labelled``. Without a split column the
    one row is named "all". The default score falls back to ``negative_entropy`` where the analysis
    has no neighbour agreement."""
    check_by(by)
    check_score(score)
    s = an.samples
    if score == AGREEMENT and AGREEMENT not in an.calibration.atc:  # no neighbour agreement (e.g. engine="ray")
        score = "negative_entropy"
    atc = an.calibration.atc.get(score)
    if by == "split":
        groups = s["split"].astype(object) if "split" in s.columns else pd.Series("all", index=s.index, dtype=object)
    else:
        groups = s["slice_id"].where(s["slice_id"] >= 0)
    agreement = s["neighbour_agreement"].to_numpy(dtype=float) if "neighbour_agreement" in s.columns else None
    return accuracy_table(an.pred_probs, an.context.label_codes, groups, atc, by, agreement)


def slice_accuracy_columns(an) -> pd.DataFrame:
    """``atc_accuracy`` and ``average_confidence`` per slice id, for the slice table."""
    if an.pred_probs is None or "slice_id" not in an.samples.columns:
        return pd.DataFrame(columns=["atc_accuracy", "average_confidence"])
    return estimate_accuracy(an, by="slice")[["atc_accuracy", "average_confidence"]]


def accuracy_summary_rows(an) -> list[dict]:
    """summary() rows: the estimated accuracy of each split (or of all samples), with the baseline
    and the labelled accuracy in the detail."""
    if an.pred_probs is None:
        return []
    rows = []
    for key, r in estimate_accuracy(an, by="split").iterrows():
        name = "accuracy" if key == "all" and "split" not in an.samples.columns else f"accuracy[{key}]"
        labelled = f", labelled {r['labelled_accuracy']:.1%} of {int(r['n_labelled'])}" if r["n_labelled"] else ""
        atc = (f"estimated accuracy (ATC) {r['atc_accuracy']:.1%}" if np.isfinite(r["atc_accuracy"])
               else "no ATC estimate (no labelled samples to fit its threshold, here or in a reference)")
        rows.append({"issue": name, "count": int(r["n"]), "statistic": r["atc_accuracy"],
                     "detail": f"{atc}; average confidence {r['average_confidence']:.1%}{labelled}"})
    return rows

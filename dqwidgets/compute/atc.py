"""Accuracy without labels: Average Thresholded Confidence (ATC).

Garg, Balakrishnan, Lipton, Neyshabur & Sedghi, "Leveraging Unlabeled Data to Predict
Out-of-Distribution Performance", ICLR 2022 (section 3).

With a confidence score s(x) of the model's prediction — the maximum softmax probability
max_j p(j | x) ("ATC-MC") or the negative entropy Σ_j p(j | x) log p(j | x) ("ATC-NE", the paper's
best) — the threshold t is fitted on labelled held-out (here: out-of-fold) samples of the source so
that the share of samples scoring above t equals the accuracy there:

    E_source[ 1[s(x) > t] ] = E_source[ 1[argmax p(x) = y] ]

The estimated accuracy of any unlabelled set (a split, a slice, a new batch) is then the share of
its samples above t:  ATC = E_target[ 1[s(x) > t] ].

The baseline it is compared with is the average confidence (AC), E_target[ max_j p(j | x) ], which
is right only for a calibrated model and overestimates accuracy under shift.
"""

from __future__ import annotations

import numpy as np

SCORES = ("negative_entropy", "max_softmax")


def confidence_score(probs: np.ndarray, kind: str = "negative_entropy") -> np.ndarray:
    """s(x) per row of ``probs`` (N x C): ``"negative_entropy"`` or ``"max_softmax"``."""
    p = np.asarray(probs, dtype=np.float64)
    if kind == "max_softmax":
        return p.max(1)
    if kind == "negative_entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, p * np.log(p), 0.0).sum(1)
    raise ValueError(f"confidence_score: kind must be one of {SCORES}, got {kind!r}")


def fit_atc_threshold(scores: np.ndarray, correct: np.ndarray) -> float:
    """t such that the share of ``scores`` above t equals the share of ``correct`` (labelled
    held-out samples): the (1 − accuracy) quantile of the scores."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    if len(s) != len(c) or len(s) == 0:
        raise ValueError(f"fit_atc_threshold: need one correctness per score and at least one sample; "
                         f"got {len(s)} scores and {len(c)} correctness values")
    acc = c.mean()
    order = np.sort(s)
    k = int(round((1.0 - acc) * len(s)))  # k samples at or below t, len - k above
    if k <= 0:
        return float(np.nextafter(order[0], -np.inf))
    if k >= len(s):
        return float(order[-1])
    return float(order[k - 1])


def atc_accuracy(scores: np.ndarray, threshold: float) -> float:
    """Estimated accuracy: the share of ``scores`` above ``threshold`` (NaN for no sample)."""
    s = np.asarray(scores, dtype=np.float64)
    return float((s > threshold).mean()) if len(s) else float("nan")


# ---------------------------------------------------------------- neighbour agreement (measured in bench/)
# ATC with another confidence score (the paper's framework takes any score s(x)): the share of a
# sample's k nearest *reference* neighbours (labelled, in the embedding) whose label is the
# model's predicted class. Under shift the probe can stay confident while its prediction drifts
# away from what the nearby labelled data says (Gaussian noise, rotation on EfficientNet features:
# bench/results/bench_training.md); the neighbours' vote is a second, non-parametric classifier, so
# this score falls where the two disagree, in the spirit of disagreement-based accuracy estimates
# (Jiang, Nagarajan, Baek & Kolter, "Assessing Generalization of SGD via Disagreement", ICLR 2022).
# The score takes k + 1 values, so the threshold is fitted with ties shared (fit_atc_cut).


def neighbour_agreement(neighbour_codes: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per row: the share of its labelled neighbours (codes >= 0 in ``neighbour_codes``, N x k) whose
    label equals ``predicted`` (N); NaN for a row without a labelled neighbour."""
    nb = np.asarray(neighbour_codes)
    pred = np.asarray(predicted)
    if nb.ndim != 2 or len(nb) != len(pred):
        raise ValueError(f"neighbour_agreement: need an N x k matrix of neighbour labels and N predictions; "
                         f"got shapes {nb.shape} and {pred.shape}")
    lab = nb >= 0
    n = lab.sum(1)
    agree = ((nb == pred[:, None]) & lab).sum(1)
    return np.where(n > 0, agree / np.maximum(n, 1), np.nan)


def fit_atc_cut(scores: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """(t, w) such that share(s > t) + w · share(s == t) equals the accuracy of the labelled
    held-out samples exactly, with 0 <= w <= 1: ATC's threshold for a score with ties."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    if len(s) != len(c) or len(s) == 0:
        raise ValueError(f"fit_atc_cut: need one correctness per score and at least one sample; "
                         f"got {len(s)} scores and {len(c)} correctness values")
    n = len(s)
    j = min(int(np.floor((1.0 - c.mean()) * n)), n - 1)
    t = float(np.sort(s)[j])
    above, eq = int((s > t).sum()), int((s == t).sum())
    w = float(np.clip((c.sum() - above) / eq, 0.0, 1.0))
    return t, w


def atc_accuracy_ties(scores: np.ndarray, cut: tuple[float, float]) -> float:
    """Estimated accuracy with a (t, w) cut from :func:`fit_atc_cut` (NaN scores and empty: NaN)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if not len(s):
        return float("nan")
    t, w = cut
    return float(((s > t) + w * (s == t)).mean())

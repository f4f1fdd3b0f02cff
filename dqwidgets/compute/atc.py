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

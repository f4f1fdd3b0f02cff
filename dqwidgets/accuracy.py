"""Estimated accuracy of every split, slice or new batch, labelled or not (ATC; Garg et al., ICLR 2022).

The threshold is fitted once per analysis on the labelled samples' out-of-fold probabilities (the
probe's, or the user's ``pred_probs``); a batch analysed with ``reference=an`` uses its reference's
threshold (and is scored by the reference's probe). See :mod:`dqwidgets.compute.atc`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dqwidgets.compute.atc import SCORES, atc_accuracy, confidence_score, fit_atc_threshold

DEFAULT_SCORE = "negative_entropy"
BY = ("split", "slice")


@dataclass(frozen=True)
class AtcThreshold:
    """The ATC cut fitted on labelled out-of-fold probabilities."""
    threshold: float
    score: str
    n_fitted: int
    fitted_accuracy: float


def fit_threshold(probs: np.ndarray | None, label_codes: np.ndarray, score: str = DEFAULT_SCORE) -> AtcThreshold | None:
    """The ATC threshold from the labelled rows (finite probabilities, code >= 0); None without any."""
    if probs is None:
        return None
    ok = (np.asarray(label_codes) >= 0) & np.isfinite(probs).all(1)
    if ok.sum() == 0:
        return None
    p, y = probs[ok], np.asarray(label_codes)[ok]
    correct = p.argmax(1) == y
    t = fit_atc_threshold(confidence_score(p, score), correct)
    return AtcThreshold(t, score, int(ok.sum()), float(correct.mean()))


def accuracy_table(probs: np.ndarray | None, label_codes: np.ndarray | None, groups: pd.Series,
                   atc: AtcThreshold | None, name: str) -> pd.DataFrame:
    """One row per group value: ``n`` (samples with a prediction), ``atc_accuracy``,
    ``average_confidence`` (the baseline: mean max-softmax) and ``labelled_accuracy`` (NaN where the
    group has no labels), plus ``n_labelled``."""
    cols = ["n", "atc_accuracy", "average_confidence", "labelled_accuracy", "n_labelled"]
    if probs is None:
        raise ValueError("estimate_accuracy: this analysis has no class probabilities (no labels to fit a probe "
                         "and no pred_probs); analyse it with labels, pred_probs=, or reference=")
    has = np.isfinite(probs).all(1)
    pred = np.where(has, np.nan_to_num(probs).argmax(1), -1)
    conf = np.where(has, np.nan_to_num(probs).max(1), np.nan)
    score = np.full(len(probs), np.nan)
    if atc is not None:
        score[has] = confidence_score(probs[has], atc.score)
    codes = np.full(len(probs), -1) if label_codes is None else np.asarray(label_codes)
    rows = []
    keys = pd.Series(groups.to_numpy(), dtype=object)
    for key, idx in keys.groupby(keys, sort=True, dropna=True).indices.items():
        idx = idx[has[idx]]
        lab = idx[codes[idx] >= 0]
        rows.append((key, len(idx),
                     atc_accuracy(score[idx], atc.threshold) if atc is not None and len(idx) else np.nan,
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


def fit_thresholds(probs: np.ndarray | None, label_codes: np.ndarray) -> dict[str, AtcThreshold]:
    """The ATC threshold of every score kind (empty without labelled probabilities)."""
    out = {}
    for kind in SCORES:
        t = fit_threshold(probs, label_codes, kind)
        if t is not None:
            out[kind] = t
    return out


def estimate_accuracy(an, by: str = "split", score: str = DEFAULT_SCORE) -> pd.DataFrame:
    """``an.estimate_accuracy``: one row per split (or slice) with ``n``, ``atc_accuracy``,
    ``average_confidence``, ``labelled_accuracy`` and ``n_labelled``. Without a split column the
    one row is named "all"."""
    check_by(by)
    check_score(score)
    s = an.samples
    atc = an.calibration.atc.get(score)
    if by == "split":
        groups = s["split"].astype(object) if "split" in s.columns else pd.Series("all", index=s.index, dtype=object)
    else:
        groups = s["slice_id"].where(s["slice_id"] >= 0)
    return accuracy_table(an.pred_probs, an.context.label_codes, groups, atc, by)


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

"""Label-issue scores: confident learning on out-of-fold probabilities, combined with the labels of
each sample's nearest neighbours.

- Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in
  Dataset Labels", JAIR 2021): per-class thresholds t_j = mean predicted probability of class j over
  the samples labelled j; the *confident joint* counts samples whose label is y but that confidently
  belong to j; its calibrated off-diagonal estimates how many labels of each class are wrong.
  Samples are ranked by self-confidence p(y_i | x_i).
- kNN label agreement (Zhu, Dong & Liu, "Detecting Corrupted Labels Without Training a Model to
  Predict", ICML 2022): the share of a sample's nearest neighbours that carry its label, a
  training-free estimate of p(y_i | x_i) from the feature space.

The two estimates are averaged: the probe sees the global linear structure, the neighbours the local
one; their mean ranks label errors better than either (bench/results/bench_quality.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def knn_label_distribution(neighbors: np.ndarray, label_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """N x C share of each sample's neighbours carrying each label (unlabelled neighbours, code < 0,
    are ignored; a sample with no labelled neighbour gets the uniform distribution)."""
    nb_labels = label_codes[neighbors]  # N x k
    n = len(neighbors)
    Q = np.zeros((n, n_classes), dtype=np.float32)
    ok = nb_labels >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], nb_labels.shape)
    np.add.at(Q, (rows[ok], nb_labels[ok]), 1.0)
    total = Q.sum(1, keepdims=True)
    return np.where(total > 0, Q / np.maximum(total, 1), 1.0 / n_classes).astype(np.float32)


def per_class_thresholds(probs: np.ndarray, label_codes: np.ndarray) -> np.ndarray:
    """t_j = mean of p(j | x) over the samples labelled j (confident learning, eq. 2)."""
    n_classes = probs.shape[1]
    lab = label_codes >= 0
    sums = np.zeros(n_classes)
    np.add.at(sums, label_codes[lab], probs[lab, label_codes[lab]])
    counts = np.bincount(label_codes[lab], minlength=n_classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(probs: np.ndarray, label_codes: np.ndarray) -> np.ndarray:
    """C x C calibrated confident joint: entry [y, j] estimates how many samples labelled y truly
    belong to j; rows sum to the class counts (confident learning, eqs. 1-3)."""
    n_classes = probs.shape[1]
    t = per_class_thresholds(probs, label_codes)
    lab = label_codes >= 0
    P, y = probs[lab], label_codes[lab]
    above = P >= t[None, :]
    masked = np.where(above, P, -np.inf)
    guess = masked.argmax(1)
    confident = above.any(1)
    C = np.zeros((n_classes, n_classes))
    np.add.at(C, (y[confident], guess[confident]), 1.0)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    row = C.sum(1, keepdims=True)
    return np.where(row > 0, C / np.maximum(row, 1e-12) * counts[:, None], np.diag(counts))


def label_issue_score(probs: np.ndarray, knn_dist: np.ndarray | None, label_codes: np.ndarray,
                      knn_weight: float = 0.5) -> np.ndarray:
    """1 - (combined self-confidence) in [0, 1]: (1 - w) p(y|x) from the probe + w × the share of
    neighbours labelled y. NaN for unlabelled samples (code < 0)."""
    combined = combined_probs(probs, knn_dist, knn_weight)
    score = np.full(len(label_codes), np.nan, dtype=np.float32)
    lab = label_codes >= 0
    score[lab] = 1.0 - combined[lab, label_codes[lab]]
    return np.clip(score, 0.0, 1.0)


def combined_probs(probs: np.ndarray, knn_dist: np.ndarray | None, knn_weight: float = 0.5) -> np.ndarray:
    if knn_dist is None or knn_weight == 0:
        return probs
    return (1.0 - knn_weight) * probs + knn_weight * knn_dist


def flag_label_issues(score: np.ndarray, label_codes: np.ndarray, n_issues_per_class: np.ndarray) -> np.ndarray:
    """Flag, within each given class y, the ``n_issues_per_class[y]`` samples with the highest score."""
    flags = np.zeros(len(score), dtype=bool)
    for c, n_c in enumerate(np.round(n_issues_per_class).astype(int)):
        members = np.flatnonzero(label_codes == c)
        if n_c <= 0 or len(members) == 0:
            continue
        top = members[np.argsort(-score[members], kind="stable")[:n_c]]
        flags[top] = True
    return flags


@dataclass
class LabelIssues:
    """What :func:`find_label_issues` returns, one entry per sample unless said otherwise."""

    label_issue_score: np.ndarray  # float32, NaN for unlabelled samples
    is_label_issue: np.ndarray  # bool
    suggested_label: np.ndarray  # int64 code of the most likely class (combined probabilities)
    n_issues_per_class: np.ndarray  # float C: wrong labels per given class, from the confident joint
    combined_probs: np.ndarray  # float32 N x C


def find_label_issues(probs: np.ndarray, neighbors: np.ndarray | None, label_codes: np.ndarray,
                      knn_weight: float = 0.5) -> LabelIssues:
    """Score and flag label issues: ``is_label_issue`` is the number per class estimated by the
    confident joint of the combined probabilities, highest scores first, and only where another
    class is more likely than the given one; ``suggested_label`` is the most likely class."""
    n_classes = probs.shape[1]
    Q = knn_label_distribution(neighbors, label_codes, n_classes) if neighbors is not None else None
    combined = combined_probs(probs, Q, knn_weight)
    score = label_issue_score(probs, Q, label_codes, knn_weight)
    cj = confident_joint(combined, label_codes)
    n_issues = cj.sum(1) - np.diag(cj)
    flags = flag_label_issues(np.nan_to_num(score, nan=-1.0), label_codes, n_issues)
    flags &= combined.argmax(1) != label_codes  # only where the data supports another label
    return LabelIssues(score, flags, combined.argmax(1).astype(np.int64), n_issues, combined.astype(np.float32))

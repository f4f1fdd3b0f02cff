"""Dataset cartography: where each sample sits on the map of training dynamics.

Swayamdipta, Schwartz, Lourie, Wang, Hajishirzi, Smith & Choi, "Dataset Cartography: Mapping and
Diagnosing Datasets with Training Dynamics", EMNLP 2020 (section 2).

With p_e(y | x) the softmax probability of the assigned label y after (or during) epoch e, over the
E epochs a sample was seen:

- confidence  μ(x) = (1/E) Σ_e p_e(y | x)
- variability σ(x) = sqrt( (1/E) Σ_e (p_e(y | x) − μ(x))² )
- correctness c(x) = (1/E) Σ_e 1[argmax_j p_e(j | x) = y]

The paper reads three regions off the map: *easy-to-learn* (high confidence, low variability),
*ambiguous* (high variability) and *hard-to-learn* (low confidence, low variability; often
mislabeled). It studies them as thirds of the data (the 33% most ambiguous, ...). For a label per
sample we partition the map: the ``ambiguous_share`` most variable samples (1/3, the paper's share)
are "ambiguous"; of the rest, those whose confidence is below ``hard_confidence`` (0.5: the network
gave the assigned label less than even odds on average) are "hard", the others "easy".
"""

from __future__ import annotations

import numpy as np

REGIONS = ("easy", "ambiguous", "hard")
AMBIGUOUS_SHARE = 1.0 / 3.0
HARD_CONFIDENCE = 0.5


def label_probability(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p(y | x), argmax == y) of each row of ``logits`` (N x C) under a softmax; NaN / False for
    labels < 0."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    ok = y >= 0
    prob = np.full(len(y), np.nan, dtype=np.float32)
    prob[ok] = p[np.flatnonzero(ok), y[ok]]
    correct = np.zeros(len(y), dtype=bool)
    correct[ok] = p[ok].argmax(1) == y[ok]
    return prob, correct


def cartography(label_probs: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Confidence, variability and correctness from E x N arrays of p_e(y | x) (NaN where not
    seen) and of correctness (counted only where p is finite); NaN for samples never seen."""
    p = np.asarray(label_probs, dtype=np.float64)
    seen = np.isfinite(p)
    n_seen = seen.sum(0)
    denom = np.maximum(n_seen, 1)
    conf = np.where(seen, p, 0.0).sum(0) / denom
    var = np.where(seen, (p - conf[None, :]) ** 2, 0.0).sum(0) / denom
    corr = (np.asarray(correct, dtype=bool) & seen).sum(0) / denom
    none = n_seen == 0
    return {"confidence": np.where(none, np.nan, conf).astype(np.float32),
            "variability": np.where(none, np.nan, np.sqrt(var)).astype(np.float32),
            "correctness": np.where(none, np.nan, corr).astype(np.float32)}


def cartography_regions(confidence: np.ndarray, variability: np.ndarray,
                        ambiguous_share: float = AMBIGUOUS_SHARE,
                        hard_confidence: float = HARD_CONFIDENCE) -> np.ndarray:
    """"easy" / "ambiguous" / "hard" per sample (None where confidence is NaN), as in the module
    docstring."""
    if not 0.0 <= ambiguous_share <= 1.0:
        raise ValueError(f"cartography_regions: ambiguous_share must lie in [0, 1], got {ambiguous_share}")
    conf = np.asarray(confidence, dtype=np.float64)
    var = np.asarray(variability, dtype=np.float64)
    seen = np.isfinite(conf) & np.isfinite(var)
    out = np.full(len(conf), None, dtype=object)
    idx = np.flatnonzero(seen)
    n_amb = int(round(ambiguous_share * len(idx)))
    order = idx[np.argsort(-var[idx], kind="stable")]
    ambiguous = np.zeros(len(conf), dtype=bool)
    ambiguous[order[:n_amb]] = True
    out[seen] = np.where(conf[seen] < hard_confidence, "hard", "easy")
    out[ambiguous] = "ambiguous"
    return out

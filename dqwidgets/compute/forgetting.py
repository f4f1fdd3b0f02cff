"""Forgetting events: how often a sample, once classified correctly, is misclassified again.

Toneva, Sordoni, Tachet des Combes, Trischler, Bengio & Gordon, "An Empirical Study of Example
Forgetting during Deep Neural Network Learning", ICLR 2019 (section 3).

With acc_i^t = 1[argmax_j z_j^t(x_i) = y_i] at the t-th time sample i is presented (here: once per
recorded epoch), a *forgetting event* is a transition acc_i^t > acc_i^{t+1} (correct, then wrong);
the count of those is the sample's forgetting statistic. Samples learned once and never forgotten
are *unforgettable* (count 0). Samples never classified correctly have count 0 too but were never
learned; the paper ranks them as forgotten infinitely often. :func:`forgetting_events` returns
them separately (``never_learned``); in ``dq.analyze`` they are the samples with
``cartography_correctness == 0``.
"""

from __future__ import annotations

import numpy as np


def forgetting_events(correct: np.ndarray, seen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(events, never_learned)`` from an E x N boolean array of correctness per presentation, in
    training order. ``seen`` (E x N bool) marks the epochs where a sample was presented; unseen
    epochs are skipped (the transition is taken between consecutive presentations)."""
    c = np.asarray(correct, dtype=bool)
    if c.ndim != 2:
        raise ValueError(f"forgetting_events: correct must be epochs x samples, got shape {c.shape}")
    s = np.ones_like(c) if seen is None else np.asarray(seen, dtype=bool)
    if s.shape != c.shape:
        raise ValueError(f"forgetting_events: seen has shape {s.shape}, correct {c.shape}")
    events = np.zeros(c.shape[1], dtype=np.int64)
    previous = np.zeros(c.shape[1], dtype=bool)  # correctness at the last presentation
    for t in range(c.shape[0]):
        now = c[t] & s[t]
        events += (previous & ~now & s[t]).astype(np.int64)
        previous = np.where(s[t], now, previous)
    never = ~(c & s).any(0) & s.any(0)
    return events, never

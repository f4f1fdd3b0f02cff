"""Calibrated probabilities and the flag count that follows from them.

A reviewer needs two things from a flag: that the number flagged is about right, and an honest
estimate of how many of the flags are real. Both follow from a per-sample probability that the
issue is real, *if that probability is calibrated*:

- **Temperature scaling** (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural
  Networks", ICML 2017) of out-of-fold log-probabilities: one parameter, fitted by maximum likelihood.
  On labels that are themselves wrong, plain temperature scaling cannot make a probe sharp on clean
  samples and unsure where the labels are wrong, so :mod:`dqwidgets.compute.label` fits it *inside* a
  class-conditional noise model (the temperature-scaled probe is the clean posterior, a noise matrix
  maps it to the given labels). We chose temperature over isotonic regression because isotonic
  regression on 10%-wrong labels fits the noise in each bin and returns a staircase of tied
  probabilities (ties break the ranking the flags are built on), and over Platt / vector scaling
  because those add C or 2C parameters that small classes cannot support.
- **The expected-F1 count** (Lipton, Elkan & Naryanaswamy, "Optimal Thresholding of Classifiers
  to Maximize F1 Measure", ECML 2014): with calibrated probabilities ``p_i`` that sample ``i`` has the
  issue, flagging the top ``m`` gives an expected ``TP(m) = sum of the m largest p_i``; the expected
  number of real issues is ``sum p_i``; the count that maximises ``2 TP / (m + sum p)`` is the
  default. The estimated precision of the flags is then ``TP(m) / m`` (``summary()``).
- **Expected calibration error** (Naeini, Cooper & Hauskrecht, AAAI 2015): the bench reports it.
"""

from __future__ import annotations

import numpy as np


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


_BLOCK = 1 << 17  # rows per block of the N x C work arrays (compute.label's noise model uses the same)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds=(0.05, 20.0), iters: int = 40,
                    floor: float | None = None, block: int | None = None) -> float:
    """Temperature ``T`` minimising the mean negative log-likelihood of ``softmax(logits / T)`` on the
    labelled rows (``labels >= 0``); golden-section search on ``log T`` (the NLL is unimodal in T).
    40 steps narrow ``log T`` to 3e-8 (``T`` to 1.4e-8 of itself, below float32's resolution of the
    probabilities); each row is shifted by its maximum (softmax does not change), so a step costs one
    exp of the N x C matrix. ``floor``: ``logits`` are probabilities, and the logits their
    ``probs_to_logits(., floor)``. The rows are read ``block`` at a time, so the float64 temporaries
    stay ``block`` x C (whole-N copies held ~600 MB at 1M x 20); the block size changes only the order
    of the NLL's sums."""
    logits = logits if isinstance(logits, np.ndarray) else np.asarray(logits)
    labels = np.asarray(labels)
    lab = np.flatnonzero(labels >= 0)
    if len(lab) < 2:
        return 1.0
    y = labels[lab]
    block = block or _BLOCK
    blocks = [slice(s, s + block) for s in range(0, len(lab), block)]  # of the labelled rows

    def shift(b):  # float64 logits of the labelled rows in b minus their row maximum (<= 0: exp never overflows)
        Z = probs_to_logits(logits[lab[b]], floor) if floor is not None else np.asarray(logits[lab[b]], np.float64)
        return Z - Z.max(1, keepdims=True)

    # Taken once (the search reads them 42 times; a gather + log per block each time doubled the fit at 1M):
    # float64 within one block, float32 beyond (the float64 copy is 160 MB at 1M x 20), widened per block.
    Zs = np.empty((len(lab), logits.shape[1]), dtype=np.float64 if len(blocks) <= 1 else np.float32)
    for b in blocks:
        Zs[b] = shift(b)

    def shifted(b):
        return np.asarray(Zs[b], dtype=np.float64)

    z_given = sum(float(np.take_along_axis(shifted(b), y[b, None], 1).sum()) for b in blocks) / len(lab)

    def nll(log_t):
        t = np.exp(log_t)
        return sum(float(np.log(np.exp(shifted(b) / t).sum(1)).sum()) for b in blocks) / len(lab) - z_given / t

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2.0))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature)).astype(np.float32)


def probs_to_logits(probs: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Log-probabilities (logits up to a per-row constant) of a probability matrix, float64, computed
    ``_BLOCK`` rows at a time into the result (a whole-N float64 copy and its clip held two more N x C
    float64 arrays: +480 MB at 1M x 20); each element is what one pass gives."""
    probs = probs if isinstance(probs, np.ndarray) else np.asarray(probs)
    if probs.ndim < 2 or len(probs) <= _BLOCK:
        return np.log(np.clip(np.asarray(probs, dtype=np.float64), floor, 1.0))
    out = np.empty(probs.shape, dtype=np.float64)
    for s in range(0, len(probs), _BLOCK):
        out[s:s + _BLOCK] = np.clip(probs[s:s + _BLOCK], floor, 1.0, dtype=np.float64)
        np.log(out[s:s + _BLOCK], out=out[s:s + _BLOCK])
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE: the bin-size-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return float("nan")
    idx = np.minimum((confidence * bins).astype(int), bins - 1)
    total = np.bincount(idx, minlength=bins)
    conf = np.bincount(idx, confidence, minlength=bins)
    acc = np.bincount(idx, correct, minlength=bins)
    m = total > 0
    return float(np.abs(acc[m] - conf[m]).sum() / len(confidence))


def expected_fbeta_count(p: np.ndarray, beta: float) -> int:
    """How many of the samples to take (highest ``p`` first) to maximise the expected F-beta,
    ``(1 + b^2) sum_{i<=m} p_(i) / (m + b^2 sum p)``, where ``p`` are calibrated probabilities that each
    sample has the issue (Lipton, Elkan & Naryanaswamy, ECML 2014: the optimum is a threshold on p at
    F-beta* / (1 + b^2)); 0 when nothing is expected."""
    p = np.asarray(p, dtype=np.float64)
    p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 0.0)
    total = p.sum()
    if not len(p) or total <= 0:
        return 0
    m = np.arange(1, len(p) + 1)
    f = (1.0 + beta ** 2) * np.cumsum(np.sort(p)[::-1]) / (m + beta ** 2 * total)
    return int(f.argmax() + 1)


def expected_f1_count(p: np.ndarray) -> int:
    """How many of the samples to flag (highest ``p`` first) to maximise the expected F1, where ``p``
    are calibrated probabilities that each sample has the issue. 0 when no sample is likely to."""
    p = np.asarray(p, dtype=np.float64)
    p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 0.0)
    if p.sum() <= 0.5:  # fewer than one expected issue: flag only the near-certain ones
        return int((p >= 0.5).sum())
    return expected_fbeta_count(p, 1.0)


def threshold_for_count(score: np.ndarray, count: int) -> float:
    """The score threshold that flags exactly the ``count`` highest scores (``score >= threshold``);
    with ties at the cut, all tied samples are flagged; 1.0 for a count of 0."""
    s = np.asarray(score, dtype=np.float64)
    s = s[np.isfinite(s)]
    if count <= 0 or len(s) == 0:
        return 1.0
    count = min(count, len(s))
    return float(np.partition(s, len(s) - count)[len(s) - count])

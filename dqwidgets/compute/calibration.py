"""Calibrated probabilities and the flag count that follows from them.

A reviewer needs two things from a flag: that the number flagged is about right, and an honest
estimate of how many of the flags are real. Both follow from a per-sample probability that the
issue is real, *if that probability is calibrated*:

- **Temperature scaling** (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural
  Networks", ICML 2017) of out-of-fold log-probabilities: one parameter, fitted by maximum likelihood
  on the samples' own (noisy) labels. It keeps the ranking, cannot overfit with thousands of
  samples, and fixes the over- or under-confidence of a probe whose L2 penalty was not tuned. We
  chose it over isotonic regression because isotonic regression on labels that are themselves 10%
  wrong fits the noise in each bin and returns a staircase of tied probabilities (ties break the
  ranking the flags are built on), and over Platt/vector scaling because those add C or 2C
  parameters per class that small classes cannot support.
- **The expected-F1 threshold** (Lipton, Elkan & Naryanaswamy, "Optimal Thresholding of Classifiers
  to Maximize F1 Measure", ECML 2014): with calibrated probabilities ``p_i`` that sample ``i`` has the
  issue, flagging the top ``m`` gives an expected ``TP(m) = sum of the m largest p_i``; the expected
  number of real issues is ``sum p_i``; the flag count that maximises ``2 TP / (m + sum p)`` is the
  default. The estimated precision of the flags is then ``TP(m) / m`` and ``TP(m)`` the estimated
  number of real issues among them.
- **Expected calibration error** (Naeini, Cooper & Hauskrecht, AAAI 2015): the bench reports it.
"""

from __future__ import annotations

import numpy as np


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds=(0.05, 20.0), iters: int = 60) -> float:
    """Temperature ``T`` minimising the mean negative log-likelihood of ``softmax(logits / T)`` on the
    labelled rows (``labels >= 0``); golden-section search on ``log T`` (the NLL is unimodal in T)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    lab = labels >= 0
    if lab.sum() < 2:
        return 1.0
    Z, y = logits[lab], labels[lab]

    def nll(log_t):
        return -_log_softmax(Z / np.exp(log_t))[np.arange(len(y)), y].mean()

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
    """Log-probabilities (logits up to a per-row constant) of a probability matrix."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), floor, 1.0))


def calibrate_probs(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """``(calibrated probabilities, temperature)``: temperature scaling of ``log probs`` fitted on
    the given labels."""
    logits = probs_to_logits(probs)
    t = fit_temperature(logits, labels)
    return apply_temperature(logits, t), t


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


def expected_f1_count(p: np.ndarray) -> int:
    """How many of the samples to flag (highest ``p`` first) to maximise the expected F1, where ``p``
    are calibrated probabilities that each sample has the issue. 0 when no sample is likely to."""
    p = np.asarray(p, dtype=np.float64)
    p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 0.0)
    total = p.sum()
    if total <= 0.5:  # fewer than one expected issue: flag only the near-certain ones
        return int((p >= 0.5).sum())
    srt = np.sort(p)[::-1]
    tp = np.cumsum(srt)
    m = np.arange(1, len(p) + 1)
    f1 = 2.0 * tp / (m + total)
    return int(f1.argmax() + 1)


def threshold_for_count(score: np.ndarray, count: int) -> float:
    """The score threshold that flags exactly the ``count`` highest scores (``score >= threshold``);
    with ties at the cut, all tied samples are flagged; 1.0 for a count of 0."""
    s = np.asarray(score, dtype=np.float64)
    s = s[np.isfinite(s)]
    if count <= 0 or len(s) == 0:
        return 1.0
    count = min(count, len(s))
    return float(np.partition(s, len(s) - count)[len(s) - count])


def estimated_precision(p: np.ndarray, flags: np.ndarray) -> tuple[float, float]:
    """``(estimated precision, estimated number real)`` of the flagged samples from calibrated
    probabilities ``p``: their mean and their sum over the flags (NaN precision when nothing is flagged)."""
    p = np.asarray(p, dtype=np.float64)
    flags = np.asarray(flags, dtype=bool) & np.isfinite(p)
    real = float(p[flags].sum())
    return (real / flags.sum() if flags.any() else float("nan")), real


def fit_noisy_calibration(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(temperature T, noise share lam)`` maximising the likelihood of the given labels under
    ``p(given | x) = (1 - lam) softmax(logits / T) + lam / C``: the clean posterior, temperature-scaled,
    seen through symmetric label noise (a share ``lam (C-1)/C`` of labels replaced by a random other class).
    Plain temperature scaling on noisy labels cannot make a confident probe both sharp on clean
    samples and unsure where 10% of the labels are wrong; the uniform term takes the noise."""
    from scipy.optimize import minimize

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    lab = labels >= 0
    if lab.sum() < 10:
        return fit_temperature(logits, labels), 0.0
    Z, y = logits[lab], labels[lab]
    C = Z.shape[1]
    r = np.arange(len(y))

    def nll(theta):
        t, lam = np.exp(theta[0]), 1.0 / (1.0 + np.exp(-theta[1]))
        p = np.exp(_log_softmax(Z / t)[r, y])
        return -np.log((1.0 - lam) * p + lam / C + 1e-300).mean()

    best = None
    for start in ((0.0, -3.0), (np.log(2.0), -1.5)):
        res = minimize(nll, np.asarray(start), method="Nelder-Mead",
                       options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 400})
        if best is None or res.fun < best.fun:
            best = res
    t, lam = float(np.exp(best.x[0])), float(1.0 / (1.0 + np.exp(-best.x[1])))
    return t, lam


def label_error_probability(clean_probs: np.ndarray, labels: np.ndarray, lam: float) -> np.ndarray:
    """P(the given label is wrong | x, given label) under the symmetric-noise model of
    :func:`fit_noisy_calibration`: ``(lam/C)(1 - pi_y) / ((1 - lam) pi_y + lam/C)`` with ``pi`` the clean
    posterior. NaN for unlabelled rows."""
    clean_probs = np.asarray(clean_probs, dtype=np.float64)
    labels = np.asarray(labels)
    C = clean_probs.shape[1]
    out = np.full(len(labels), np.nan)
    lab = labels >= 0
    py = clean_probs[lab, labels[lab]]
    noisy = lam / C * (1.0 - py)
    out[lab] = noisy / np.maximum((1.0 - lam) * py + lam / C, 1e-300)
    return np.clip(out, 0.0, 1.0)
